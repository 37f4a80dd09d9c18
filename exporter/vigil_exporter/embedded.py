"""The embedded default: an SQLite file with the business schema, created on first start."""
from __future__ import annotations

import logging

from vigil_exporter.config import DEFAULT_SQLITE, Config

log = logging.getLogger("vigil")


def prepare_database(config: Config, demo: bool = False) -> None:
    """Create the default schema in the embedded SQLite file (and the demo data if asked).

    A database the exporter is pointed at belongs to its application and is never written to:
    the schema is created only in the embedded default (`sqlite:///vigil.db`, the exporter's
    own file) or with `--demo`, which asks for it.
    """
    from vigil_exporter import dbschema

    business = config.collector("business")
    if not business["enabled"]:
        return
    url = config.business_database()["url"]
    if url == DEFAULT_SQLITE or demo:
        created = dbschema.create_schema(url)
        if created:
            log.info("created the default business schema", extra={"fields": {"tables": created}})
    if demo and dbschema.load_demo_data(url):
        log.info("loaded the demo data set")
