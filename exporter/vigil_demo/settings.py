"""The demo service's settings: one frozen object built by the CLI (or a test) and read by
`make_app`."""
from __future__ import annotations

from dataclasses import dataclass

from vigil_exporter.config import DEFAULT_SQLITE

DEFAULT_LISTEN = "0.0.0.0:8080"


@dataclass(frozen=True)
class Settings:
    listen: str = DEFAULT_LISTEN
    # The exporter's default too, so that `vigil serve` and `vigil demo` started in the same
    # directory share one SQLite file: the exporter's business gauges read what the demo writes.
    database_url: str = DEFAULT_SQLITE
    redis_url: str | None = None          # None: in-process cache and queue
    traffic: float = 0.0                  # requests per second of the built-in generator
    seed: int = 42
    log_level: str = "info"
    # Multiplies every simulated latency (LLM calls, tools); tests run with a small one.
    latency_scale: float = 1.0
    # Mean seconds between traffic bursts (credential stuffing, key rotation, floods, ...).
    burst_interval: float = 600.0
    # Pool label of the service's SQLAlchemy metrics and client label of its Redis metrics.
    pool_name: str = "demo"
    redis_client_name: str = "demo"
    # HMAC key of the access tokens and API keys; None: random per process.
    secret: str | None = None
    pool_size: int = 5
    max_overflow: int = 10

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)
