"""Shared fixtures. Every server is one of the local stack's components
(vigil_exporter.tools.stack), started from Debian's binaries on 127.0.0.1 with a free port and a
directory of its own, exactly as `vigil stack up` runs it.

- `redis_server`, `postgres_server`: one real Redis and PostgreSQL for the whole session. Tests
  that stop a server to test an outage use the function-scoped `*_isolated` ones instead, so that
  other tests keep a live server.
- `postgres_pair`: a PostgreSQL primary with pg_stat_statements preloaded and its streaming
  replica made with pg_basebackup (`.primary`, `.replica`), for the whole session. A test that
  pauses replay resumes it before it ends.
- `redis_pair`: a Redis primary and its replica (`replicaof`, synchronised), for the whole
  session.
- `start_exporter(config, ...)`: `vigil serve` with a config of the test's own.
- `live_stack`: the whole stack with the demo service's traffic, shared by the live tests.

Stand-ins for what cannot run here (webhook and SMTP sinks) are in tests/sinks.py.
"""
from __future__ import annotations

import contextlib
import functools
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vigil_exporter.tools.stack.components import (
    Component,
    Exporter,
    Postgres,
    PostgresReplica,
    Redis,
    RedisReplica,
)
from vigil_exporter.tools.stack.process import free_port

# A `vigil stack up` running on this machine must not become the default of the tests' `vigil
# alerts` commands (vigil_exporter.tools.stack.state): each test process has its own state file.
os.environ.setdefault("VIGIL_STACK_STATE",
                      str(Path(tempfile.gettempdir()) / f"vigil-test-stack-{os.getpid()}.json"))


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/exposition.txt from this run's /metrics "
                          "(test_golden_exposition.py)")


def uses_live_stack(item) -> bool:
    # live_prometheus asks for the stack when no URL is given
    return bool({"live_stack", "live_prometheus"} & set(getattr(item, "fixturenames", ())))


# Files that take a minute or more of their own (a quiet run's --durations): handed to the
# workers in this order right after the live stack's, so that the session does not end with one
# worker on one of them while the others have nothing left (test_paging_live.py, collected late,
# did: 2.7 min), and the short files fill the gaps at the end. The CPU-bound ones first, beside
# the live stack's tests (which mostly wait on it); those that run stacks of their own (a stack
# with demo traffic takes about half a core while its test waits) after them.
LONG_FILES = ("test_promtool_units.py", "test_customisation.py", "test_dashboards.py",
              "test_slo.py", "test_paging_live.py", "test_alert_pipeline.py")
# Files whose tests share no fixture beyond a test's own: with `--dist loadfile` each of their
# tests is a unit of work of its own, so that the workers share them (promtool's unit tests: two
# and a half minutes of CPU in one file).
TEST_UNIT_FILES = frozenset({"test_promtool_units.py"})


def _long_rank(item) -> int:
    name = item.path.name
    return LONG_FILES.index(name) if name in LONG_FILES else len(LONG_FILES)


def pytest_collection_modifyitems(items):
    """The tests that use `live_stack` run first, one after another: the stack (traffic and
    1 s rule evaluations, about half a core) then runs once per session and only while they run
    (LiveStack stops it after the last of them); those marked `aged_live_stack` last, when the
    stack has minutes of history. With `--dist loadfile`, the files that use it are one unit
    of work for one worker (pytest_xdist_make_scheduler). Then LONG_FILES, longest first, then
    the rest."""
    items.sort(key=lambda item: (not uses_live_stack(item),  # stable: order within kept
                                 item.get_closest_marker("aged_live_stack") is not None,
                                 _long_rank(item)))


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown when it is not loaded
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with every file that uses the live stack in one unit and each test of
    TEST_UNIT_FILES a unit of its own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    # The controller sees node ids, not fixtures: a file is in the live unit when it names the
    # fixture (what uses_live_stack reads from its items on the workers).
    @functools.cache
    def unit(path: str) -> str:
        text = (config.rootpath / path).read_text(encoding="utf-8")
        return "live stack" if "live_stack" in text or "live_prometheus" in text else path

    class LiveStackFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if Path(path).name in TEST_UNIT_FILES else unit(path)

    # Units in collection order (pytest_collection_modifyitems), not by their number of tests.
    config.option.loadscopereorder = False
    return LiveStackFiles(config, log)


def pytest_runtest_setup(item):
    if uses_live_stack(item):
        LIVE_STACK.start()  # again, if an earlier test stopped it (no-op before the fixture ran)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:  # after the test's own fixtures are torn down
        if nextitem is not None and uses_live_stack(item) and not uses_live_stack(nextitem):
            LIVE_STACK.stop()


def pytest_sessionfinish(session):
    LIVE_STACK.stop()


def _serve(component: Component) -> Iterator[Component]:
    component.start()
    try:
        yield component
    finally:
        component.stop()
        component.cleanup()


def _redis(tmp_path_factory) -> Redis:
    # no memory limit (the collector tests read maxmemory 0)
    return Redis("redis", tmp_path_factory.mktemp("redis"), free_port(),
                 extra_args=["--maxmemory", "0"])


def _postgres(tmp_path_factory) -> Postgres:
    # max_connections 50: tests count against it; URLs name the psycopg driver, which tests
    # swap for asyncpg
    return Postgres("postgres", tmp_path_factory.mktemp("postgres"), free_port(),
                    driver="psycopg",
                    extra_args=["-c", "max_connections=50", "-c", "shared_buffers=16MB"])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    yield from _serve(_redis(tmp_path_factory))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    yield from _serve(_postgres(tmp_path_factory))


@dataclass
class Pair:
    primary: Component
    replica: Component


@pytest.fixture(scope="session")
def postgres_pair(tmp_path_factory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp("postgres-pair")
    settings = ["-c", "shared_buffers=16MB"]
    primary = Postgres("primary", workdir, free_port(), driver="psycopg", statements=True,
                       extra_args=settings)
    replica = PostgresReplica("replica", workdir, free_port(), driver="psycopg",
                              statements=True, primary=primary, extra_args=settings)
    with contextlib.ExitStack() as running:
        running.enter_context(contextlib.closing(_Served(primary)))
        running.enter_context(contextlib.closing(_Served(replica)))
        yield Pair(primary, replica)


@pytest.fixture(scope="session")
def redis_pair(tmp_path_factory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp("redis-pair")
    primary = Redis("primary", workdir, free_port(), extra_args=[
        "--maxmemory", "0", "--repl-diskless-sync-delay", "0"])  # the replica syncs at once
    with contextlib.closing(_Served(primary)):
        replica = RedisReplica("replica", workdir, free_port(), primary=primary,
                               extra_args=["--maxmemory", "0"])
        with contextlib.closing(_Served(replica)):
            yield Pair(primary, replica)


class _Served:
    """A started component, stopped and cleaned up by close()."""

    def __init__(self, component: Component):
        self.component = component.start()

    def close(self) -> None:
        self.component.stop()
        self.component.cleanup()


@pytest.fixture
def redis_isolated(tmp_path_factory):
    """A Redis of the test's own, free to be stopped and restarted."""
    yield from _serve(_redis(tmp_path_factory))


@pytest.fixture
def postgres_isolated(tmp_path_factory):
    """A PostgreSQL of the test's own, free to be stopped and restarted."""
    yield from _serve(_postgres(tmp_path_factory))


@pytest.fixture(scope="session")
def start_exporter(tmp_path_factory) -> Iterator[Callable[..., Exporter]]:
    """`start_exporter(config, args=(), env=None, ...)`: `python -m vigil_exporter serve` with
    this config (and `--demo` with seed=True), started and ready (`ready_path`, default
    /health/ready; wait=False returns at once). The caller stops it; whatever still runs at the
    end of the session is stopped then."""
    started: list[Exporter] = []

    def start(config: dict, args: tuple[str, ...] = (), env: dict | None = None,
              seed: bool = False, wait: bool = True, ready_path: str | None = None,
              ssl_context: ssl.SSLContext | None = None, start_timeout: float = 30.0) -> Exporter:
        exporter = Exporter("exporter", tmp_path_factory.mktemp("exporter"), free_port(),
                            config=config, seed=seed, env=env, extra_args=list(args),
                            ready_path=ready_path, ssl_context=ssl_context,
                            start_timeout=start_timeout)
        started.append(exporter)
        return exporter.start(wait=wait)

    yield start
    for exporter in started:
        exporter.stop()


class LiveStack:
    """The whole stack from local binaries, shared by the live tests: Redis, PostgreSQL, the
    exporter, the demo service with traffic, Prometheus with the bundle's rules (RedisDown's
    `for` and the anomaly season shortened, the way a user overrides the bundle), Alertmanager
    and VictoriaMetrics with remote_write (the compose `scale-out` shape); 1 s intervals.

    Started by the first test that asks for it and stopped after the last of them (not at the
    end of the session); a test that asks after that gets a new one. Attributes are the running
    Stack's."""

    def __init__(self):
        self.stack = None
        self.directory: Path | None = None  # set by the fixture's first use

    def start(self) -> LiveStack:
        from vigil_exporter.tools import bundle
        from vigil_exporter.tools.stack.stack import Stack

        if self.stack is not None or self.directory is None:
            return self
        rules = Path(tempfile.mkdtemp(prefix="rules", dir=self.directory))
        # the anomaly baselines compare with the same hour a week ago: 2 minutes here, so that
        # every recording rule has series within the tests' minutes
        bundle.build_rules(directory=rules, overrides={"forDurations": {"RedisDown": "10s"},
                                                       "windows": {"anomalySeason": "2m",
                                                                   "anomalyBaseline": "1h"}})
        stack = Stack(free_ports=True, demo=True, traffic=20, victoriametrics=True,
                      scrape_interval="1s", evaluation_interval="1s", collector_interval="1s",
                      rules_dir=rules)
        missing = stack.missing_binaries()
        assert not missing, "\n".join(missing) + "\nrun the test command from README.md"
        stack.start()
        self.stack = stack
        try:
            stack.wait_for_query('up{job="vigil"} == 1', timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stack, self.stack = self.stack, None
        if stack is not None:
            stack.stop()

    def __getattr__(self, name):
        if self.stack is None:
            raise RuntimeError("the live stack is not running")
        return getattr(self.stack, name)


LIVE_STACK = LiveStack()


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory) -> LiveStack:
    LIVE_STACK.directory = tmp_path_factory.getbasetemp()
    return LIVE_STACK.start()


@pytest.fixture
def vigil_cli(tmp_path, monkeypatch, capsys):
    """`vigil(*argv)`: the command line run in this process, in tmp_path (no interpreter start-up,
    which costs a second or more per run): `.returncode`, `.stdout`, `.stderr`. An exception
    escaping `main()` is a "Traceback" in stderr, as in a real run."""
    import logging
    import sys
    import traceback
    from types import SimpleNamespace

    from vigil_exporter.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*argv) -> SimpleNamespace:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exc:
            code = exc.code
        except Exception:  # noqa: BLE001 - reported the way the interpreter would
            code = 1
            sys.stderr.write("Traceback (most recent call last):\n" + traceback.format_exc())
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)
    return run
