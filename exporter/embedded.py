"""The embedded default: an SQLite file with the business schema, created on first start."""
from __future__ import annotations

import logging

from exporter.config import Config

log = logging.getLogger("vigil")


def business_database_url(config: Config) -> str | None:
    databases = config.collector("database")["databases"]
    name = config.collector("business")["database"]
    entry = databases.get(name)
    return entry["url"] if entry else None


def prepare_database(config: Config, demo: bool = False) -> None:
    """Create the default schema in an SQLite business database (and the demo data if asked).

    A server database (PostgreSQL) is never changed, except with `--demo`: the schema belongs
    to the application.
    """
    from exporter import dbschema

    url = business_database_url(config)
    if not url or not config.collector("business")["enabled"]:
        return
    if url.startswith("sqlite") or demo:
        created = dbschema.create_schema(url)
        if created:
            log.info("created the default business schema", extra={"fields": {"tables": created}})
    if demo and dbschema.load_demo_data(url):
        log.info("loaded the demo data set")
