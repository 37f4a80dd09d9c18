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


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory):
    """The whole stack from local binaries, shared by the live tests: Redis, PostgreSQL, the
    exporter, the demo service with traffic, Prometheus with the bundle's rules (RedisDown's
    `for` shortened, the way a user overrides the bundle) and Alertmanager; 1 s intervals."""
    from vigil_exporter.tools import bundle
    from vigil_exporter.tools.stack.stack import Stack

    rules = tmp_path_factory.mktemp("rules")
    bundle.build_rules(directory=rules, overrides={"forDurations": {"RedisDown": "10s"}})
    stack = Stack(free_ports=True, demo=True, traffic=20, scrape_interval="1s",
                  evaluation_interval="1s", collector_interval="1s", rules_dir=rules)
    missing = stack.missing_binaries()
    assert not missing, "\n".join(missing) + "\nrun the test command from README.md"
    stack.start()
    try:
        stack.wait_for_query('up{job="vigil"} == 1', timeout=60)
        yield stack
    finally:
        stack.stop()
