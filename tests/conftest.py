"""Session fixtures: real Redis and PostgreSQL servers shared by the whole suite.

Tests that stop a server to test an outage must use the function-scoped `*_isolated`
fixtures instead, so that other tests keep a live server.
"""
from __future__ import annotations

import shutil

import pytest

from tests.servers import PostgresServer, RedisServer, free_port, tempdir, wait_for_port  # noqa: F401


def _serve(server_cls, prefix):
    workdir = tempdir(prefix)
    server = server_cls(workdir).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    yield from _serve(RedisServer, "redis")


@pytest.fixture(scope="session")
def postgres_server():
    yield from _serve(PostgresServer, "postgres")


@pytest.fixture
def redis_isolated():
    """A Redis of the test's own, free to be stopped and restarted."""
    yield from _serve(RedisServer, "redis")


@pytest.fixture
def postgres_isolated():
    """A PostgreSQL of the test's own, free to be stopped and restarted."""
    yield from _serve(PostgresServer, "postgres")
