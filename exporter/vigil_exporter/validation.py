"""A tiny declarative schema for YAML configuration.

Every field knows its type and default; validating a document returns plain Python values with
defaults filled in, and collects *every* fault (key path, what was expected, what was found,
a "did you mean" hint for unknown keys) instead of stopping at the first.
"""
from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_MISSING = object()


@dataclass
class Fault:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Errors:
    faults: list[Fault] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.faults.append(Fault(path, message))


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "nothing"
    return repr(value)


def json_faults(value: Any, path: str = "") -> list[str]:
    """Faults of a document that must be plain JSON (it is handed to Jsonnet): string keys, no
    dates or other YAML types, finite numbers. YAML reads `1:` as an integer key, `2024-01-01`
    as a date and `.inf` as infinity; each is named with its key path."""
    if isinstance(value, dict):
        faults = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                faults.append(f"{where}: expected a name (text) as the key, got "
                              f"{_yaml_kind(key)} {key} (quote it)")
            faults += json_faults(item, where)
        return faults
    if isinstance(value, list):
        return [fault for i, item in enumerate(value) for fault in json_faults(item, f"{path}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path}: expected a finite number, got {value}"]
    if value is None or isinstance(value, (str, bool, int, float)):
        return []
    return [f"{path}: expected text, a number, true or false, a list or a mapping, got "
            f"{_yaml_kind(value)} {value} (quote it)"]


def _yaml_kind(value: Any) -> str:
    names = {"int": "the number", "float": "the number", "bool": "the boolean", "date":
             "the date", "datetime": "the timestamp", "NoneType": "the empty value"}
    return names.get(type(value).__name__, f"a {type(value).__name__}")


class Field:
    """Base class: `default` may be a value or a zero-argument callable."""

    expected = "a value"

    def __init__(self, default: Any = _MISSING, help: str = ""):
        self.default = default
        self.help = help

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def default_value(self) -> Any:
        value = self.default() if callable(self.default) else self.default
        return self.validate(value, "", Errors()) if value is not None else None

    def validate(self, value: Any, path: str, errors: Errors) -> Any:
        raise NotImplementedError

    def fail(self, value: Any, path: str, errors: Errors) -> None:
        errors.add(path, f"expected {self.expected}, got {_show(value)}")


class Str(Field):
    expected = "a string"

    def __init__(self, default: Any = _MISSING, help: str = "", choices: tuple[str, ...] = (),
                 pattern: str | None = None):
        super().__init__(default, help)
        self.choices = choices
        self.pattern = re.compile(pattern) if pattern else None
        if choices:
            self.expected = "one of " + ", ".join(f'"{c}"' for c in choices)
        elif pattern:
            self.expected = f"a string matching {pattern}"

    def validate(self, value, path, errors):
        if not isinstance(value, str) or (self.choices and value not in self.choices) or (
                self.pattern and not self.pattern.fullmatch(value)):
            return self.fail(value, path, errors)
        return value


class Regex(Str):
    """A regular expression, compiled when the configuration is validated."""

    expected = "a regular expression"

    def validate(self, value, path, errors):
        if isinstance(value, str):
            try:
                re.compile(value)
            except re.error as exc:
                return errors.add(path, f"not a valid regular expression: {exc}")
        return super().validate(value, path, errors)


class Bool(Field):
    expected = "true or false"

    def validate(self, value, path, errors):
        if not isinstance(value, bool):
            return self.fail(value, path, errors)
        return value


class _Number(Field):
    """A number within the bounds given: `minimum` and `maximum` are inclusive, `above` and
    `below` exclusive."""

    kind = "a number"
    BOUNDS = {"minimum": (operator.ge, ">="), "maximum": (operator.le, "<="),
              "above": (operator.gt, "above"), "below": (operator.lt, "below")}

    def __init__(self, default: Any = _MISSING, help: str = "", **bounds: float | None):
        super().__init__(default, help)
        given = [(name, bound) for name, bound in bounds.items() if bound is not None]
        self.tests = [(self.BOUNDS[name][0], bound) for name, bound in given]
        words = " and ".join(f"{self.BOUNDS[name][1]} {_number(bound)}" for name, bound in given)
        self.expected = f"{self.kind} {words}" if words else self.kind

    def is_kind(self, value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def convert(self, value):
        return float(value)

    def validate(self, value, path, errors):
        if not self.is_kind(value) or not all(test(value, bound) for test, bound in self.tests):
            return self.fail(value, path, errors)
        return self.convert(value)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class Int(_Number):
    kind = "a whole number"

    def __init__(self, default: Any = _MISSING, help: str = "", minimum: int | None = None,
                 maximum: int | None = None):
        super().__init__(default, help, minimum=minimum, maximum=maximum)

    def is_kind(self, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def convert(self, value):
        return value


class Float(_Number):
    def __init__(self, default: Any = _MISSING, help: str = "", above: float | None = None,
                 below: float | None = None):
        super().__init__(default, help, above=above, below=below)

    def validate(self, value, path, errors):
        if isinstance(value, float) and not math.isfinite(value):  # YAML's .inf and .nan
            return errors.add(path, f"expected {self.expected}, got {value} (not a finite number)")
        return super().validate(value, path, errors)


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                 "y": 31536000}


def parse_duration(text: str) -> float:
    """Parse a Prometheus-style duration ("15s", "1m30s", "500ms") into seconds."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text.strip()):
        raise ValueError(f'expected a duration like "15s", got {_show(text)}')
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if not math.isfinite(seconds):
        raise ValueError(f"expected a duration like \"15s\", got {_show(text)} (too long)")
    return seconds


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration: 60 -> "1m", 90 -> "1m30s", 0.5 -> "500ms"."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts, rest = [], seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


class Duration(Field):
    """A duration such as "15s"; validated into seconds (float). Bare numbers mean seconds.

    Always finite and within [minimum, maximum] (by default 1ms to 365d), so that no value
    that passes validation can flood the log (a 0.1 ms interval) or overflow a timer (.inf)."""

    def __init__(self, default: Any = _MISSING, help: str = "", minimum: float = 0.001,
                 maximum: float = 365 * 86400):
        super().__init__(default, help)
        self.minimum, self.maximum = minimum, maximum
        self.expected = 'a duration like "15s"'

    def validate(self, value, path, errors):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            try:
                seconds = parse_duration(value)
            except ValueError:
                return self.fail(value, path, errors)
        if not self.minimum <= seconds <= self.maximum:  # also false for NaN
            return errors.add(path, f"expected a duration from {format_duration(self.minimum)} "
                                    f"to {format_duration(self.maximum)}, got {_show(value)}")
        return seconds


class DurationText(Str):
    """A duration kept as written ("15m"), for files that pass it on to Prometheus."""

    def __init__(self, default: Any = _MISSING, help: str = ""):
        super().__init__(default, help, pattern=_DURATION.pattern)
        self.expected = 'a duration like "5m"'


class List(Field):
    def __init__(self, item: Field, default: Any = _MISSING, help: str = "",
                 max_items: int | None = None):
        super().__init__(default, help)
        self.item = item
        self.max_items = max_items
        self.expected = f"a list of {item.expected.removeprefix('a ').removeprefix('an ')}"

    def validate(self, value, path, errors):
        if not isinstance(value, list):
            return self.fail(value, path, errors)
        if self.max_items is not None and len(value) > self.max_items:
            errors.add(path, f"expected at most {self.max_items} items, got {len(value)}")
        return [self.item.validate(v, _join(path, i), errors) for i, v in enumerate(value)]


class Map(Field):
    """A mapping from free-form names to values of one schema (e.g. named databases)."""

    def __init__(self, value: Field, default: Any = _MISSING, help: str = "",
                 key_pattern: str = r"[A-Za-z_][A-Za-z0-9_.-]*"):
        super().__init__(default, help)
        self.value = value
        self.key_pattern = re.compile(key_pattern)
        self.expected = "a mapping of names"

    def validate(self, value, path, errors):
        if not isinstance(value, dict):
            return self.fail(value, path, errors)
        result = {}
        for key, item in value.items():
            if not isinstance(key, str) or not self.key_pattern.fullmatch(key):
                errors.add(_join(path, key), f"expected a name matching {self.key_pattern.pattern}")
                continue
            result[key] = self.value.validate(item, _join(path, key), errors)
        return result


class Object(Field):
    """A mapping with known keys; unknown keys are faults with a "did you mean" hint."""

    expected = "a mapping"

    def __init__(self, fields: dict[str, Field], default: Any = _MISSING, help: str = "",
                 check: Callable[[dict, str, Errors], None] | None = None):
        # A section may be left out when all its keys have defaults; default=None makes it
        # optional and absent (e.g. TLS settings that are off unless given).
        super().__init__({} if default is _MISSING else default, help)
        self.fields = fields
        self.check = check

    def default_value(self):
        return None if self.default is None else self.validate({}, "", Errors())

    def validate(self, value, path, errors):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            return self.fail(value, path, errors)
        for key in value:
            if key not in self.fields:
                errors.add(_join(path, key), "unknown key" + _hint(str(key), self.fields))
        result = {}
        for name, schema in self.fields.items():
            sub = _join(path, name)
            if name in value and value[name] is not None:
                result[name] = schema.validate(value[name], sub, errors)
            elif schema.required:
                errors.add(sub, f"is required ({schema.expected})")
            else:
                result[name] = schema.default_value()
        if self.check and not errors.faults:
            self.check(result, path, errors)
        return result


def _hint(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def describe(schema: Object, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Rows (key path, type, default, help) for docs/configuration.md."""
    rows = []
    for name, f in schema.fields.items():
        path = _join(prefix, name)
        default = "required" if f.required else _format_default(f)
        rows.append((path, f.expected, default, f.help))
        if isinstance(f, Object):
            rows.extend(describe(f, path))
        elif isinstance(f, Map) and isinstance(f.value, Object):
            rows.extend(describe(f.value, path + ".<name>"))
        elif isinstance(f, List) and isinstance(f.item, Object):
            rows.extend(describe(f.item, path + "[]"))
    return rows


def _format_default(f: Field) -> str:
    if isinstance(f, (Object,)):
        return ""
    value = f.default() if callable(f.default) else f.default
    if value is None:
        return "unset"
    return format_yaml(value)


def format_yaml(value: Any) -> str:
    """A value as it is written in the YAML file (flow style, one line): what the reader of
    the reference copies must be the value itself."""
    import yaml
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
    return text.strip().removesuffix("...").strip()
