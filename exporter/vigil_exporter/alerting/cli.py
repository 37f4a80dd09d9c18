"""`vigil alerts ...`: list, test and silence alerts in Alertmanager, read the alert log, render
the Alertmanager config for a deployment. Talks to the Alertmanager v2 API with urllib only."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import socket
import sys
import urllib.parse
from datetime import datetime

from vigil_exporter.alerting.timeutil import format_time, parse_duration, parse_time, utc_now
from vigil_exporter.commandline import add_command, add_group
from vigil_exporter.tools.stack import state

DEFAULT_ALERTMANAGER = "http://127.0.0.1:9093"
DEFAULT_LOG = "vigil-alerts.jsonl"
SEVERITIES = ("critical", "warning", "info")
AREAS = ("system", "database", "redis", "business", "application", "exporter", "meta", "slo")
_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*")


class CommandError(Exception):
    """A failure to report as one line on stderr, exit status 1."""


def register(subparsers) -> None:
    commands = add_group(subparsers, "alerts", help="Alertmanager: list, test, silence; alert log",
                         description="Work with Alertmanager and Vigil's alert log.")

    list_ = add_command(commands, "list", _guard(run_list), help="active alerts in Alertmanager")
    _alertmanager_argument(list_)
    list_.add_argument("--filter", action="append", default=[], metavar="MATCHER",
                       help="only alerts matching, e.g. severity=critical (repeatable)")
    list_.add_argument("--json", action="store_true", help="print the API's JSON")

    test = add_command(commands, "test", _guard(run_test),
                       help="send a synthetic alert through Alertmanager")
    _alertmanager_argument(test)
    test.add_argument("--severity", choices=SEVERITIES, default="warning")
    test.add_argument("--area", choices=AREAS, default="meta")
    test.add_argument("--name", default="VigilTestAlert", help="alertname (default %(default)s)")
    test.add_argument("--duration", default="5m", help="resolves itself after this (default 5m)")
    test.add_argument("--label", action="append", default=[], metavar="NAME=VALUE",
                      help="extra label (repeatable)")

    silence = add_command(commands, "silence", _guard(run_silence), help="create a silence")
    _alertmanager_argument(silence)
    silence.add_argument("--matcher", "-m", action="append", required=True, metavar="MATCHER",
                         help='label matcher: name=value, name!=value, name=~regex, name!~regex '
                              '(repeatable, all must match)')
    silence.add_argument("--duration", default="2h", help="how long (default %(default)s)")
    silence.add_argument("--comment", required=True, help="why the alerts are silenced")
    silence.add_argument("--author", default=_user(), help="default: the current user")

    unsilence = add_command(commands, "unsilence", _guard(run_unsilence), help="expire silences")
    _alertmanager_argument(unsilence)
    unsilence.add_argument("silence_ids", nargs="*", metavar="ID",
                           help="silence ids, as `silence` prints them")
    unsilence.add_argument("--matcher", "-m", action="append", default=[], metavar="MATCHER",
                           help="expire every active silence that has exactly this matcher "
                                "(repeatable: all of them)")

    log = add_command(commands, "log", _guard(run_log),
                      help="read the log receiver's JSON-lines file")
    log.add_argument("--file", default=state.default("VIGIL_ALERT_LOG", "alert_log", DEFAULT_LOG),
                     help=f"env VIGIL_ALERT_LOG, else the running `vigil stack up`'s, else "
                          f"./{DEFAULT_LOG}")
    log.add_argument("--severity", action="append", choices=(*SEVERITIES, "none"),
                     help="only this severity (repeatable)")
    log.add_argument("--since", help="only alerts received since: a duration (1h) or a time")
    log.add_argument("--json", action="store_true", help="print the JSON lines")

    render = add_command(commands, "render-config", _guard(run_render_config),
                         help="fill webhook URLs of alertmanager.yml from VIGIL_AM_<RECEIVER>_URL[_FILE]")
    render.add_argument("config", help="alertmanager.yml of the bundle")
    render.add_argument("--output", "-o", help="write here (default stdout); keep templates/ "
                        "beside it")


def _alertmanager_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alertmanager", metavar="URL",
                        default=state.default("VIGIL_ALERTMANAGER_URL", "alertmanager",
                                              DEFAULT_ALERTMANAGER),
                        help="env VIGIL_ALERTMANAGER_URL, else the running `vigil stack up`'s, "
                             "else " + DEFAULT_ALERTMANAGER)
    parser.add_argument("--timeout", type=float, default=10.0, help=argparse.SUPPRESS)


def _guard(handler):
    """Turn CommandError into one line on stderr and exit status 1."""
    def run(args) -> int:
        try:
            return handler(args)
        except CommandError as exc:
            print(f"vigil alerts: {exc}", file=sys.stderr)
            return 1
    run.__name__ = handler.__name__
    return run


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "vigil"


# ---- Alertmanager API -----------------------------------------------------------------------

def api(args, method: str, path: str, body=None, query: list[tuple[str, str]] | None = None):
    import urllib.error  # here, not at the top: `vigil --help` need not load http.client, ssl
    import urllib.request

    url = args.alertmanager.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()[:300]
        raise CommandError(f"Alertmanager answered HTTP {exc.code} to {method} {path}: "
                           f"{detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CommandError(f"cannot reach Alertmanager at {args.alertmanager}: {reason}") from None
    try:
        return json.loads(payload) if payload.strip() else None
    except ValueError:
        raise CommandError(f"{url} did not answer JSON: is it an Alertmanager?") from None


def parse_matcher(text: str) -> dict:
    """`name=value`, `name!=value`, `name=~regex`, `name!~regex` as an API v2 matcher."""
    match = _MATCHER.fullmatch(text)
    if not match:
        raise CommandError(f"bad matcher {text!r}: use name=value, name!=value, name=~regex or "
                           "name!~regex")
    name, operator, value = match.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return {"name": name, "value": value, "isRegex": "~" in operator,
            "isEqual": not operator.startswith("!")}


def matcher_text(matcher: dict) -> str:
    operator = ("=" if matcher.get("isEqual", True) else "!=") + ("~" if matcher["isRegex"] else "")
    operator = operator.replace("!=~", "!~")
    return f'{matcher["name"]}{operator}"{matcher["value"]}"'


# ---- list -----------------------------------------------------------------------------------

def run_list(args) -> int:
    filters = [matcher_text(parse_matcher(m)) for m in args.filter]
    alerts = api(args, "GET", "/api/v2/alerts", query=[("filter", f) for f in filters]) or []
    if args.json:
        print(json.dumps(alerts, indent=2))
        return 0
    alerts.sort(key=lambda a: (SEVERITY_ORDER.get(a["labels"].get("severity"), 9),
                               a["labels"].get("alertname", ""), a.get("startsAt", "")))
    rows = [(a["labels"].get("alertname", ""), a["labels"].get("severity", ""), alert_state(a),
             a["labels"].get("instance", ""), identifying_labels(a["labels"]),
             short_time(a.get("startsAt")), a.get("annotations", {}).get("summary", ""))
            for a in alerts]
    print(table(("ALERTNAME", "SEVERITY", "STATE", "INSTANCE", "LABELS", "STARTED", "SUMMARY"),
                rows) if rows else "no alerts")
    return 0


SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
# Labels with a column of their own, or the same on every alert of a name (the bundle's area,
# the scrape job, Prometheus's external labels): the rest tell alerts of one name apart
# (six TenantNearLimit alerts of one tenant differ by `resource`).
SHOWN_ELSEWHERE = frozenset({"alertname", "severity", "instance", "area", "job", "monitor",
                             "prometheus", "prometheus_replica", "replica"})


def identifying_labels(labels: dict) -> str:
    """`tenant=acme resource=agents`: the labels that identify an alert among those of its
    name, sorted by name."""
    return " ".join(f"{name}={value}" for name, value in sorted(labels.items())
                    if name not in SHOWN_ELSEWHERE)


def alert_state(alert: dict) -> str:
    status = alert.get("status", {})
    if status.get("silencedBy"):
        return "silenced"
    if status.get("inhibitedBy"):
        return "inhibited"
    return status.get("state", "?")


# ---- test -----------------------------------------------------------------------------------

def run_test(args) -> int:
    now = utc_now()
    try:
        ends = now + parse_duration(args.duration)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    extra = dict(parse_label(text) for text in args.label)
    alert = {
        "labels": {"alertname": args.name, "severity": args.severity, "area": args.area,
                   "instance": socket.gethostname(), "source": "vigil-alerts-test", **extra},
        "annotations": {
            "summary": "Synthetic alert sent by `vigil alerts test`.",
            "description": f"A {args.severity} test alert for area {args.area}, sent at "
                           f"{format_time(now)} to check routing and receivers. It resolves "
                           f"itself at {format_time(ends)}.",
        },
        "startsAt": format_time(now),
        "endsAt": format_time(ends),
        "generatorURL": "vigil://alerts/test",
    }
    api(args, "POST", "/api/v2/alerts", body=[alert])
    print(f"sent to {args.alertmanager}:")
    print(json.dumps(alert, indent=2))
    return 0


def parse_label(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name.strip()):
        raise CommandError(f"bad label {text!r}: use name=value")
    return name.strip(), value.strip()


# ---- silence --------------------------------------------------------------------------------

def run_silence(args) -> int:
    matchers = [parse_matcher(text) for text in args.matcher]
    try:
        duration = parse_duration(args.duration)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    now = utc_now()
    silence = {"matchers": matchers, "startsAt": format_time(now),
               "endsAt": format_time(now + duration), "createdBy": args.author,
               "comment": args.comment}
    answer = api(args, "POST", "/api/v2/silences", body=silence) or {}
    silence_id = answer.get("silenceID", "?")
    print(silence_id)
    print(f"silenced {{{', '.join(matcher_text(m) for m in matchers)}}} until "
          f"{short_time(silence['endsAt'])}", file=sys.stderr)
    return 0


# ---- unsilence ------------------------------------------------------------------------------

def run_unsilence(args) -> int:
    if not args.silence_ids and not args.matcher:
        raise CommandError("unsilence: give silence ids or --matcher")
    ids = list(args.silence_ids)
    if args.matcher:
        wanted = sorted(matcher_text(parse_matcher(m)) for m in args.matcher)
        for silence in api(args, "GET", "/api/v2/silences") or []:
            if silence.get("status", {}).get("state") == "expired":
                continue
            if sorted(matcher_text(m) for m in silence.get("matchers", [])) == wanted:
                ids.append(silence["id"])
        if not ids:
            raise CommandError(f"no active silence with exactly the matchers {', '.join(wanted)}")
    for silence_id in dict.fromkeys(ids):
        api(args, "DELETE", f"/api/v2/silence/{urllib.parse.quote(silence_id)}")
        print(f"expired {silence_id}")
    return 0


# ---- log ------------------------------------------------------------------------------------

def run_log(args) -> int:
    since = parse_since(args.since) if args.since else None
    try:
        handle = open(args.file, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read the alert log {args.file}: {exc.strerror}") from None
    records, bad = [], 0
    with handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                received = parse_time(record["received_at"])
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            if args.severity and record.get("severity") not in args.severity:
                continue
            if since and (received is None or received < since):
                continue
            records.append(record)
    if bad:
        print(f"vigil alerts: skipped {bad} unreadable line(s) in {args.file}", file=sys.stderr)
    if args.json:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
        return 0
    rows = [(short_time(r.get("received_at")), r.get("status", ""), r.get("severity", ""),
             r.get("alertname", ""), (r.get("labels") or {}).get("instance", ""),
             identifying_labels(r.get("labels") or {}),
             (r.get("annotations") or {}).get("summary", "")) for r in records]
    print(table(("RECEIVED", "STATUS", "SEVERITY", "ALERTNAME", "INSTANCE", "LABELS", "SUMMARY"),
                rows) if rows else "no alerts")
    return 0


def parse_since(text: str) -> datetime:
    moment = parse_time(text)
    if moment is not None:
        return moment
    try:
        return utc_now() - parse_duration(text)
    except ValueError:
        raise CommandError(f"bad --since {text!r}: use a duration (1h, 30m, 2d) or a time "
                           "(2024-05-01T10:00:00Z)") from None


# ---- render-config --------------------------------------------------------------------------

def run_render_config(args) -> int:
    from vigil_exporter.alerting.render import render_config, url_variable

    try:
        with open(args.config, encoding="utf-8") as handle:
            rendered, unrendered = render_config(handle.read(), os.environ)
        if args.output:
            write_secret(args.output, rendered)
        else:
            sys.stdout.write(rendered)
    except OSError as exc:
        raise CommandError(f"{exc.filename}: {exc.strerror}") from None
    for name in unrendered:
        print(f"vigil alerts: receiver {name} keeps its placeholder URL: set {url_variable(name)} "
              f"or {url_variable(name)}_FILE", file=sys.stderr)
    return 0


def write_secret(path: str, text: str) -> None:
    """Write a file holding secrets: mode 0600 from its first byte (never briefly readable by
    others), replacing the old file whole."""
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


# ---- output ---------------------------------------------------------------------------------

def short_time(text: str | None) -> str:
    moment = parse_time(text or "")
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else (text or "")


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    rows = [header, *rows]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(f"{str(c):<{w}}" for c, w in zip(row, widths)),
                                str(row[-1])]).rstrip() for row in rows)

