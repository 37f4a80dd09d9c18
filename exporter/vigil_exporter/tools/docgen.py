"""Generate docs/metrics.md and docs/configuration.md from the code.

`python -m vigil_exporter.tools.docgen [--postgres URL --redis URL] [--check]`: the metrics reference is
taken from what the collectors really yield against a live PostgreSQL and Redis (so every
PostgreSQL-only family is present) and from the instrumentation library's metric objects. The
configuration reference comes from the validation schema. `--check` fails when a committed file
differs from a fresh build.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vigil_exporter import validation
from vigil_exporter.config import load, root_schema
from vigil_exporter.tools import checkout, generated

METRICS_MD = Path("docs/metrics.md")
CONFIGURATION_MD = Path("docs/configuration.md")

# Names that older dashboards use, and where each one lives now.
LEGACY_NAMES = [
    ("db_pool_size", "vigil_db_pool_size", "exporter's pool per `database`; a service's own "
     "pool per `pool` through `instrument_engine`"),
    ("db_pool_checked_out", "vigil_db_pool_checked_out", "same split as `db_pool_size`"),
    ("db_query_duration_seconds", "vigil_db_query_duration_seconds",
     "histogram by `pool` and `statement`, from `instrument_engine`"),
    ("redis_connections_active", "vigil_redis_connected_clients",
     "server side; a service's own client: `redis_client_connections_active`"),
    ("redis_operations_total", "vigil_redis_commands_processed_total",
     "server side; by command from a service: `redis_client_operations_total`"),
    ("users_total", "vigil_business_users", "a gauge, so no `_total`"),
    ("api_keys_active", "vigil_business_api_keys_active", ""),
    ("sessions_active", "vigil_business_sessions_active", ""),
    ("cpu_percent", "vigil_system_cpu_usage_ratio", "0..1 instead of 0..100"),
    ("memory_percent", "vigil_system_memory_usage_ratio", "0..1 instead of 0..100"),
    ("disk_percent", "vigil_system_disk_usage_ratio", "0..1, per `mountpoint`"),
    ("agents_count", "vigil_tenant_agents", "per `tenant`"),
    ("active_agents_count", "vigil_tenant_agents_active", "per `tenant`"),
    ("channels_count", "vigil_tenant_channels", "per `tenant`"),
    ("messages_in_count", "vigil_tenant_messages_today{direction=\"in\"}",
     "per `tenant`; all-time counter: `vigil_tenant_messages_total`"),
    ("messages_out_count", "vigil_tenant_messages_today{direction=\"out\"}", "per `tenant`"),
    ("api_calls_count", "vigil_tenant_api_calls_today",
     "per `tenant`; all-time counter: `vigil_tenant_api_calls_total`"),
    ("storage_used_bytes", "vigil_tenant_storage_bytes", "per `tenant`"),
]


def exporter_families(servers: Servers) -> list:
    """Every family the exporter serves, collected once against live, throwaway servers
    (the demo data set is loaded into an empty database so that labelled families have rows;
    a replica with its slot and pg_stat_statements give the PostgreSQL features theirs)."""
    import redis

    from vigil_exporter import dbschema
    from vigil_exporter.wiring import build

    postgres_url, redis_url = servers.postgres, servers.redis
    dbschema.load_demo_data(postgres_url)  # creates the schema; labels come from real rows
    with redis.Redis.from_url(redis_url) as client:  # so that per-db key counts have a row
        client.set("vigil:docgen", "1")
    databases = {"main": {"url": postgres_url}}
    if servers.postgres_replica:
        databases["replica"] = {"url": servers.postgres_replica}
    instances = {"main": {"url": redis_url, "keys": [{"key": "queue:docs", "type": "list"}],
                          "key_patterns": {"patterns": ["vigil:*"]}}}
    if servers.redis_replica:
        instances["replica"] = {"url": servers.redis_replica}
    config = load(None, environ={}, overrides={
        "collectors.database.databases": databases,
        "collectors.redis.instances": instances,
        # on, so that its aggregate families are listed too (the five demo tenants all stay)
        "collectors.business.bounded_tenants": {"enabled": True},
    })
    wiring = build(config)
    asyncio.run(wiring.collect_once())
    return [f for f in wiring.registry.collect() if f.name.startswith("vigil_")]


def library_families() -> list[tuple[str, str, list[str], str]]:
    """(name, type, labels, help) of every metric the instrumentation library defines."""
    from prometheus_client import CollectorRegistry

    from vigil_instrument import Metrics

    return sorted((f.name, f.type, list(f.labels), f.documentation)
                  for f in Metrics(registry=CollectorRegistry()).families())


def _exporter_rows(families) -> list[tuple[str, str, list[str], str]]:
    rows = {}
    for family in families:
        labels = sorted({k for s in family.samples for k in s.labels})
        name = family.name + ("_total" if family.type == "counter" else "")
        if family.type == "info":
            name = family.name + "_info"
        rows[name] = (name, family.type, labels, family.documentation)
    return [rows[k] for k in sorted(rows)]


def cell(text: str) -> str:
    """Text in a Markdown table cell, shown exactly: "|" escaped as GitHub's tables want it (the
    backslash is not displayed, also inside a code span), never replaced by another character."""
    return text.replace("|", "\\|")


def _table(rows) -> list[str]:
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for name, kind, labels, help_text in rows:
        shown = ", ".join(f"`{label}`" for label in labels) or "none"
        lines.append(f"| `{name}` | {kind} | {shown} | {cell(help_text)} |")
    return lines


def render_metrics(exporter_rows, library_rows) -> str:
    lines = [
        "# Metrics reference",
        "",
        "Generated by `python -m vigil_exporter.tools.docgen` from the code; a test fails when this file "
        "is stale. Do not edit by hand.",
        "",
        "## Exporter (`vigil serve`, job `vigil`)",
        "",
        "Values are refreshed in the background on each collector's interval; every HELP "
        "string says how often. Besides these, the standard `process_*` and `python_*` "
        "families of prometheus-client are served.",
        "",
        *_table(exporter_rows),
        "",
        "## Instrumentation library (`vigil_instrument`, in your service)",
        "",
        *_table(library_rows),
        "",
        "## Names from older dashboards",
        "",
        "| old name | Vigil name | note |",
        "|---|---|---|",
        *[f"| `{old}` | `{new}` | {note} |" for old, new, note in LEGACY_NAMES],
        "",
    ]
    return "\n".join(lines)


def render_configuration() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated by `python -m vigil_exporter.tools.docgen` from the validation schema; a test fails when "
        "this file is stale. A commented example is `examples/vigil.yml`.",
        "",
        "Vigil reads one YAML file (`--config FILE` or `VIGIL_CONFIG`). Environment variables "
        "override the file, and flags override both:",
        "",
        "| variable (or `VARIABLE_FILE` naming a file that holds it) | key it sets |",
        "|---|---|",
    ]
    from vigil_exporter.config import ENVIRONMENT
    lines += [f"| `{var}` | `{'.'.join(keys)}` |" for var, keys in ENVIRONMENT.items()]
    lines += ["", "Durations are written like Prometheus durations: `500ms`, `15s`, `1m30s`, `2h`.",
              "", "| key | expected | default | meaning |", "|---|---|---|---|"]
    for path, expected, default, help_text in validation.describe(root_schema()):
        shown = f"`{cell(default)}`" if default not in ("", "unset", "required") else default
        lines.append(f"| `{path}` | {cell(expected)} | {shown} | {cell(help_text)} |")
    return "\n".join(lines) + "\n"


def build(servers: Servers) -> dict[Path, str]:
    """Absolute path in the checkout -> the text it should hold."""
    root = checkout.root()
    return {
        root / METRICS_MD: render_metrics(_exporter_rows(exporter_families(servers)),
                                          library_families()),
        root / CONFIGURATION_MD: render_configuration(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vigil_exporter.tools.docgen")
    parser.add_argument("--postgres", help="a live PostgreSQL SQLAlchemy URL (default: start a "
                        "throwaway server from the local binaries)")
    parser.add_argument("--redis", help="a live Redis URL (default: start a throwaway server)")
    parser.add_argument("--check", action="store_true", help="fail if a committed file is stale")
    args = parser.parse_args(argv)
    with throwaway_servers(args.postgres, args.redis) as servers:
        differing = generated.sync(build(servers), args.check)
    for path in differing:
        if args.check:
            print(f"{path} is stale: run python -m vigil_exporter.tools.docgen", file=sys.stderr)
        else:
            print(f"wrote {path}")
    return 1 if args.check and differing else 0


@dataclass
class Servers:
    """URLs of the servers the metrics reference is collected from."""

    postgres: str
    redis: str
    postgres_replica: str | None = None  # a streaming replica of `postgres`
    redis_replica: str | None = None


@contextlib.contextmanager
def throwaway_servers(postgres_url: str | None, redis_url: str | None):
    """The given URLs, or servers of the local stack's components in a temporary directory:
    a PostgreSQL primary with pg_stat_statements, its replica (with a replication slot), and a
    Redis primary with its replica."""
    from vigil_exporter.tools.stack.components import (
        Postgres,
        PostgresReplica,
        Redis,
        RedisReplica,
    )
    from vigil_exporter.tools.stack.process import free_port

    with tempfile.TemporaryDirectory(prefix="vigil-docgen-") as workdir, \
            contextlib.ExitStack() as running:
        def start(component):
            running.callback(component.cleanup)
            running.callback(component.stop)
            return component.start()

        servers = Servers(postgres_url, redis_url)
        if postgres_url is None:
            primary = start(Postgres("postgres", Path(workdir), free_port(), driver="psycopg",
                                     statements=True))
            replica = start(PostgresReplica("postgres-replica", Path(workdir), free_port(),
                                            driver="psycopg", statements=True, primary=primary))
            servers.postgres, servers.postgres_replica = primary.url, replica.url
        if redis_url is None:
            redis = start(Redis("redis", Path(workdir), free_port(),
                                extra_args=["--repl-diskless-sync-delay", "0"]))
            replica = start(RedisReplica("redis-replica", Path(workdir), free_port(),
                                         primary=redis))
            servers.redis, servers.redis_replica = redis.url, replica.url
        yield servers


if __name__ == "__main__":
    sys.exit(main())
