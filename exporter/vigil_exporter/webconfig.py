"""TLS and basic auth from a web config file in the Prometheus exporter-toolkit format.

The same file a team already uses for node_exporter works here:

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
    basic_auth_users:
      alice: $2y$10$...   # bcrypt hash
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiohttp import web

from vigil_exporter.config import ConfigError
from vigil_exporter.validation import Errors, Map, Object, Str

CLIENT_AUTH = ("NoClientCert", "RequestClientCert", "RequireAnyClientCert",
               "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

SCHEMA = Object({
    "tls_server_config": Object({
        "cert_file": Str(help="Server certificate (PEM)."),
        "key_file": Str(help="Server private key (PEM)."),
        "client_auth_type": Str("NoClientCert", choices=CLIENT_AUTH),
        "client_ca_file": Str(None, "CA bundle for client certificates."),
        "min_version": Str("TLS12", choices=tuple(TLS_VERSIONS)),
        "max_version": Str("TLS13", choices=tuple(TLS_VERSIONS)),
    }, default=None),
    "http_server_config": Object({"headers": Map(Str(), default=dict)}, default=None),
    "basic_auth_users": Map(Str(pattern=r"\$2[abxy]?\$\d\d\$.{53}"), default=dict,
                            help="user name -> bcrypt hash"),
})


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def load(path: str) -> WebConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    errors = Errors()
    data = SCHEMA.validate(raw, "", errors)
    if errors.faults:
        raise ConfigError(path, [str(f) for f in errors.faults])
    base = Path(path).parent
    tls = data["tls_server_config"]
    return WebConfig(
        ssl_context=_ssl_context(tls, base, path) if tls else None,
        users={u: h.encode() for u, h in data["basic_auth_users"].items()},
        headers=(data["http_server_config"] or {}).get("headers") or {},
    )


def _ssl_context(tls: dict, base: Path, source: str) -> ssl.SSLContext:
    def resolve(name):
        return str(base / tls[name]) if tls[name] and not Path(tls[name]).is_absolute() else tls[name]

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls["min_version"]]
    context.maximum_version = TLS_VERSIONS[tls["max_version"]]
    try:
        context.load_cert_chain(resolve("cert_file"), resolve("key_file"))
        if tls["client_ca_file"]:
            context.load_verify_locations(resolve("client_ca_file"))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(source, [f"tls_server_config: cannot load certificates: {exc}"]) from None
    mode = tls["client_auth_type"]
    if mode in ("RequireAndVerifyClientCert", "RequireAnyClientCert"):
        context.verify_mode = ssl.CERT_REQUIRED
    elif mode in ("VerifyClientCertIfGiven", "RequestClientCert"):
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes.

    bcrypt is slow on purpose, so it runs in a thread, and a (user, password) pair that passed
    once is remembered by a keyed digest: Prometheus scrapes every 15 s with the same secret.
    """

    def __init__(self, users: dict[str, bytes]):
        import bcrypt  # only an exporter with basic auth users loads it

        self._checkpw = bcrypt.checkpw
        self.users = users
        self._key = hashlib.sha256(b"".join(users.values())).digest()
        self._good: set[bytes] = set()

    async def allowed(self, header: str | None) -> bool:
        user, password = _parse_basic(header)
        if user is None or user not in self.users:
            return False
        token = hmac.new(self._key, f"{user}\0{password}".encode(), "sha256").digest()
        if token in self._good:
            return True
        ok = await asyncio.to_thread(self._checkpw, password.encode(), self.users[user])
        if ok:
            self._good.add(token)
        return ok


def _parse_basic(header: str | None) -> tuple[str | None, str]:
    if not header or not header.lower().startswith("basic "):
        return None, ""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, "")


def middleware(config: WebConfig, open_paths: tuple[str, ...] = ()):
    """aiohttp middleware: basic auth (except `open_paths`) and configured response headers."""
    auth = BasicAuth(config.users) if config.users else None

    @web.middleware
    async def web_config_middleware(request: web.Request, handler):
        if auth and request.path not in open_paths and not await auth.allowed(
                request.headers.get("Authorization")):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="vigil"'})
        response = await handler(request)
        response.headers.update(config.headers)
        return response

    return web_config_middleware
