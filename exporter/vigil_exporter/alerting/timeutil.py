"""Times and durations as Alertmanager and Prometheus write them."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from vigil_exporter import validation

_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(\.\d+)?(Z|[+-]\d\d:?\d\d)?)?")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: 2024-05-01T10:00:00.000Z."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 time (Z or offset, any fraction digits;
    no zone means UTC, a date alone is its midnight),
    or None when `text` is not one."""
    match = _RFC3339.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    date, clock, fraction, zone = match.groups()
    clock = clock or "00:00"
    fraction = (fraction or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if zone in (None, "Z") else zone
    try:
        return datetime.fromisoformat(f"{date}T{clock}.{fraction}{zone}")
    except ValueError:
        return None


def parse_duration(text: str) -> timedelta:
    """A Prometheus duration such as 90s, 30m, 2h, 1h30m, 1d, 1w; ValueError otherwise."""
    seconds = validation.parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return timedelta(seconds=seconds)
