"""Configuration: one YAML file, a few environment variables, validated in one pass.

Precedence: command-line flags > environment variables > the file > defaults.
"""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from vigil_exporter.validation import Duration, Errors, Float, Int, Map, Object, Str

DEFAULT_LISTEN = "0.0.0.0:9477"
# A bcrypt hash that bcrypt can check: $2a$, $2b$, $2x$ or $2y$ ("$2$" is refused as an
# invalid salt), a cost gensalt accepts (04 to 31), then 22 characters of salt, whose last one
# holds two bits only (".Oeu"), and 31 of hash.
BCRYPT_HASH = r"\$2[abxy]\$(?:0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{21}[.Oeu][./A-Za-z0-9]{31}"
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
# Configuration key -> the command-line flag that overrides it.
FLAGS = {"listen_address": "--listen", "log_level": "--log-level"}


class ConfigError(Exception):
    """A configuration that cannot be used; `faults` are "key: message" lines of `source`.

    A fault may also be a (source, message) pair when it comes from somewhere else than the
    file (an environment variable, a flag). Secrets are redacted from every line."""

    def __init__(self, source: str, faults: list[str | tuple[str, str]]):
        from vigil_exporter.logs import redact

        self.source = source
        self.faults = [f if isinstance(f, str) else f[1] for f in faults]
        self.lines = [redact(f"{source}: {f}" if isinstance(f, str) else f"{f[0]}: {f[1]}")
                      for f in faults]
        super().__init__("\n".join(self.lines))


def root_schema() -> Object:
    # Imported here, not at the top: the collectors (SQLAlchemy, redis-py, psutil) and the
    # server (aiohttp) take most of a second to import, and the command line imports this
    # module for ConfigError, DEFAULT_LISTEN and read_yaml in commands that need neither.
    from vigil_exporter.collectors import COLLECTORS
    from vigil_exporter.server import LIMITS_SCHEMA

    collectors = {name: cls.config_schema for name, cls in sorted(COLLECTORS.items())}
    return Object({
        "listen_address": Str(DEFAULT_LISTEN, "HOST:PORT to serve on (port 0 to 65535; the host "
                              "must resolve where serve runs).", pattern=r".*:\d{1,5}"),
        "log_level": Str("info", "Log level.", choices=("debug", "info", "warning", "error")),
        "web": Object({
            "config_file": Str(None, "Exporter-toolkit web config (TLS, basic auth); relative "
                                     "to the configuration file."),
            "max_request_body_bytes": Int(1 << 20, "Largest request body accepted.", minimum=1024),
            "shutdown_timeout": Duration("3s", "Grace period for open requests on SIGTERM; "
                                               "then every connection is closed.", maximum=60),
            **LIMITS_SCHEMA,
        }),
        "alerts": Object({
            "log_file": Str("vigil-alerts.jsonl",
                            "JSON-lines file the Alertmanager log receiver appends to."),
            "max_body_bytes": Int(1 << 20, "Largest webhook body accepted.", minimum=1024),
            "max_alerts": Int(1000, "Most alerts in one webhook notification (413 beyond).",
                              minimum=1),
            "rate_limit": Float(5.0, "Webhook requests per second once the burst is spent "
                                     "(429 beyond; Alertmanager retries).", above=0),
            "rate_burst": Int(20, "Webhook requests accepted at once.", minimum=1),
            "max_log_bytes": Int(64 << 20, "Size at which the alert log is renamed to "
                                           "<log_file>.1 and started again.", minimum=1 << 16),
            "log_lines_per_second": Float(20.0, "Alert lines written to the exporter's own log "
                                                "per second at most (the alert log file has "
                                                "every alert).", above=0),
            "bearer_token_file": Str(None, "File holding the token the webhook requires "
                                           "(Authorization: Bearer), instead of the web config's "
                                           "basic auth; relative to the configuration file."),
            "basic_auth_users": Map(bcrypt_hash(), dict,
                                    "Users of the webhook: name -> bcrypt hash, instead of the "
                                    "web config's basic auth."),
        }),
        "usage": Object({
            "prometheus_url": Str(None, "Prometheus (running the bundle's rules) that "
                                        "GET /api/v1/usage-metrics reads; unset: no such path."),
            "timeout": Duration("10s", "How long one query of a usage report may take."),
            "max_report_tenant_days": Int(
                50_000, "Tenants x days one report of every tenant may hold (400 beyond: ask "
                "for one tenant or fewer days); the answer is about 300 bytes per tenant-day.",
                minimum=366),
        }),
        "collectors": Object(collectors),
    }, check=_check_listen_address)


def bcrypt_hash() -> Str:
    """The field of a user's bcrypt hash (`htpasswd -nBC 10 user`)."""
    field = Str(pattern=BCRYPT_HASH)
    field.expected = ("a bcrypt hash: $2a$, $2b$, $2x$ or $2y$, a cost from 04 to 31, then 53 "
                      "characters of salt and hash")
    return field


def split_listen_address(address: str) -> tuple[str, int]:
    """("0.0.0.0", 9477) of "0.0.0.0:9477"; "[::1]:9477" gives "::1"; no host: every address."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def _check_listen_address(data: dict, path: str, errors: Errors) -> None:
    """What `serve` binds must be a real port. Whether the host resolves is not asked while
    loading (a resolver can hang): `serve` reports it as a listen_address fault, `check-config`
    asks separately (unresolved_listen_address)."""
    _, port = split_listen_address(data["listen_address"])
    if port > 65535:
        errors.add("listen_address", f"expected a port from 0 to 65535, got {port}")


RESOLVE_TIMEOUT = 2.0  # seconds check-config waits for the listen address's host to resolve


def unresolved_listen_address(address: str) -> tuple[str, bool] | None:
    """Why the host of `address` does not resolve here, and whether that is certain (the
    resolver said so) rather than a resolver that gave no answer within RESOLVE_TIMEOUT seconds
    (asked on a daemon thread: getaddrinfo cannot be cancelled); None when it resolves."""
    host, port = split_listen_address(address)
    outcome: list[tuple[str, bool] | None] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            outcome.append(None)
        except (OSError, UnicodeError) as exc:
            outcome.append((getattr(exc, "strerror", None) or str(exc), _certain(exc)))

    thread = threading.Thread(target=resolve, name="resolve-listen-address", daemon=True)
    thread.start()
    thread.join(RESOLVE_TIMEOUT)
    if outcome and outcome[0] is None:
        return None
    cause, certain = outcome[0] if outcome else (f"no answer within {RESOLVE_TIMEOUT:g} s", False)
    return (f'listen_address: the host "{host}" does not resolve here ({cause}); serve '
            "needs it to resolve where it runs"), certain


# The resolver's answers that a host does not exist (not "try again later").
NO_SUCH_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def _certain(exc: BaseException) -> bool:
    """Whether a resolution error says the host cannot resolve (no such name, or a name that
    is not valid), not that the resolver failed for now."""
    return isinstance(exc, UnicodeError) or (
        isinstance(exc, socket.gaierror) and exc.errno in NO_SUCH_HOST)


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
    """Read, merge and validate; raise ConfigError naming every fault, and for a value that
    came from an environment variable or a flag, that variable or flag."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("VIGIL_CONFIG")
    source = str(path) if path else "defaults"
    raw = read_yaml(path) if path else {}
    origins: dict[tuple[str, ...], str] = {}  # key path -> the variable or flag that set it
    for var, keys in ENVIRONMENT.items():
        value = _from_environment(var, environ)
        if value is not None:
            _set(raw, keys, value)
            origins[keys] = var if var in environ else f"{var}_FILE"
    for dotted, value in (overrides or {}).items():
        if value is not None:
            keys = tuple(dotted.split("."))
            _set(raw, keys, value)
            origins[keys] = FLAGS.get(dotted, f"--{dotted}")
    _register_urls(raw)
    _apply_embedded_default(raw)
    errors = Errors()
    data = root_schema().validate(raw, "", errors)
    faults = [str(f) for f in errors.faults] or cross_section_faults(data)
    if faults:
        raise ConfigError(source, [_blame(fault, origins) for fault in faults])
    return Config(data, source)


def _blame(fault: str, origins: dict[tuple[str, ...], str]) -> str | tuple[str, str]:
    """A fault about a value from the environment or a flag is that variable's or flag's."""
    for keys, origin in origins.items():
        dotted = ".".join(keys)
        if fault.startswith(dotted + ":") or fault.startswith(dotted + "."):
            return origin, fault
    return fault


def _register_urls(raw: dict) -> None:
    """Tell the log redaction every configured URL before anything can print one."""
    from vigil_exporter.logs import register_url

    collectors = raw.get("collectors") if isinstance(raw, dict) else None
    for section, entries in (("database", "databases"), ("redis", "instances")):
        named = _get(collectors, section, entries)
        for entry in named.values() if isinstance(named, dict) else ():
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                register_url(entry["url"])


def _get(node, *keys):
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def cross_section_faults(data: dict) -> list[str]:
    """Faults of a validated configuration that involve two sections."""
    business, databases = data["collectors"]["business"], data["collectors"]["database"]["databases"]
    if business["enabled"] and business["database"] not in databases:
        known = ", ".join(f'"{name}"' for name in sorted(databases)) or "none"
        return [f"collectors.business.database: expected the name of a database in "
                f'collectors.database.databases ({known}), got "{business["database"]}"']
    return []


def _from_environment(var: str, environ) -> str | None:
    """VAR, or the content of the file named by VAR_FILE (Docker secrets); None when neither
    is set. A variable or file that is set but empty is an error, not "unset": an empty
    VIGIL_DATABASE_URL must not quietly mean the embedded SQLite file."""
    if var in environ:
        value = environ[var]
        if not value.strip():
            raise ConfigError(var, ["is set but empty (unset it to use the default)"])
        return value.strip()
    secret_file = environ.get(f"{var}_FILE")
    if secret_file is None:
        return None
    if not secret_file.strip():
        raise ConfigError(f"{var}_FILE", ["is set but empty (expected the path of a file)"])
    try:
        value = Path(secret_file).read_bytes().decode("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{var}_FILE", [f"cannot read {secret_file}: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{var}_FILE", [f"{secret_file}: {_not_utf8(exc)}"]) from None
    if not value:
        raise ConfigError(f"{var}_FILE", [f"{secret_file} is empty"])
    return value


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last one
    silently, so half of a config would be ignored)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the base class names it
                continue
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first.start_mark.line + 1})",
                    key_node.start_mark)
        return super().construct_mapping(node, deep)


def read_yaml(path, *, mapping: bool = True):
    """The document of a YAML file that must be UTF-8 text without duplicate keys; a mapping
    unless `mapping` is False. Any fault is a ConfigError naming the file (and the line)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [_not_utf8(exc)]) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}not valid YAML: {problem}"]) from None
    if raw is None:
        return {} if mapping else None
    if mapping and not isinstance(raw, dict):
        raise ConfigError(str(path), [f"expected a mapping at the top level, got {type(raw).__name__}"])
    return raw




def _not_utf8(exc: UnicodeDecodeError) -> str:
    return (f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8")


def _set(raw: dict, keys: tuple[str, ...], value) -> None:
    """Set a key path; a section of the wrong type is left for validation to report."""
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            return
        node = child
    node[keys[-1]] = value


def _apply_embedded_default(raw: dict) -> None:
    """No database configured at all: use the embedded SQLite file."""
    collectors = raw.setdefault("collectors", {})
    if collectors is None:
        collectors = raw["collectors"] = {}
    if not isinstance(collectors, dict):
        return
    db = collectors.setdefault("database", {})
    if db is None:
        db = collectors["database"] = {}
    if isinstance(db, dict) and not db.get("databases"):
        db["databases"] = {"main": {"url": DEFAULT_SQLITE}}
