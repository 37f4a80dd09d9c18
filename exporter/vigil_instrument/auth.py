"""Authentication events: logins, token refreshes, failures, API keys, requests by auth type.

User and API-key ids never become label values as such. With
`Metrics(cardinality=Cardinality(identities=True, id_salt=...))`, `record_auth_request` also
counts `auth_requests_by_principal_total{auth_type,principal}` where principal is the 8-character
SHA-256 prefix of the salted id (capped like any label); without it the id is ignored.
"""
from __future__ import annotations

from .metrics import Metrics, resolve


def _outcome(success: bool) -> str:
    return "success" if success else "failure"


def record_login(provider: str, success: bool, *, metrics: Metrics | None = None) -> None:
    resolve(metrics).auth_logins.labels(provider, _outcome(success)).inc()


def record_token_refresh(provider: str, success: bool, *, metrics: Metrics | None = None) -> None:
    resolve(metrics).auth_token_refreshes.labels(provider, _outcome(success)).inc()


def record_failed_attempt(reason: str, *, metrics: Metrics | None = None) -> None:
    """One failed authentication (bad password, expired token, unknown key, ...)."""
    resolve(metrics).auth_failed_attempts.labels(reason).inc()


def record_api_key_created(*, metrics: Metrics | None = None) -> None:
    resolve(metrics).auth_api_keys_created.inc()


def record_api_key_revoked(*, metrics: Metrics | None = None) -> None:
    resolve(metrics).auth_api_keys_revoked.inc()


def record_auth_request(auth_type: str, principal_id: object = None, *, metrics: Metrics | None = None) -> None:
    """A request authenticated by `auth_type` (jwt, api_key or none); `principal_id` is the
    user or API-key id, recorded hashed and only when identities are enabled."""
    m = resolve(metrics)
    m.auth_requests.labels(auth_type).inc()
    if principal_id is not None and m.auth_principal_requests is not None:
        m.auth_principal_requests.labels(auth_type, m.cardinality.identity(principal_id)).inc()
