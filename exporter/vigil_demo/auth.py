"""Authentication of the demo: password logins that open a session, short-lived signed access
tokens (HS256 JWTs) with refresh tokens, and API keys whose prefix is stored in `api_keys`.

Every demo user's password is "demo" (the demo data set has no password column); inactive users
cannot log in. Each outcome is recorded with the instrumentation library: logins and token
refreshes by outcome, failed attempts by reason, API keys created and revoked, requests by
authentication type.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import timedelta

import vigil_instrument as instrument

from .cache import Cache
from .storage import Store, utcnow

DEMO_PASSWORD = "demo"
LOGIN_PROVIDER = "password"
REFRESH_PROVIDER = "jwt"
ACCESS_TTL = 60.0                   # seconds: clients refresh often, so refreshes show
SESSION_TTL = timedelta(minutes=5)  # pushed forward by every refresh
API_KEY_TTL = timedelta(hours=1)
API_KEY_CACHE_TTL = 30.0
FAILURE_REASONS = ("bad_password", "unknown_user", "inactive_user", "missing_credentials",
                   "invalid_token", "expired_token", "session_ended", "unknown_api_key",
                   "revoked_api_key", "expired_api_key")
AUTH_TYPES = ("jwt", "api_key", "none")


class AuthFailure(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    tenant_id: int
    tenant: str
    user_id: int
    auth_type: str                  # jwt | api_key
    session_id: int | None = None   # jwt
    key_id: int | None = None       # api_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    """HS256 JSON Web Tokens, just enough of them: sign, verify, expire."""

    HEADER = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())

    def __init__(self, secret: bytes):
        self.secret = secret

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self.secret, signing_input.encode(), hashlib.sha256).digest())

    def encode(self, claims: dict) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signing_input = f"{self.HEADER}.{payload}"
        return f"{signing_input}.{self._sign(signing_input)}"

    def decode(self, token: str, kind: str, now: float | None = None) -> dict:
        """The claims of a valid, unexpired token of `kind` (access|refresh), else AuthFailure."""
        try:
            header, payload, signature = token.split(".")
            if not hmac.compare_digest(signature, self._sign(f"{header}.{payload}")):
                raise ValueError("bad signature")
            claims = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            raise AuthFailure("invalid_token") from None
        if claims.get("typ") != kind:
            raise AuthFailure("invalid_token")
        if claims.get("exp", 0) <= (time.time() if now is None else now):
            raise AuthFailure("expired_token")
        return claims

    def api_key(self, prefix: str) -> str:
        """The full key of a prefix: the prefix and an HMAC of it (only the prefix is stored)."""
        return f"{prefix}.{self._sign('api-key:' + prefix)[:32]}"

    def api_key_prefix(self, key: str) -> str:
        prefix, _, _ = key.partition(".")
        if not hmac.compare_digest(key, self.api_key(prefix)):
            raise AuthFailure("unknown_api_key")
        return prefix


class Authenticator:
    def __init__(self, store: Store, cache: Cache, metrics: instrument.Metrics, secret: str | None = None):
        self.store = store
        self.cache = cache
        self.metrics = metrics
        self.tokens = Tokens((secret or secrets.token_hex(32)).encode())

    # ---- sessions ----------------------------------------------------------------------------

    async def login(self, email: str, password: str) -> dict:
        user = await self.store.user_by_email(email) if email else None
        reason = None
        if user is None:
            reason = "unknown_user"
        elif not hmac.compare_digest(password.encode(), DEMO_PASSWORD.encode()):
            reason = "bad_password"
        elif not user["is_active"]:
            reason = "inactive_user"
        if reason:
            self.failed(reason)
            instrument.record_login(LOGIN_PROVIDER, False, metrics=self.metrics)
            raise AuthFailure(reason)
        session_id = await self.store.open_session(user["tenant_id"], user["id"], SESSION_TTL)
        instrument.record_login(LOGIN_PROVIDER, True, metrics=self.metrics)
        principal = Principal(user["tenant_id"], user["tenant"], user["id"], "jwt", session_id)
        refresh = self._token(principal, "refresh", SESSION_TTL.total_seconds())
        return {**self._issue(principal), "refresh_token": refresh}

    async def refresh(self, refresh_token: str) -> dict:
        try:
            principal = self._principal(self.tokens.decode(refresh_token, "refresh"))
            if not await self.store.extend_session(principal.session_id, SESSION_TTL):
                raise AuthFailure("session_ended")
        except AuthFailure as failure:
            self.failed(failure.reason)
            instrument.record_token_refresh(REFRESH_PROVIDER, False, metrics=self.metrics)
            raise
        instrument.record_token_refresh(REFRESH_PROVIDER, True, metrics=self.metrics)
        return self._issue(principal)

    async def logout(self, principal: Principal) -> bool:
        if principal.session_id is None:
            return False
        return await self.store.end_session(principal.session_id)

    def _issue(self, principal: Principal) -> dict:
        return {"access_token": self._token(principal, "access", ACCESS_TTL),
                "token_type": "Bearer", "expires_in": ACCESS_TTL, "tenant": principal.tenant,
                "session_id": principal.session_id}

    def _token(self, principal: Principal, kind: str, ttl: float) -> str:
        return self.tokens.encode({"typ": kind, "exp": int(time.time() + ttl),
                                   "sub": principal.user_id, "tid": principal.tenant_id,
                                   "tn": principal.tenant, "sid": principal.session_id})

    @staticmethod
    def _principal(claims: dict) -> Principal:
        return Principal(claims["tid"], claims["tn"], claims["sub"], "jwt", claims["sid"])

    # ---- requests ----------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None,
                           api_key: str | None) -> Principal | None:
        """The principal of a request's credentials; None when it has none; AuthFailure when
        they are not valid. Counted in auth_requests_total by the type presented."""
        if api_key:
            instrument.record_auth_request("api_key", metrics=self.metrics)
            return await self._guard(self._by_api_key(api_key))
        if authorization:
            instrument.record_auth_request("jwt", metrics=self.metrics)
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return await self._guard(self._fail("invalid_token"))
            return await self._guard(self._by_token(token.strip()))
        instrument.record_auth_request("none", metrics=self.metrics)
        return None

    async def _guard(self, lookup) -> Principal:
        try:
            return await lookup
        except AuthFailure as failure:
            self.failed(failure.reason)
            raise

    async def _fail(self, reason: str):
        raise AuthFailure(reason)

    async def _by_token(self, token: str) -> Principal:
        return self._principal(self.tokens.decode(token, "access"))

    async def _by_api_key(self, key: str) -> Principal:
        prefix = self.tokens.api_key_prefix(key)

        async def load():
            row = await self.store.api_key(prefix)
            if row is None:
                return None
            now = utcnow()
            state = ("revoked" if row["revoked_at"] is not None
                     else "expired" if row["expires_at"] is not None and row["expires_at"] <= now
                     else "ok")
            return {"state": state, "principal": asdict(Principal(
                row["tenant_id"], row["tenant"], row["user_id"], "api_key", key_id=row["id"]))}

        found = await self.cache.lookup("api_keys", prefix, load, API_KEY_CACHE_TTL)
        if found is None:
            raise AuthFailure("unknown_api_key")
        if found["state"] != "ok":
            raise AuthFailure(f"{found['state']}_api_key")
        return Principal(**found["principal"])

    def failed(self, reason: str) -> None:
        instrument.record_failed_attempt(reason, metrics=self.metrics)

    # ---- API keys ----------------------------------------------------------------------------

    async def create_key(self, principal: Principal) -> dict:
        prefix = f"vk_{secrets.token_hex(6)}"
        key_id = await self.store.create_api_key(principal.tenant_id, principal.user_id, prefix,
                                                 API_KEY_TTL)
        instrument.record_api_key_created(metrics=self.metrics)
        return {"id": key_id, "key": self.tokens.api_key(prefix), "prefix": prefix,
                "expires_in": API_KEY_TTL.total_seconds()}

    async def revoke_key(self, principal: Principal, key_id: int) -> bool:
        prefix = await self.store.revoke_api_key(principal.tenant_id, key_id)
        if prefix is None:
            return False
        await self.cache.forget("api_keys", prefix)
        instrument.record_api_key_revoked(metrics=self.metrics)
        return True
