"""`vigil metrics`, `vigil status` and the embedded default, as a user runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from vigil_exporter.tools.stack.components import sample_value
from vigil_exporter.tools.stack.process import free_port, wait_for


def vigil(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigil_exporter", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env=env)


def test_metrics_json_on_the_embedded_default(tmp_path):
    result = vigil("metrics", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    families = {f["name"]: f for f in json.loads(result.stdout)}
    assert families["vigil_db_up"]["samples"][0]["value"] == 1.0
    assert "vigil_business_users" in families
    assert (tmp_path / "vigil.db").exists()  # the SQLite file with the default schema


def imported_modules(log: str) -> set[str]:
    """The modules a process imported, from its PYTHONPROFILEIMPORTTIME lines."""
    return {line.rsplit("|", 1)[-1].strip() for line in log.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_serve_demo_shows_every_family_but_redis(start_exporter):
    running = start_exporter({}, seed=True, env={"PYTHONPROFILEIMPORTTIME": "1"})
    try:
        body = running.text()
        assert sample_value(body, "vigil_tenant_agents", tenant="initech") > 0
        assert sample_value(body, "vigil_system_cpus") >= 1
        assert sample_value(body, "vigil_redis_up") is None
        health = json.loads(running.text("/health"))
        redis_check = [c for c in health["checks"] if c["name"] == "redis"][0]
        assert (redis_check["status"], redis_check["message"]) == ("disabled", "not configured")
        status = vigil("status", running.url)
        assert status.returncode == 0, status.stderr
        assert "database:main" in status.stdout and "healthy" in status.stdout.splitlines()[0]
    finally:
        running.stop()
    # Nothing it does not use is loaded: no redis-py, no bcrypt without users, no checkout tool,
    # no other command's module, nothing of the library or the demo.
    modules = imported_modules(running.log())
    assert {"aiohttp.web", "sqlalchemy", "vigil_exporter.collectors.business"} <= modules
    unused_roots = {"redis", "bcrypt", "psycopg", "asyncpg", "_jsonnet", "vigil_instrument",
                    "vigil_demo"}
    assert not {m for m in modules if m.split(".")[0] in unused_roots}
    assert not {m for m in modules if m.startswith("vigil_exporter.tools")}
    assert "vigil_exporter.alerting.cli" not in modules


def test_status_of_nothing_is_a_clear_error():
    result = vigil("status", f"http://127.0.0.1:{free_port()}", "--timeout", "1")
    assert result.returncode == 1
    assert "cannot reach the exporter" in result.stderr
    assert "Traceback" not in result.stderr


# What the exporter's commands need and the command line itself must not import: parsing any
# `vigil` command took about a second with them (config.py imported the collectors) and the test
# suite runs `vigil` in hundreds of subprocesses. A command imports them when it runs.
NOT_FOR_PARSING = ("sqlalchemy", "redis", "aiohttp", "psutil", "asyncio", "urllib.request",
                   "vigil_exporter.collectors", "vigil_exporter.server", "vigil_exporter.app")


def test_the_command_line_parses_without_the_exporters_heavy_modules(tmp_path):
    # No running stack: a state file would make the defaults of `vigil alerts` ask psutil
    # whether its process is alive.
    env = {**os.environ, "VIGIL_STACK_STATE": str(tmp_path / "stack.json")}
    code = ("import sys, vigil_exporter.cli as cli\n"
            f"heavy = {NOT_FOR_PARSING!r}\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n"
            "cli.build_parser('dashboards')  # every command module and the demo's\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]"]
    # End to end, through main(): the help of the commands and of a command of each kind.
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    for args in (["--help"], ["check-config", "--help"], ["stack", "up", "--help"],
                 ["alerts", "list", "--help"], ["bundle", "build", "--help"]):
        result = vigil(*args, env=env)
        assert result.returncode == 0, result.stderr
        loaded = imported_modules(result.stderr)
        assert not {m for m in loaded if m in NOT_FOR_PARSING or m.split(".")[0] in NOT_FOR_PARSING}, args


def test_version_and_help():
    assert vigil("--version").stdout.startswith("vigil ")
    help_text = vigil("--help").stdout
    for command in ("serve", "check-config", "metrics", "status", "demo", "alerts", "dashboards",
                    "stack"):
        assert command in help_text


def test_serve_demo_starts_while_its_database_is_down_and_prepares_it_later(
        start_exporter, postgres_isolated):
    """`vigil serve --demo` restarted during a database outage (compose restarts it) used to
    exit with a traceback from creating the schema, so nothing reported the outage."""
    postgres_isolated.stop()
    running = start_exporter({"collectors": {
        "database": {"interval": "1s", "databases": {"main": {"url": postgres_isolated.url}}},
        "business": {"database": "main"}}}, seed=True)
    try:
        assert sample_value(running.text(), "vigil_db_up", database="main") == 0
        assert "the business database does not answer" in running.log()
        assert "Traceback" not in running.log()
        postgres_isolated.start()
        wait_for(lambda: "schema is prepared" in running.log(), 30, what="the schema prepared")
        assert postgres_isolated.scalar("SELECT count(*) FROM tenants") > 0  # the demo data
    finally:
        running.stop()
