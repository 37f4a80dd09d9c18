"""The embedded default: an SQLite file with the business schema, created on first start."""
from __future__ import annotations

import logging

from vigil_exporter.config import Config

log = logging.getLogger("vigil")


def prepare_database(config: Config, demo: bool = False) -> None:
    """Create the default schema in an SQLite business database (and the demo data if asked).

    A server database (PostgreSQL) is never changed, except with `--demo`: the schema belongs
    to the application.
    """
    from vigil_exporter import dbschema

    business = config.collector("business")
    if not business["enabled"]:
        return
    url = config.business_database()["url"]
    if url.startswith("sqlite") or demo:
        created = dbschema.create_schema(url)
        if created:
            log.info("created the default business schema", extra={"fields": {"tables": created}})
    if demo and dbschema.load_demo_data(url):
        log.info("loaded the demo data set")
