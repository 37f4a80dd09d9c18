"""TLS, basic auth, headers and a rate limit from a web config file in the Prometheus
exporter-toolkit format.

The same file a team already uses for node_exporter works here:

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_allowed_sans: [prometheus.example]      # optional
      min_version: TLS12
      cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
      curve_preferences: [X25519]
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      alice: $2y$10$...   # bcrypt hash
    rate_limit: {interval: 100ms, burst: 20}

Where Python's ssl module cannot do what Go's TLS does, the exporter says so when it starts
(docs/security.md lists the gaps): one curve at most, TLS 1.3 cipher suites fixed by OpenSSL,
no HTTP/2, and no client certificate accepted without verifying it.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import os
import secrets
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from vigil_exporter.config import ConfigError, bcrypt_hash, read_yaml
from vigil_exporter.validation import Bool, Duration, Errors, Int, List, Map, Object, Str

CLIENT_AUTH = ("NoClientCert", "RequestClientCert", "RequireAnyClientCert",
               "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Go's names of the TLS 1.2 cipher suites -> OpenSSL's. TLS 1.3 suites are not configurable
# in Go either; naming one is accepted and changes nothing.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": "", "TLS_AES_256_GCM_SHA384": "", "TLS_CHACHA20_POLY1305_SHA256": "",
}
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1",
          "X25519": "X25519"}
# The headers the exporter-toolkit lets a web config set, and the values it allows (None: any).
# Anything else (Content-Type, Content-Length, Set-Cookie, ...) would break responses.
HEADERS = {"Strict-Transport-Security": None, "X-Content-Type-Options": ("nosniff",),
           "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": None,
           "Content-Security-Policy": None}

SCHEMA = Object({
    "tls_server_config": Object({
        "cert_file": Str(help="Server certificate (PEM)."),
        "key_file": Str(help="Server private key (PEM)."),
        "client_auth_type": Str("NoClientCert", choices=CLIENT_AUTH),
        "client_ca_file": Str(None, "CA bundle for client certificates."),
        "client_allowed_sans": List(Str(), list, "Client certificate SANs allowed (any when "
                                                 "empty); needs RequireAndVerifyClientCert."),
        "min_version": Str("TLS12", choices=tuple(TLS_VERSIONS)),
        "max_version": Str("TLS13", choices=tuple(TLS_VERSIONS)),
        "cipher_suites": List(Str(choices=tuple(CIPHER_SUITES)), list, "TLS 1.2 cipher suites."),
        "prefer_server_cipher_suites": Bool(True, "Ignored, as by Go since 1.18."),
        "curve_preferences": List(Str(choices=tuple(CURVES)), list, "Key exchange curves."),
    }, default=None),
    "http_server_config": Object({
        "headers": Map(Str(), default=dict, key_pattern=r"[A-Za-z0-9-]+"),
        "http2": Bool(True, "HTTP/2: not available (aiohttp serves HTTP/1.1)."),
    }, default=None),
    "basic_auth_users": Map(bcrypt_hash(), default=dict,
                            help="user name -> bcrypt hash"),
    "rate_limit": Object({
        "interval": Duration(None, "Time between requests once the burst is spent "
                                   "(unset: no limit).", minimum=0.000001),
        "burst": Int(0, "Requests allowed at once.", minimum=0),
    }, default=None),
})


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    allowed_sans: list[str] = field(default_factory=list)
    rate_limit: tuple[float, int] | None = None  # (interval seconds, burst)
    warnings: list[str] = field(default_factory=list)  # what Python's TLS cannot apply


def load(path: str) -> WebConfig:
    raw = read_yaml(path)
    errors = Errors()
    data = SCHEMA.validate(raw, "", errors)
    if not errors.faults:
        _check(data, errors)
    if errors.faults:
        raise ConfigError(path, [str(f) for f in errors.faults])
    base = Path(path).parent
    tls = data["tls_server_config"]
    config = WebConfig(
        users={u: h.encode() for u, h in data["basic_auth_users"].items()},
        headers=(data["http_server_config"] or {}).get("headers") or {},
        allowed_sans=tls["client_allowed_sans"] if tls else [],
    )
    if tls:
        config.ssl_context = _ssl_context(tls, base, path, config.warnings)
    if data["http_server_config"] and "http2" in (raw.get("http_server_config") or {}) \
            and data["http_server_config"]["http2"]:
        config.warnings.append("http_server_config.http2: aiohttp serves HTTP/1.1 only")
    limit = data["rate_limit"]
    if limit and limit["interval"]:
        config.rate_limit = (limit["interval"], max(1, limit["burst"]))
    return config


def _check(data: dict, errors: Errors) -> None:
    """What would start and then fail every request (or every handshake) is refused now."""
    tls = data["tls_server_config"]
    if tls:
        if TLS_VERSIONS[tls["min_version"]] > TLS_VERSIONS[tls["max_version"]]:
            errors.add("tls_server_config.min_version", f'"{tls["min_version"]}" is above '
                       f'max_version "{tls["max_version"]}"')
        if tls["client_allowed_sans"] and tls["client_auth_type"] != "RequireAndVerifyClientCert":
            errors.add("tls_server_config.client_allowed_sans",
                       "needs client_auth_type: RequireAndVerifyClientCert")
        if tls["client_auth_type"] in ("RequireAndVerifyClientCert", "VerifyClientCertIfGiven",
                                       "RequireAnyClientCert") and not tls["client_ca_file"]:
            errors.add("tls_server_config.client_ca_file",
                       f'is required with client_auth_type "{tls["client_auth_type"]}" (Python\'s '
                       "ssl module verifies every client certificate it accepts)")
    for name, value in ((data["http_server_config"] or {}).get("headers") or {}).items():
        where = f"http_server_config.headers.{name}"
        allowed = {key.lower(): values for key, values in HEADERS.items()}
        if name.lower() not in allowed:
            errors.add(where, "cannot be configured (allowed: " + ", ".join(HEADERS) + ")")
        elif any(ord(c) < 32 or ord(c) == 127 for c in value):
            errors.add(where, "must not contain control characters (CR, LF, ...)")
        elif allowed[name.lower()] and value.lower() not in allowed[name.lower()]:
            errors.add(where, "expected one of " + ", ".join(allowed[name.lower()]))


def _ssl_context(tls: dict, base: Path, source: str, warnings: list[str]) -> ssl.SSLContext:
    def resolve(name):
        return str(base / tls[name]) if tls[name] and not Path(tls[name]).is_absolute() else tls[name]

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls["min_version"]]
    context.maximum_version = TLS_VERSIONS[tls["max_version"]]
    try:
        context.load_cert_chain(resolve("cert_file"), resolve("key_file"))
        if tls["client_ca_file"]:
            context.load_verify_locations(resolve("client_ca_file"))
        ciphers = [CIPHER_SUITES[name] for name in tls["cipher_suites"] if CIPHER_SUITES[name]]
        if ciphers:
            context.set_ciphers(":".join(ciphers))
    except (OSError, ssl.SSLError, UnicodeError) as exc:
        raise ConfigError(source, [f"tls_server_config: cannot load certificates or cipher "
                                   f"suites: {getattr(exc, 'strerror', None) or exc}"]) from None
    _curves(context, tls["curve_preferences"], warnings)
    mode = tls["client_auth_type"]
    if mode in ("RequireAndVerifyClientCert", "RequireAnyClientCert"):
        context.verify_mode = ssl.CERT_REQUIRED
    elif mode in ("VerifyClientCertIfGiven", "RequestClientCert"):
        context.verify_mode = ssl.CERT_OPTIONAL if tls["client_ca_file"] else ssl.CERT_NONE
    if mode in ("RequireAnyClientCert", "RequestClientCert"):
        warnings.append(f'tls_server_config.client_auth_type "{mode}": Python\'s ssl module cannot '
                        "accept a client certificate without verifying it; "
                        + ("certificates are verified against client_ca_file" if tls["client_ca_file"]
                           else "no client certificate is requested"))
    return context


def _curves(context: ssl.SSLContext, names: list[str], warnings: list[str]) -> None:
    if len(names) == 1:
        context.set_ecdh_curve(CURVES[names[0]])
    elif names:
        warnings.append("tls_server_config.curve_preferences: Python's ssl module sets one curve "
                        "at most; OpenSSL's default list (X25519, P-256, P-384, P-521, ...) is used")


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes, the way the exporter-toolkit does.

    - An unknown user is checked against a dummy hash of the same cost, so that the answer
      takes as long as for a known user with a wrong password: user names cannot be found by
      timing.
    - A password bcrypt refuses (over 72 bytes) is a wrong password, not an error.
    - A (user, password) pair that passed once is remembered by a keyed digest: Prometheus
      scrapes every 15 s with the same secret and does not pay bcrypt each time.
    - bcrypt runs on `WORKERS` threads of its own; at most `QUEUE` checks wait for them, and
      beyond that a request is refused at once (429), so a flood of wrong passwords neither
      grows a queue without end nor delays shutdown by more than the checks in progress.
    """

    WORKERS = 2
    QUEUE = 16
    CACHE = 256  # remembered good pairs at most

    def __init__(self, users: dict[str, bytes]):
        import bcrypt  # only an exporter with basic auth users loads it

        self._bcrypt = bcrypt
        self.users = users
        self._key = os.urandom(32)
        self._good: dict[bytes, None] = {}
        self._dummy = _dummy_hash(max(_cost(h) for h in users.values()))
        self._pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="bcrypt")
        self._waiting = 0
        self._closed = False

    async def allowed(self, header: str | None) -> bool | None:
        """True or False; None when too many checks are waiting already."""
        user, password = _parse_basic(header)
        if user is None:
            return False
        token = hmac.new(self._key, f"{user}\0{password}".encode(), "sha256").digest()
        if token in self._good:
            return True
        if self._waiting >= self.QUEUE:
            return None
        self._waiting += 1
        try:
            known = user in self.users
            hashed = self.users[user] if known else self._dummy
            ok = await self._run_check(password.encode(), hashed)
        finally:
            self._waiting -= 1
        if ok and known:
            if len(self._good) >= self.CACHE:
                self._good.pop(next(iter(self._good)))
            self._good[token] = None
            return True
        return False

    async def _run_check(self, password: bytes, hashed: bytes) -> bool:
        """The check on the pool. Once the server shuts down (`close`), a request still being
        read from a kept-alive connection gets a 503 instead of a closed pool's error and its
        traceback in the log, and so does a check that was waiting when the pool closed."""
        if self._closed:
            raise web.HTTPServiceUnavailable(text="shutting down\n")
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, self._check, password, hashed)
        try:
            return await future
        except asyncio.CancelledError:
            if self._closed and future.cancelled() and not _being_cancelled():
                raise web.HTTPServiceUnavailable(text="shutting down\n") from None
            raise

    def _check(self, password: bytes, hashed: bytes) -> bool:
        try:
            return self._bcrypt.checkpw(password, hashed)
        except ValueError:  # bcrypt 5 refuses passwords over 72 bytes
            return False

    def close(self) -> None:
        """Drop the checks still waiting; the ones running end on their own."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)


def _being_cancelled() -> bool:
    """Whether the current task itself is being cancelled (not only a future it awaits)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _cost(hashed: bytes) -> int:
    return int(hashed.split(b"$")[2])


_BCRYPT_ALPHABET = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _dummy_hash(cost: int) -> bytes:
    """A random hash of `cost` that no password matches, made without running bcrypt (hashpw
    at a high cost would hold the start for as long as a check takes)."""
    def pick(choices: bytes, count: int) -> bytes:
        return bytes(secrets.choice(choices) for _ in range(count))
    return b"$2b$%02d$" % cost + pick(_BCRYPT_ALPHABET, 21) + pick(b".Oeu", 1) + pick(
        _BCRYPT_ALPHABET, 31)


def _parse_basic(header: str | None) -> tuple[str | None, str]:
    if not header or not header.lower().startswith("basic "):
        return None, ""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, or non-ASCII header text
        return None, ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, "")


class TokenBucket:
    """`burst` requests at once, then one per `interval` seconds (Go's rate.Limiter)."""

    def __init__(self, interval: float, burst: int, clock=time.monotonic):
        self.interval, self.burst, self.clock = interval, burst, clock
        self.tokens, self.updated = float(burst), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.interval)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def middleware(config: WebConfig, open_paths: tuple[str, ...] = (),
               own_auth_paths: tuple[str, ...] = ()):
    """aiohttp middleware: rate limit, client certificate SANs, basic auth (except `open_paths`
    and `own_auth_paths`, whose handlers check credentials themselves) and the configured
    response headers, on every answer including errors."""
    auth = BasicAuth(config.users) if config.users else None
    bucket = TokenBucket(*config.rate_limit) if config.rate_limit else None
    headers = config.headers

    @web.middleware
    async def web_config_middleware(request: web.Request, handler):
        try:
            if bucket is not None and not bucket.take():
                raise web.HTTPTooManyRequests(text="rate limit exceeded (web config rate_limit)\n")
            if config.allowed_sans and not _san_allowed(request, config.allowed_sans):
                raise web.HTTPForbidden(text="client certificate not allowed\n")
            if auth and request.path not in open_paths + own_auth_paths:
                allowed = await auth.allowed(request.headers.get("Authorization"))
                if allowed is None:
                    raise web.HTTPTooManyRequests(text="too many authentication attempts\n")
                if not allowed:
                    raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="vigil"'})
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    web_config_middleware.auth = auth
    return web_config_middleware


def _san_allowed(request: web.Request, allowed: list[str]) -> bool:
    certificate = request.transport.get_extra_info("peercert") if request.transport else None
    names = [value for _, value in (certificate or {}).get("subjectAltName", ())]
    return any(name in allowed for name in names)
