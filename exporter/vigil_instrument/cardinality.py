"""Label-value bounds: allow-lists, a cap on distinct values per label, hashed identities.

Every label value the library records passes through a `Cardinality` policy once per distinct
raw value (the result is cached), so bounding costs nothing on the hot path.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping

OTHER = "other"
NONE = "none"  # no value (no tenant, no agent): never takes a place under the cap
DEFAULT_MAX_VALUES = 500
# Labels that multiply other labels' series get tighter default caps; the agents at either end of
# an agent-to-agent message are capped like `agent` (at most 51 x 51 edges per message type).
AGENT_MAX_VALUES = 50
LABEL_MAX_VALUES = {"tenant": 100, "agent": AGENT_MAX_VALUES, "source_agent": AGENT_MAX_VALUES,
                    "target_agent": AGENT_MAX_VALUES}
ID_PREFIX_CHARS = 8


def hash_id(value: object, salt: str = "") -> str:
    """The first 8 hex characters of SHA-256(salt + value): an identity without the id."""
    return hashlib.sha256(f"{salt}{value}".encode()).hexdigest()[:ID_PREFIX_CHARS]


class LabelLimiter:
    """Bounds one label: values outside the allow-list, or past `max_values` distinct ones,
    become `other`. The first values seen keep their name for the life of the process."""

    def __init__(self, allow: Iterable[str] | None = None, max_values: int | None = DEFAULT_MAX_VALUES):
        self.allow = frozenset(allow) if allow is not None else None
        self.max_values = max_values
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen or value == NONE or value == OTHER:
            return value
        if self.allow is not None and value not in self.allow:
            return OTHER
        with self._lock:
            if self.max_values is not None and len(self._seen) >= self.max_values:
                return OTHER
            self._seen.add(value)
        return value


class Cardinality:
    """The label policy of one `Metrics` object.

    allow:       {label: allowed values}; anything else is recorded as "other".
    max_values:  {label: cap} on distinct values, overriding `default_max_values` (and the
                 tighter defaults of LABEL_MAX_VALUES: tenant 100; agent, source_agent and
                 target_agent 50).
    identities:  record hashed user / API-key ids (`auth_requests_by_principal_total`).
    id_salt:     secret prefix for the id hash, so that small or guessable ids cannot be
                 recovered by hashing candidates.
    """

    def __init__(self, allow: Mapping[str, Iterable[str]] | None = None,
                 max_values: Mapping[str, int | None] | None = None,
                 default_max_values: int | None = DEFAULT_MAX_VALUES,
                 identities: bool = False, id_salt: str = ""):
        self._allow = {label: frozenset(values) for label, values in (allow or {}).items()}
        self._max_values = dict(max_values or {})
        self.default_max_values = default_max_values
        self.identities = identities
        self.id_salt = id_salt
        self._limiters: dict[str, LabelLimiter] = {}

    def limiter(self, label: str) -> LabelLimiter:
        """One limiter per label name, shared by every family that has the label."""
        limiter = self._limiters.get(label)
        if limiter is None:
            limiter = self._limiters[label] = LabelLimiter(self._allow.get(label), self.max_values(label))
        return limiter

    def set_default_caps(self, max_values: Mapping[str, int | None]) -> None:
        """Caps declared elsewhere (per-request labels) for labels this policy does not cap
        itself; before any value of them is recorded."""
        for label, cap in max_values.items():
            if label in self._limiters:
                raise ValueError(f"label {label!r} is already in use: declare its cap before recording")
            self._max_values.setdefault(label, cap)

    def max_values(self, label: str) -> int | None:
        """The cap of `label`: its own setting, else the tighter of its built-in default and
        `default_max_values`."""
        if label in self._max_values:
            return self._max_values[label]
        caps = [cap for cap in (LABEL_MAX_VALUES.get(label), self.default_max_values) if cap is not None]
        return min(caps) if caps else None

    def identity(self, value: object) -> str:
        return hash_id(value, self.id_salt)
