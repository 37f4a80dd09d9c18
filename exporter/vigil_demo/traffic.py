"""The traffic generator: a client of the demo's HTTP API that makes every dashboard panel and
every alert of the bundle have data.

About `rate` requests per second, chosen at random (seeded): cached item reads, chat messages,
agent runs, usage reports, and a few percent of mistakes (bad JSON, unknown paths, missing or
stale credentials, other tenants' data). Independently of the rate, in real time: users log in
and out (one session at a time per tenant, access tokens refreshed before they expire, sessions
sometimes abandoned), failed logins now and then, API keys rotated every 10-20 minutes, a new
user, agent, channel or document every few minutes, and two WebSocket clients. Now and then
(every `burst_interval` seconds on average) a burst: a flood of requests, credential stuffing,
a key rotation, an agent storm, a chat storm or a scanner.

It starts with a tour that makes every kind of request once, so that every series exists within
seconds. Business rows are paced: the generator keeps each tenant below 90 % of its plan limits
by spreading what is left of today's allowance over the rest of the UTC day (the service itself
answers 429 past 100 %).
"""
from __future__ import annotations

import asyncio
import functools
import json as _json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import aiohttp

from vigil_exporter.logs import FailureLog, describe_error

log = logging.getLogger("vigil.demo.traffic")

TARGET_USAGE = 0.9           # of a plan limit: where the generator stops adding rows
# What a tenant may get at once, by kind (rows; bytes for storage).
BUDGET_BURST = {"messages": 10, "api_calls": 10, "agents": 2, "channels": 2,
                "storage_bytes": 20_000_000, "connections": 2}
PER_DAY = {"messages", "api_calls"}
ACTIONS = (("get_item", 30), ("post_message", 18), ("run_agent", 10), ("usage", 6),
           ("missing_item", 2), ("bad_request", 2), ("scanner", 1.5), ("unauthenticated", 1),
           ("other_tenant", 0.5), ("unknown_agent", 0.5))
AGENT_MIX = (("responder", 40), ("researcher", 25), ("writer", 20), ("planner", 15))
SCANNER_PATHS = ("/wp-login.php", "/.env", "/admin", "/api/v0/users", "/phpmyadmin/index.php",
                 "/.git/config", "/api/items", "/cgi-bin/luci", "/server-status", "/api/login/")
# Ambient events: mean seconds between two of them, whatever the rate.
AMBIENT = {"failed_login": 60, "stale_token": 120, "invite_user": 300, "create_agent": 180,
           "create_channel": 240, "upload_document": 120, "signup": 3600}
MAX_TRIALS = 3               # tenants the generator signs up, at most
SESSION_SECONDS = (30, 120)  # how long a session is used before logout (or abandon)
ABANDON_SHARE = 0.15
ACCESS_REFRESH_AGE = 40.0    # seconds; access tokens live 60
KEY_SECONDS = (600, 1200)    # API key rotation
WORDS = ("week", "incident", "backlog", "invoice", "quota", "agent", "channel", "reset", "why",
         "slow", "please", "thanks", "how", "do", "I", "my")
BURSTS = ("flood", "credential_stuffing", "key_rotation", "agent_storm", "chat_storm", "scanner")


class Budget:
    """Rows of one kind a tenant may still get: the headroom below TARGET_USAGE of its limit,
    spread over the rest of the UTC day (per-day limits) or over a day (the others), with a
    small burst allowance."""

    def __init__(self):
        self.tokens = 0.0
        self.rate = 0.0
        self.capacity = 0.0
        self._at = time.monotonic()
        self._fresh = True

    def reset(self, kind: str, used: float, limit: float | None) -> None:
        if not limit:
            self.rate = self.capacity = self.tokens = 0.0
            return
        headroom = max(0.0, TARGET_USAGE * limit - used)
        now = datetime.now(timezone.utc)
        to_midnight = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
        self.rate = headroom / (max(3600, to_midnight) if kind in PER_DAY else 86400)
        self.capacity = min(headroom, BUDGET_BURST.get(kind, 1))
        self.tokens = self.capacity if self._fresh else min(self.tokens, self.capacity)
        self._fresh = False

    def take(self, amount: float = 1) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False


@dataclass
class Session:
    access: str
    refresh: str
    issued: float
    ends: float


@dataclass
class Key:
    id: int
    key: str
    rotate_at: float


@dataclass
class Tenant:
    name: str
    users: list[str] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    weight: float = 1.0
    budgets: dict[str, Budget] = field(default_factory=dict)
    sessions: list[Session] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    key_pending: bool = False
    login_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def budget(self, kind: str) -> Budget:
        return self.budgets.setdefault(kind, Budget())


class Traffic:
    def __init__(self, base_url: str, rate: float, seed: int = 42, *, burst_interval: float = 600.0,
                 max_in_flight: int = 64, websockets: int = 2, tour: bool = True):
        self.base_url = base_url.rstrip("/")
        self.rate = rate
        self.rng = random.Random(f"{seed}:traffic")
        self.burst_interval = burst_interval
        self.max_in_flight = max_in_flight
        self.websockets = websockets
        self.tour_first = tour
        self.tenants: dict[str, Tenant] = {}
        self.stats: Counter[str] = Counter()
        self.toured = asyncio.Event()  # set once the tour is done (or skipped)
        self._burst_factor = 1.0
        self._tasks: set[asyncio.Task] = set()
        self._main: list[asyncio.Task] = []
        self._http: aiohttp.ClientSession | None = None
        self._sequence = 0
        self._old_tokens: list[tuple[float, str]] = []  # (replaced at, access token)
        self.failures = FailureLog(log)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self._main = [asyncio.create_task(self._run(), name="traffic")]

    async def stop(self) -> None:
        tasks = [*self._main, *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        await self._load_directory(wait=True)
        if self.tour_first:
            await self.tour()
        self.toured.set()
        loops = [self._requests, self._sessions, self._ambient, self._bursts,
                 self._refresh_directory,
                 *(functools.partial(self._websocket_client, i) for i in range(self.websockets))]
        await asyncio.gather(*(self._forever(loop) for loop in loops))

    async def _forever(self, loop) -> None:
        """Run a loop; if it fails (an answer it did not expect), log and start it again."""
        while True:
            try:
                await loop()
            except Exception as exc:  # noqa: BLE001
                self._failed(exc)
                await asyncio.sleep(1.0)

    def _spawn(self, coro) -> None:
        if len(self._tasks) >= self.max_in_flight:
            coro.close()
            self.stats["skipped"] += 1
            return
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failed(task.exception())

    def _failed(self, exc: BaseException) -> None:
        self.stats["generator_errors"] += 1
        self.failures.failed("traffic generator", describe_error(exc))

    # ---- HTTP ----------------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, json=None, data=None,
                      headers: dict | None = None) -> tuple[int, object]:
        """(status, parsed JSON or None); status 0 when the service cannot be reached."""
        self._sequence += 1
        headers = {"X-Request-ID": f"traffic-{self._sequence}", **(headers or {})}
        try:
            async with self._http.request(method, self.base_url + path, json=json, data=data,
                                          headers=headers) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.stats["unreachable"] += 1
            return 0, None
        try:
            body = _json.loads(raw) if raw else None
        except ValueError:
            body = None  # aiohttp's 404 and 405 pages are text
        self.stats[f"{status // 100}xx"] += 1
        self.stats["requests"] += 1
        return status, body

    async def _load_directory(self, wait: bool = False) -> None:
        while True:
            status, body = await self.request("GET", "/api/directory")
            if status == 200 and body:
                break
            if not wait:
                return
            await asyncio.sleep(0.5)
        for entry in body["tenants"]:
            tenant = self.tenants.setdefault(entry["name"], Tenant(entry["name"]))
            tenant.users, tenant.channels = entry["users"], entry["channels"]
            tenant.items = entry["items"]
            usage = entry["usage"]
            tenant.weight = max(1.0, float(usage.get("api_calls", {}).get("limit") or 1))
            self._budgets(tenant, usage)

    @staticmethod
    def _budgets(tenant: Tenant, usage: dict) -> None:
        for kind, report in usage.items():
            tenant.budget(kind).reset(kind, report["used"], report["limit"])

    async def _refresh_directory(self) -> None:
        while True:
            await asyncio.sleep(60)
            await self._load_directory()

    # ---- choosing ------------------------------------------------------------------------------

    def _pick(self, choices):
        names, weights = zip(*choices)
        return self.rng.choices(names, weights)[0]

    def _tenant(self) -> Tenant:
        tenants = [t for t in self.tenants.values() if t.users]
        return self.rng.choices(tenants, [t.weight for t in tenants])[0]

    def _item(self, tenant: Tenant) -> int:
        """Mostly the tenant's first few documents: a cache with a high hit ratio."""
        hot = tenant.items[:3] or [1]
        return self.rng.choice(hot if self.rng.random() < 0.85 else tenant.items or hot)

    async def _as(self, tenant: Tenant, api_key: bool = True) -> dict:
        """Credentials for a tenant-scoped request: an API key while the tenant's API-call
        budget allows, else a session token (logging in when the tenant has none)."""
        if api_key and tenant.keys and tenant.budget("api_calls").take():
            return {"X-API-Key": self.rng.choice(tenant.keys).key}
        session = await self._session(tenant)
        return _bearer(session.access) if session else {}

    async def _session(self, tenant: Tenant) -> Session | None:
        if tenant.sessions:
            return self.rng.choice(tenant.sessions)
        async with tenant.login_lock:
            if not tenant.sessions:
                await self.login(tenant)
        return tenant.sessions[0] if tenant.sessions else None

    # ---- sessions and keys ---------------------------------------------------------------------

    async def login(self, tenant: Tenant) -> Session | None:
        status, body = await self.request("POST", "/api/login", json={
            "email": self.rng.choice(tenant.users), "password": "demo"})
        if status != 200:
            return None
        now = time.monotonic()
        session = Session(body["access_token"], body["refresh_token"], now,
                          now + self.rng.uniform(*SESSION_SECONDS))
        tenant.sessions.append(session)
        return session

    async def failed_login(self, tenant: Tenant | None = None) -> None:
        tenant = tenant or self._tenant()
        if self.rng.random() < 0.7:
            email, password = self.rng.choice(tenant.users), "hunter2"
        else:
            email, password = f"nobody{self.rng.randint(1, 999)}@{tenant.name}.example", "demo"
        await self.request("POST", "/api/login", json={"email": email, "password": password})

    async def refresh(self, tenant: Tenant, session: Session) -> None:
        status, body = await self.request("POST", "/api/token/refresh",
                                          json={"refresh_token": session.refresh})
        if status == 200:
            self._old_tokens = [*self._old_tokens[-20:], (time.monotonic(), session.access)]
            session.access, session.issued = body["access_token"], time.monotonic()
        elif session in tenant.sessions:
            tenant.sessions.remove(session)

    async def logout(self, tenant: Tenant, session: Session) -> None:
        if session in tenant.sessions:
            tenant.sessions.remove(session)
        await self.request("POST", "/api/logout", headers=_bearer(session.access))

    async def create_key(self, tenant: Tenant) -> Key | None:
        session = await self._session(tenant)
        if session is None:
            return None
        status, body = await self.request("POST", "/api/keys", headers=_bearer(session.access))
        if status != 201:
            return None
        key = Key(body["id"], body["key"], time.monotonic() + self.rng.uniform(*KEY_SECONDS))
        tenant.keys.append(key)
        return key

    async def revoke_key(self, tenant: Tenant, key: Key) -> None:
        if key in tenant.keys:
            tenant.keys.remove(key)
        session = await self._session(tenant)
        if session is not None:
            await self.request("DELETE", f"/api/keys/{key.id}", headers=_bearer(session.access))

    async def stale_token(self) -> None:
        """A request with an access token that has expired, else one with a forged signature."""
        tenant = self._tenant()
        expired = [token for at, token in self._old_tokens if time.monotonic() - at > 65]
        if expired:
            token = self.rng.choice(expired)
        else:
            session = await self._session(tenant)
            if session is None:
                return
            token = session.access.rsplit(".", 1)[0] + "." + "A" * 43
        await self.request("GET", f"/api/items/{self._item(tenant)}", headers=_bearer(token))

    # ---- the API -------------------------------------------------------------------------------

    async def get_item(self, tenant: Tenant | None = None, item_id: int | None = None) -> None:
        tenant = tenant or self._tenant()
        headers = await self._as(tenant)
        item_id = self._item(tenant) if item_id is None else item_id
        await self.request("GET", f"/api/items/{item_id}", headers=headers)

    async def missing_item(self) -> None:
        await self.get_item(item_id=self.rng.randint(10**6, 10**7))

    async def post_message(self, tenant: Tenant | None = None) -> None:
        tenant = tenant or self._tenant()
        if not tenant.channels or not tenant.budget("messages").take(2):
            return await self.get_item(tenant)  # no allowance left today: something else
        text = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(3, 40)))
        await self.request("POST", f"/api/channels/{self.rng.choice(tenant.channels)}/messages",
                           json={"text": text}, headers=await self._as(tenant))

    async def run_agent(self, tenant: Tenant | None = None, agent: str | None = None) -> None:
        tenant = tenant or self._tenant()
        agent = agent or self._pick(AGENT_MIX)
        payload = {"task": f"summarise the {self.rng.choice(WORDS)}"}
        if tenant.channels and self.rng.random() < 0.3 and tenant.budget("messages").take():
            payload["channel_id"] = self.rng.choice(tenant.channels)
        await self.request("POST", f"/api/agents/{agent}/run", json=payload,
                           headers=await self._as(tenant))

    async def unknown_agent(self) -> None:
        tenant = self._tenant()
        await self.request("POST", "/api/agents/oracle/run", json={"task": "?"},
                           headers=await self._as(tenant))

    async def usage(self, tenant: Tenant | None = None) -> None:
        tenant = tenant or self._tenant()
        status, body = await self.request("GET", f"/api/tenants/{tenant.name}/usage",
                                          headers=await self._as(tenant))
        if status == 200:
            self._budgets(tenant, body["usage"])

    async def other_tenant(self) -> None:
        tenant = self._tenant()
        others = [name for name in self.tenants if name != tenant.name] or [tenant.name]
        await self.request("GET", f"/api/tenants/{self.rng.choice(others)}/usage",
                           headers=await self._as(tenant, api_key=False))

    async def bad_request(self) -> None:
        headers = {**await self._as(self._tenant(), api_key=False),
                   "Content-Type": "application/json"}
        path = self.rng.choice(("/api/agents/writer/run", "/api/documents", "/api/login"))
        await self.request("POST", path, data=b'{"truncated": ', headers=headers)

    async def scanner(self) -> None:
        path = self.rng.choice(SCANNER_PATHS)
        if self.rng.random() < 0.5:
            path = f"{path.rstrip('/')}/{self.rng.getrandbits(32):08x}"
        await self.request(self.rng.choice(("GET", "GET", "POST", "PROPFIND")), path)

    async def unauthenticated(self) -> None:
        await self.request("GET", f"/api/items/{self.rng.randint(1, 50)}")

    async def invite_user(self, tenant: Tenant | None = None) -> None:
        tenant = tenant or self._tenant()
        email = f"invitee-{self.rng.getrandbits(40):010x}@{tenant.name}.example"
        await self.request("POST", "/api/users", json={"email": email},
                           headers=await self._as(tenant, api_key=False))

    async def create_agent(self, tenant: Tenant | None = None) -> None:
        tenant = tenant or self._tenant()
        if tenant.budget("agents").take():
            await self.request("POST", "/api/agents", json={"name": f"agent-{self._suffix()}"},
                               headers=await self._as(tenant, api_key=False))

    async def create_channel(self, tenant: Tenant | None = None) -> None:
        tenant = tenant or self._tenant()
        if tenant.budget("channels").take():
            await self.request("POST", "/api/channels", json={"name": f"channel-{self._suffix()}"},
                               headers=await self._as(tenant, api_key=False))

    async def upload_document(self, tenant: Tenant | None = None) -> None:
        tenant = tenant or self._tenant()
        size = self.rng.randint(10_000, 2_000_000)
        if tenant.budget("storage_bytes").take(size):
            await self.request("POST", "/api/documents",
                               json={"name": f"upload-{self._suffix()}.pdf", "size_bytes": size},
                               headers=await self._as(tenant, api_key=False))

    async def signup(self) -> None:
        """A new trial tenant, up to MAX_TRIALS of them; then the last name again, which is
        answered 409 (so the number of tenants, and of tenant series, stays bounded)."""
        trials = sum(t.name.startswith("trial-") for t in self.tenants.values())
        name = f"trial-{min(trials + 1, MAX_TRIALS)}"
        status, _ = await self.request("POST", "/api/signup",
                                       json={"tenant": name, "email": f"owner@{name}.example"})
        if status == 201:
            await self._load_directory()

    async def websocket_session(self, messages: int,
                                pause: tuple[float, float] = (1.0, 4.0)) -> None:
        try:
            async with self._http.ws_connect(self.base_url + "/ws") as ws:
                self.stats["websockets"] += 1
                for _ in range(messages):
                    await ws.send_str(f"ping {self.rng.random():.6f}")
                    await ws.receive(timeout=10)
                    await asyncio.sleep(self.rng.uniform(*pause))
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.stats["unreachable"] += 1

    def _suffix(self) -> str:
        return f"{self.rng.getrandbits(24):06x}"

    # ---- loops ---------------------------------------------------------------------------------

    async def tour(self) -> None:
        """Every kind of request once, in an order that makes each outcome happen."""
        tenant = max(self.tenants.values(), key=lambda t: t.weight if t.users else 0)
        session = await self.login(tenant)
        await self.failed_login(tenant)
        await self.request("POST", "/api/login", json={"email": "nobody@nowhere.example",
                                                       "password": "demo"})
        key = await self.create_key(tenant)
        for item in (tenant.items or [1])[:2] * 2:  # misses, then hits
            await self.get_item(tenant, item)
        await self.missing_item()
        await self.post_message(tenant)
        for agent, _ in AGENT_MIX:
            await self.run_agent(tenant, agent)
        await self.usage(tenant)
        for per_tenant in (self.invite_user, self.create_agent, self.create_channel,
                           self.upload_document):
            await per_tenant(tenant)
        for action in (self.unknown_agent, self.other_tenant, self.bad_request, self.scanner,
                       self.unauthenticated, self.stale_token, self.signup):
            await action()
        await self.websocket_session(2, (0.0, 0.05))
        if session is not None:
            await self.refresh(tenant, session)
        if key is not None:
            await self.revoke_key(tenant, key)
            await self.request("GET", f"/api/items/{self._item(tenant)}",
                               headers={"X-API-Key": key.key})  # refused: revoked
            await self.create_key(tenant)
        if session is not None:
            await self.logout(tenant, session)
            await self.refresh(tenant, session)  # refused: the session has ended

    async def _requests(self) -> None:
        names, weights = zip(*ACTIONS)
        while True:
            rate = self.rate * self._burst_factor
            await asyncio.sleep(self.rng.expovariate(rate) if rate > 0 else 1.0)
            if rate > 0:
                self._spawn(getattr(self, self.rng.choices(names, weights)[0])())

    async def _sessions(self) -> None:
        """Log out (or abandon) sessions at the end of their life, refresh aging access tokens,
        rotate API keys."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for tenant in list(self.tenants.values()):
                for session in list(tenant.sessions):
                    if now >= session.ends:
                        if self.rng.random() < ABANDON_SHARE:
                            tenant.sessions.remove(session)  # left open: it expires by itself
                        else:
                            self._spawn(self.logout(tenant, session))
                    elif now - session.issued > ACCESS_REFRESH_AGE:
                        session.issued = now  # one refresh at a time
                        self._spawn(self.refresh(tenant, session))
                for key in list(tenant.keys):
                    if now >= key.rotate_at:
                        self._spawn(self._rotate(tenant, key))
                if not tenant.keys and not tenant.key_pending and tenant.users:
                    self._spawn(self._first_key(tenant))

    async def _first_key(self, tenant: Tenant) -> None:
        tenant.key_pending = True
        try:
            await self.create_key(tenant)
        finally:
            tenant.key_pending = False

    async def _rotate(self, tenant: Tenant, key: Key) -> None:
        key.rotate_at = float("inf")
        await self.create_key(tenant)
        await self.revoke_key(tenant, key)

    async def _ambient(self) -> None:
        names = list(AMBIENT)
        rates = [1 / AMBIENT[name] for name in names]
        while True:
            await asyncio.sleep(self.rng.expovariate(sum(rates)))
            self._spawn(getattr(self, self.rng.choices(names, rates)[0])())

    async def _bursts(self) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(1 / self.burst_interval))
            kind = self.rng.choice(BURSTS)
            log.info("traffic burst", extra={"fields": {"kind": kind}})
            self.stats[f"burst_{kind}"] += 1
            await self.burst(kind)

    async def burst(self, kind: str) -> None:
        if kind == "flood":
            self._burst_factor = 4.0
            await asyncio.sleep(self.rng.uniform(15, 30))
            self._burst_factor = 1.0
        elif kind == "credential_stuffing":
            for _ in range(self.rng.randint(10, 30)):
                self._spawn(self.failed_login())
                await asyncio.sleep(self.rng.uniform(0.1, 0.5))
        elif kind == "key_rotation":  # every key, and a few short-lived ones that leaked
            for tenant in self.tenants.values():
                for key in list(tenant.keys):
                    self._spawn(self._rotate(tenant, key))
            for _ in range(self.rng.randint(1, 5)):
                tenant = self._tenant()
                key = await self.create_key(tenant)
                if key is not None:
                    self._spawn(self.revoke_key(tenant, key))
        elif kind == "agent_storm":
            for _ in range(self.rng.randint(10, 30)):
                self._spawn(self.run_agent(agent="planner"))
        elif kind == "chat_storm":
            for _ in range(self.rng.randint(10, 40)):
                self._spawn(self.post_message())
        elif kind == "scanner":
            for _ in range(self.rng.randint(20, 60)):
                self._spawn(self.scanner())
                await asyncio.sleep(0.05)

    async def _websocket_client(self, index: int) -> None:
        await asyncio.sleep(index * 0.5)
        while True:
            await self.websocket_session(self.rng.randint(3, 20))
            await asyncio.sleep(self.rng.uniform(0.5, 3.0))


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
