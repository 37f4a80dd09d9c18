-- Run once by the postgres image on an empty data directory (docker-compose.yml): the
-- statistics the exporter's top statements read (collectors.database...postgres.statements).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
