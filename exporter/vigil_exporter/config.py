"""Configuration: one YAML file, a few environment variables, validated in one pass.

Precedence: command-line flags > environment variables > the file > defaults.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from vigil_exporter.collectors import COLLECTORS
from vigil_exporter.validation import Duration, Errors, Int, Object, Str

DEFAULT_LISTEN = "0.0.0.0:9477"
DEFAULT_SQLITE = "sqlite:///vigil.db"

# Environment variable -> key path it sets.
ENVIRONMENT = {
    "VIGIL_LISTEN_ADDRESS": ("listen_address",),
    "VIGIL_LOG_LEVEL": ("log_level",),
    "VIGIL_DATABASE_URL": ("collectors", "database", "databases", "main", "url"),
    "VIGIL_REDIS_URL": ("collectors", "redis", "instances", "main", "url"),
    "VIGIL_ALERT_LOG": ("alerts", "log_file"),
    "VIGIL_USAGE_PROMETHEUS_URL": ("usage", "prometheus_url"),
}


class ConfigError(Exception):
    """A configuration that cannot be used; `faults` are "file: key: message" lines."""

    def __init__(self, source: str, faults: list[str]):
        self.source = source
        self.faults = faults
        super().__init__("\n".join(f"{source}: {f}" for f in faults))


def root_schema() -> Object:
    collectors = {name: cls.config_schema for name, cls in sorted(COLLECTORS.items())}
    return Object({
        "listen_address": Str(DEFAULT_LISTEN, "HOST:PORT to serve on.", pattern=r".*:\d{1,5}"),
        "log_level": Str("info", "Log level.", choices=("debug", "info", "warning", "error")),
        "web": Object({
            "config_file": Str(None, "Exporter-toolkit web config (TLS, basic auth)."),
            "max_request_body_bytes": Int(1 << 20, "Largest request body accepted.", minimum=1024),
            "max_field_size": Int(8190, "Largest request header line accepted.", minimum=1024),
            "shutdown_timeout": Duration("3s", "Grace period for open requests on SIGTERM."),
        }),
        "alerts": Object({
            "log_file": Str("vigil-alerts.jsonl",
                            "JSON-lines file the Alertmanager log receiver appends to."),
            "max_body_bytes": Int(1 << 20, "Largest webhook body accepted.", minimum=1024),
        }),
        "usage": Object({
            "prometheus_url": Str(None, "Prometheus (running the bundle's rules) that "
                                        "GET /api/v1/usage-metrics reads; unset: no such path."),
            "timeout": Duration("10s", "How long one query of a usage report may take."),
        }),
        "collectors": Object(collectors),
    })


@dataclass
class Config:
    data: dict
    source: str  # the file it came from, or "defaults"

    def __getitem__(self, key):
        return self.data[key]

    def collector(self, name: str) -> dict:
        return self.data["collectors"][name]

    def business_database(self) -> dict:
        """The entry of collectors.database.databases the business queries run against."""
        return self.data["collectors"]["database"]["databases"][self.collector("business")["database"]]


def load(path: str | os.PathLike | None = None, environ=None,
         overrides: dict | None = None) -> Config:
    """Read, merge and validate; raise ConfigError naming every fault."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("VIGIL_CONFIG")
    source = str(path) if path else "defaults"
    raw = _read_file(path) if path else {}
    for var, keys in ENVIRONMENT.items():
        value = _from_environment(var, environ)
        if value:
            _set(raw, keys, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(raw, tuple(dotted.split(".")), value)
    _apply_embedded_default(raw)
    errors = Errors()
    data = root_schema().validate(raw, "", errors)
    faults = [str(f) for f in errors.faults] or cross_section_faults(data)
    if faults:
        raise ConfigError(source, faults)
    return Config(data, source)


def cross_section_faults(data: dict) -> list[str]:
    """Faults of a validated configuration that involve two sections."""
    business, databases = data["collectors"]["business"], data["collectors"]["database"]["databases"]
    if business["enabled"] and business["database"] not in databases:
        known = ", ".join(f'"{name}"' for name in sorted(databases)) or "none"
        return [f"collectors.business.database: expected the name of a database in "
                f'collectors.database.databases ({known}), got "{business["database"]}"']
    return []


def _from_environment(var: str, environ) -> str | None:
    """VAR, or the content of the file named by VAR_FILE (Docker secrets)."""
    if environ.get(var):
        return environ[var]
    secret_file = environ.get(f"{var}_FILE")
    if not secret_file:
        return None
    try:
        return Path(secret_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{var}_FILE", [f"cannot read {secret_file}: {exc.strerror}"]) from None


def _read_file(path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}not valid YAML: {problem}"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), [f"expected a mapping at the top level, got {type(raw).__name__}"])
    return raw


def _set(raw: dict, keys: tuple[str, ...], value) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _apply_embedded_default(raw: dict) -> None:
    """No database configured at all: use the embedded SQLite file."""
    db = raw.setdefault("collectors", {}).setdefault("database", {})
    if isinstance(db, dict) and not db.get("databases"):
        db["databases"] = {"main": {"url": DEFAULT_SQLITE}}
