"""PromQL, as far as the checkout tools need it: tokens, and the selectors of an expression.

A tokenizer, not a parser: enough to find which metrics an expression reads and which function
encloses each selector. Syntax is checked by a real Prometheus (promtool) in the tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless", "atan2", "inf", "nan", "start", "end"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


@dataclass
class Token:
    kind: str   # ident, matchers, range, string, duration, number, op, lparen, rparen, comma
    text: str


_TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<matchers>\{(?:[^{}"']|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')*\})
  | (?P<range>\[[^\]]*\])
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![a-zA-Z_:]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![a-zA-Z_:]))
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>@])
  | (?P<space>\s+)
""", re.VERBOSE)


def tokenize(expr: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise ValueError(f"cannot tokenise PromQL at {expr[pos:pos + 20]!r}")
        pos = match.end()
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group()))
    return tokens


_MATCHER = re.compile(r"""\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*,?""")


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str                # =, !=, =~ or !~
    value: str             # unquoted (escapes kept as written)


def matchers(text: str) -> list[Matcher]:
    """The label matchers of a `{...}` token."""
    body = text.strip()[1:-1]
    found, pos = [], 0
    while pos < len(body) and body[pos:].strip():
        match = _MATCHER.match(body, pos)
        if not match:
            raise ValueError(f"cannot read label matchers at {body[pos:pos + 20]!r}")
        found.append(Matcher(match.group(1), match.group(2), match.group(3)[1:-1]))
        pos = match.end()
    return found


@dataclass
class Selector:
    metric: str            # metric name, "" for {__name__=...} selectors
    range: str | None      # the text inside [...] when this is a range selector
    function: str          # innermost function call around it, "" when none
    matchers: tuple[Matcher, ...] = ()

    def has(self, label: str, op: str, value: str) -> bool:
        return Matcher(label, op, value) in self.matchers


def selectors(expr: str) -> list[Selector]:
    """Vector and range selectors of an expression with the function that encloses each."""
    tokens = tokenize(expr)
    stack: list[str] = []   # per open parenthesis: the function name, or "" for grouping
    out = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        prev = tokens[i - 1] if i else None
        if tok.kind == "lparen":
            stack.append(prev.text if prev is not None and prev.kind == "ident" else "")
        elif tok.kind == "rparen":
            if stack:
                stack.pop()
        elif tok.kind in ("ident", "matchers"):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            in_label_list = bool(stack) and stack[-1] in LABEL_LIST_KEYWORDS
            # f(...), and aggregations written `sum by (...) (...)` / `sum without (...) (...)`
            is_call = tok.kind == "ident" and nxt is not None and (
                nxt.kind == "lparen" or nxt.text in ("by", "without"))
            if tok.kind == "ident" and (is_call or in_label_list or tok.text.lower() in KEYWORDS
                                        or (prev is not None and prev.text == "offset")):
                i += 1
                continue
            metric = tok.text if tok.kind == "ident" else ""
            j = i + 1
            braces = tok.text if tok.kind == "matchers" else "{}"
            if tok.kind == "ident" and nxt is not None and nxt.kind == "matchers":
                braces = nxt.text
                j += 1
            rng = None
            if j < len(tokens) and tokens[j].kind == "range":
                rng = tokens[j].text[1:-1].strip()
            out.append(Selector(metric, rng, stack[-1] if stack else "", tuple(matchers(braces))))
            i = j
            continue
        i += 1
    return out


def metric_names_in(expr: str) -> set[str]:
    """Metric names an expression reads."""
    return {selector.metric for selector in selectors(expr) if selector.metric}
