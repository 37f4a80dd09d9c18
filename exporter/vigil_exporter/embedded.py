"""The embedded default: an SQLite file with the business schema, created on first start; and
the demo data set of `vigil serve --demo`, prepared later when the database is down at start."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from vigil_exporter.config import DEFAULT_SQLITE, Config
from vigil_exporter.logs import describe_error

log = logging.getLogger("vigil")


def prepare_database(config: Config, demo: bool = False) -> bool:
    """Create the default schema in the embedded SQLite file (and the demo data if asked).

    A database the exporter is pointed at belongs to its application and is never written to:
    the schema is created only in the embedded default (`sqlite:///vigil.db`, the exporter's
    own file) or with `--demo`, which asks for it.

    False when the database does not answer (logged): the exporter serves anyway, since a dead
    database is what it reports (`vigil_db_up 0`), and `prepare_later` tries again.
    """
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        _prepare(config, demo)
    except (OperationalError, InterfaceError) as exc:
        log.warning("the business database does not answer: its schema%s is prepared once it "
                    "does", " and demo data" if demo else "",
                    extra={"fields": {"database": config.collector("business")["database"],
                                      "error": describe_error(exc)}})
        return False
    return True


def _prepare(config: Config, demo: bool) -> None:
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


def prepare_later(config: Config, demo: bool = False
                  ) -> Callable[[object], AsyncIterator[None]]:
    """An aiohttp cleanup context for `vigil serve` after `prepare_database` found the database
    down: try again at the database collector's interval, off the event loop, until it answers."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    async def attempts() -> None:
        while True:
            await asyncio.sleep(config.collector("database")["interval"])
            try:
                await asyncio.to_thread(_prepare, config, demo)
            except (OperationalError, InterfaceError):
                continue
            log.info("the business database answers: its schema is prepared")
            return

    async def context(_app) -> AsyncIterator[None]:
        task = asyncio.create_task(attempts(), name="prepare-database")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return context
