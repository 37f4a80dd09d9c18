"""Draw the Grafana dashboards from a live Prometheus into PNG files, without Grafana.

Each panel's queries run against Prometheus' HTTP API (query_range, or an instant query for
tables and instant targets) with the dashboard variables set to "All"; the panels are placed as
`gridPos` places them in Grafana's 24-column grid and drawn with matplotlib: time series as
lines with the threshold lines, stats as big numbers, gauges as half rings, bar gauges as bars,
tables as tables, all with their units. It is a way to see what a dashboard shows, in tests and
in the README, not a replacement for Grafana.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from vigil_exporter.prometheus_api import PrometheusAPI, PrometheusError
from vigil_exporter.tools.dashboards import lint
from vigil_exporter.tools.dashboards.build import load_dashboards
from vigil_exporter.validation import format_duration, parse_duration

DEFAULT_SCRAPE_INTERVAL = 15.0

# Grafana's dark theme.
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#705da0", "#37872d", "#fade2a", "#ff9830", "#c4162a"]
COLORS = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "yellow": "#fade2a",
          "blue": "#5794f2", "text": TEXT}


class RenderError(Exception):
    pass


# ---- Prometheus --------------------------------------------------------------------------------

class Prometheus:
    """Range and instant queries as lists of {"metric": labels, "values": [(t, v), ...]}."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.api = PrometheusAPI(url, timeout)

    def _data(self, method, *args) -> dict:
        try:
            return method(*args)
        except PrometheusError as exc:
            raise RenderError(str(exc)) from None

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        data = self._data(self.api.query_range, expr, start, end, step)
        return [{"metric": s["metric"], "values": [(float(t), _float(v)) for t, v in s["values"]]}
                for s in data["result"]]

    def query(self, expr: str, at: float) -> list[dict]:
        data = self._data(self.api.query, expr, at)
        if data["resultType"] == "scalar":
            t, v = data["result"]
            return [{"metric": {}, "values": [(float(t), _float(v))]}]
        return [{"metric": s["metric"], "values": [(float(s["value"][0]), _float(s["value"][1]))]}
                for s in data["result"]]


def _float(value: str) -> float:
    return float(value)  # Prometheus spells NaN and ±Inf the way float() reads them


# ---- fetching ----------------------------------------------------------------------------------

@dataclass
class Series:
    name: str
    labels: dict
    times: list[float]
    values: list[float]

    @property
    def last(self) -> float | None:
        for value in reversed(self.values):
            if not math.isnan(value):
                return value
        return self.values[-1] if self.values else None


@dataclass
class TargetData:
    ref: str
    expr: str
    series: list[Series]


@dataclass
class PanelData:
    panel: dict
    targets: list[TargetData] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.panel.get("title", "")

    @property
    def has_data(self) -> bool:
        return any(t.series for t in self.targets)


def _whole(seconds: float) -> str:
    """A duration PromQL accepts (whole seconds, at least one)."""
    return format_duration(max(1, round(seconds)))


def variable_values(dashboard: dict, since: float, step: float,
                    scrape_interval: float) -> dict[str, str]:
    """Values for the variables the way Grafana fills them, with every multi-select at All."""
    rate_interval = max(step + scrape_interval, 4 * scrape_interval)
    values = {"__rate_interval": _whole(rate_interval),
              "__interval": _whole(step), "__range": _whole(since),
              "__range_s": str(int(since)), "__interval_ms": str(int(step * 1000))}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            values[var["name"]] = var.get("allValue") or ".+"
    return values


def legend(fmt: str, labels: dict) -> str:
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(labels.get(m.group(1), "")), fmt).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    name = labels.get("__name__", "")
    return name + ("{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"
                   if shown else "")


def fetch(dashboard: dict, prometheus: Prometheus, since: float, end: float | None = None,
          scrape_interval: float = DEFAULT_SCRAPE_INTERVAL, points: int = 240) -> list[PanelData]:
    """Run every panel's queries; instant ones (tables, instant targets) at `end`."""
    end = time.time() if end is None else end
    start = end - since
    step = max(scrape_interval, math.ceil(since / points))
    values = variable_values(dashboard, since, step, scrape_interval)
    out = []
    for panel in lint.panels(dashboard):
        data = PanelData(panel)
        for target in panel.get("targets", []):
            expr = lint.expand(target["expr"], values)
            if target.get("instant") or panel.get("type") == "table":
                raw = prometheus.query(expr, end)
            else:
                raw = prometheus.query_range(expr, start, end, step)
            series = [Series(legend(target.get("legendFormat", ""), s["metric"]), s["metric"],
                             [t for t, _ in s["values"]], [v for _, v in s["values"]])
                      for s in raw]
            data.targets.append(TargetData(target.get("refId", "A"), expr, series))
        out.append(data)
    return out


# ---- units -------------------------------------------------------------------------------------

def _scaled(value: float, base: float, prefixes: list[str], suffix: str, digits: int = 3) -> str:
    magnitude = abs(value)
    index = 0
    while magnitude >= base and index < len(prefixes) - 1:
        magnitude /= base
        value /= base
        index += 1
    return f"{_round(value, digits)} {prefixes[index]}{suffix}".rstrip()


def _round(value: float, digits: int = 3) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    text = f"{value:.{digits}g}"
    return text if "e" not in text else f"{value:.2e}"


def format_value(value: float | None, unit: str, decimals: int | None = None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    unit = unit or "short"
    if unit == "percentunit":
        return f"{value * 100:.{1 if decimals is None else decimals}f}%"
    if unit == "percent":
        return f"{value:.{1 if decimals is None else decimals}f}%"
    if unit in ("bytes", "Bps"):
        text = _scaled(value, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], "")
        return text + ("/s" if unit == "Bps" else "")
    if unit == "decbytes":
        return _scaled(value, 1000, ["B", "kB", "MB", "GB", "TB", "PB"], "")
    if unit in ("s", "ms"):
        seconds = value / 1000 if unit == "ms" else value
        magnitude = abs(seconds)
        if magnitude == 0:
            return "0 s"
        if magnitude < 1e-3:
            return f"{_round(seconds * 1e6)} µs"
        if magnitude < 1:
            return f"{_round(seconds * 1e3)} ms"
        if magnitude < 60:
            return f"{_round(seconds)} s"
        if magnitude < 3600:
            return f"{_round(seconds / 60)} min"
        if magnitude < 86400:
            return f"{_round(seconds / 3600)} hour"
        return f"{_round(seconds / 86400)} day"
    if unit == "currencyUSD":
        return f"${value:,.{2 if decimals is None else decimals}f}"
    suffix = {"reqps": " req/s", "ops": " ops/s", "cps": " c/s", "rps": " r/s", "wps": " w/s",
              "iops": " io/s"}.get(unit, "")
    if decimals is not None:
        return f"{value:.{decimals}f}{suffix}"
    return _scaled(value, 1000, ["", "K", "M", "B", "T"], "").strip() + suffix


# ---- drawing -----------------------------------------------------------------------------------

COLUMN_INCHES = 20.0 / lint.GRID_COLUMNS   # a 24-column grid 20 inches wide
ROW_INCHES = COLUMN_INCHES * 30 / 80       # Grafana: 30 px rows, ~80 px columns on a wide screen
HEADER_INCHES = 0.7


def _thresholds(panel: dict) -> list[tuple[float | None, str]]:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    return [(s.get("value"), COLORS.get(s.get("color"), s.get("color", TEXT))) for s in steps]


def _threshold_color(panel: dict, value: float | None) -> str:
    color = COLORS["green"]
    if value is None or math.isnan(value):
        return MUTED
    for limit, step_color in _thresholds(panel):
        if limit is None or value >= limit:
            color = step_color
    return color


def _mapped(panel: dict, value: float | None) -> tuple[str, str] | None:
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        if mapping.get("type") == "value" and value is not None and not math.isnan(value):
            key = str(int(value)) if float(value).is_integer() else str(value)
            hit = mapping.get("options", {}).get(key)
            if hit:
                return hit.get("text", key), COLORS.get(hit.get("color"), hit.get("color", TEXT))
    return None


def _defaults(panel: dict) -> dict:
    return panel.get("fieldConfig", {}).get("defaults", {})


def _unit_for(panel: dict, series_name: str) -> str:
    unit = _defaults(panel).get("unit", "short")
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        if matcher.get("id") in ("byRegexp", "byName"):
            pattern = matcher.get("options", "")
            hit = (re.search(pattern, series_name) if matcher["id"] == "byRegexp"
                   else pattern == series_name)
            if hit:
                for prop in override.get("properties", []):
                    if prop.get("id") == "unit":
                        unit = prop["value"]
    return unit


def render(dashboard: dict, panels: list[PanelData], path: Path, since: float,
           end: float | None = None) -> None:
    """Draw one dashboard's fetched panels into a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    rows = dashboard.get("panels", [])
    grid_height = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in rows), default=1)
    width = COLUMN_INCHES * lint.GRID_COLUMNS
    height = HEADER_INCHES + grid_height * ROW_INCHES
    fig = plt.figure(figsize=(width, height), dpi=100, facecolor=BACKGROUND)
    end = time.time() if end is None else end

    def box(pos: dict, pad: float = 0.04) -> tuple[float, float, float, float]:
        """Figure coordinates (left, bottom, width, height) of a gridPos, with a gutter."""
        x0 = pos["x"] * COLUMN_INCHES + pad
        y0 = HEADER_INCHES + pos["y"] * ROW_INCHES + pad
        w = pos["w"] * COLUMN_INCHES - 2 * pad
        h = pos["h"] * ROW_INCHES - 2 * pad
        return x0 / width, 1 - (y0 + h) / height, w / width, h / height

    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    fig.text(0.008, 1 - 0.28 / height, dashboard.get("title", ""), color=TEXT, fontsize=17,
             fontweight="bold", va="center")
    fig.text(0.992, 1 - 0.28 / height, f"last {_whole(since)} to {stamp}   uid "
             f"{dashboard.get('uid')}", color=MUTED, fontsize=10, va="center", ha="right")

    for row in rows:
        if row.get("type") == "row":
            left, bottom, w, h = box(row["gridPos"], pad=0.02)
            fig.text(left, bottom + h / 2, row.get("title", ""), color=TEXT, fontsize=13,
                     fontweight="bold", va="center")
    for data in panels:
        panel = data.panel
        left, bottom, w, h = box(panel["gridPos"])
        frame = fig.add_axes((left, bottom, w, h))
        frame.set_axis_off()
        frame.add_patch(FancyBboxPatch((0, 0), 1, 1, boxstyle="round,pad=0,rounding_size=0.01",
                                       transform=frame.transAxes, facecolor=PANEL,
                                       edgecolor=BORDER, linewidth=0.8))
        title_h = 0.3 / (h * height)  # 0.3 inch title strip, in axes fraction
        frame.text(0.012, 1 - title_h / 2, panel.get("title", ""), color=TEXT, fontsize=9.5,
                   fontweight="bold", va="center", ha="left", transform=frame.transAxes,
                   clip_on=True)
        inner = (left + 0.01 * w, bottom + 0.02 * h, w * 0.98, h * (0.98 - title_h))
        kind = panel.get("type")
        if not data.has_data:
            frame.text(0.5, 0.45, "No data", color=MUTED, fontsize=12, ha="center",
                       va="center", transform=frame.transAxes)
        elif kind == "timeseries":
            _timeseries(fig, inner, panel, data, since, end)
        elif kind == "stat":
            _stat(fig, inner, panel, data)
        elif kind == "gauge":
            _gauge(fig, inner, panel, data)
        elif kind == "bargauge":
            _bargauge(fig, inner, panel, data)
        elif kind == "table":
            _table(fig, inner, panel, data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor=BACKGROUND)
    plt.close(fig)


def _all_series(data: PanelData) -> list[Series]:
    return [s for t in data.targets for s in t.series]


def _timeseries(fig, rect, panel: dict, data: PanelData, since: float, end: float) -> None:
    from datetime import datetime, timezone

    import matplotlib.dates as mdates
    from matplotlib import ticker

    series = _all_series(data)
    unit = _defaults(panel).get("unit", "short")
    legend_h = 0.0 if len(series) > 8 else min(0.35, 0.11 * math.ceil(len(series) / 3))
    left, bottom, w, h = rect
    ax = fig.add_axes((left + 0.045 * w + 0.02, bottom + h * legend_h + 0.012,
                       w * 0.93 - 0.02, h * (1 - legend_h) - 0.014))
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=7, length=0)
    ax.grid(True, color=BORDER, linewidth=0.6)
    fill = _defaults(panel).get("custom", {}).get("fillOpacity", 0) / 100
    lines = []
    for index, s in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        times = [datetime.fromtimestamp(t, timezone.utc) for t in s.times]
        (line,) = ax.plot(times, s.values, color=color, linewidth=1.2, label=s.name or "value")
        if fill and len(series) <= 4:
            ax.fill_between(times, s.values, color=color, alpha=fill * 0.8, linewidth=0)
        lines.append(line)
    style = _defaults(panel).get("custom", {}).get("thresholdsStyle", {}).get("mode", "off")
    if style != "off":
        for limit, color in _thresholds(panel):
            if limit is not None:
                ax.axhline(limit, color=color, linestyle=(0, (4, 3)), linewidth=1)
    minimum = _defaults(panel).get("min")
    maximum = _defaults(panel).get("max")
    if minimum is not None:
        ax.set_ylim(bottom=minimum)
    if maximum is not None:
        ax.set_ylim(top=maximum * 1.02)
    ax.set_xlim(datetime.fromtimestamp(end - since, timezone.utc),
                datetime.fromtimestamp(end, timezone.utc))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if since < 600 else "%H:%M",
                                                      tz=timezone.utc))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    locator.intervald[mdates.SECONDLY] = [1, 5, 10, 15, 30]
    locator.intervald[mdates.MINUTELY] = [1, 2, 5, 10, 15, 30]
    ax.xaxis.set_major_locator(locator)
    ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=4))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: format_value(v, unit)))
    if legend_h:
        labels = [line.get_label()[:38] for line in lines]
        fig.legend(lines, labels, loc="upper left", ncol=3, fontsize=7, frameon=False,
                   labelcolor=TEXT, handlelength=1.2, columnspacing=1.0,
                   bbox_to_anchor=(left + 0.01, bottom + h * legend_h), borderaxespad=0)
    elif series:
        fig.text(left + w - 0.005, bottom + 0.005, f"{len(series)} series", color=MUTED,
                 fontsize=7, ha="right", va="bottom")


def _stat(fig, rect, panel: dict, data: PanelData) -> None:
    series = _all_series(data)[:6]
    left, bottom, w, h = rect
    decimals = _defaults(panel).get("decimals")
    count = len(series)
    for index, s in enumerate(series):
        cell_w = w / count
        x = left + cell_w * (index + 0.5)
        value = s.last
        mapped = _mapped(panel, value)
        text, color = mapped or (format_value(value, _unit_for(panel, s.name), decimals),
                                 _threshold_color(panel, value))
        size = max(10, min(30, 100 * h * cell_w / max(len(text), 3)))
        fig.text(x, bottom + h * 0.5, text, color=color, fontsize=size, fontweight="bold",
                 ha="center", va="center")
        if count > 1 or s.name:
            fig.text(x, bottom + h * 0.12, (s.name or "")[:30], color=MUTED, fontsize=7,
                     ha="center", va="center")


def _gauge(fig, rect, panel: dict, data: PanelData) -> None:
    from matplotlib.patches import Wedge

    series = _all_series(data)[:1]
    left, bottom, w, h = rect
    value = series[0].last if series else None
    defaults = _defaults(panel)
    low, high = defaults.get("min", 0), defaults.get("max", 1)
    fraction = 0.0 if value is None or math.isnan(value) else (value - low) / ((high - low) or 1)
    fraction = min(max(fraction, 0.0), 1.0)
    ax = fig.add_axes(rect)
    ax.set_axis_off()
    ax.set_aspect("equal")
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-0.35, 1.1)
    ax.add_patch(Wedge((0, 0), 1, 0, 180, width=0.22, facecolor=BORDER))
    color = _threshold_color(panel, value)
    ax.add_patch(Wedge((0, 0), 1, 180 - 180 * fraction, 180, width=0.22, facecolor=color))
    for limit, step_color in _thresholds(panel):  # threshold marks, as Grafana's outer ring
        if limit is not None and low <= limit <= high:
            angle = math.pi * (1 - (limit - low) / ((high - low) or 1))
            ax.plot([0.8 * math.cos(angle), 1.06 * math.cos(angle)],
                    [0.8 * math.sin(angle), 1.06 * math.sin(angle)], color=step_color, lw=2)
    ax.text(0, 0.15, format_value(value, defaults.get("unit", "short"), defaults.get("decimals")),
            color=color, fontsize=18, fontweight="bold", ha="center", va="center")


def _bargauge(fig, rect, panel: dict, data: PanelData) -> None:
    series = sorted(_all_series(data), key=lambda s: -(s.last or 0))[:12]
    defaults = _defaults(panel)
    unit = defaults.get("unit", "short")
    low, high = defaults.get("min", 0), defaults.get("max", 1)
    left, bottom, w, h = rect
    ax = fig.add_axes((left + w * 0.3, bottom + 0.01, w * 0.55, h - 0.02))
    ax.set_axis_off()
    count = len(series)
    for index, s in enumerate(series):
        y = count - index - 1
        value = s.last or 0.0
        ax.barh(y, high - low, left=low, color=BORDER, height=0.7)
        ax.barh(y, min(max(value, low), high) - low, left=low,
                color=_threshold_color(panel, value), height=0.7)
        fig.text(left + w * 0.29, bottom + 0.01 + (h - 0.02) * (y + 0.5) / count,
                 s.name[:32], color=TEXT, fontsize=7.5, ha="right", va="center")
        fig.text(left + w * 0.86, bottom + 0.01 + (h - 0.02) * (y + 0.5) / count,
                 format_value(value, unit), color=_threshold_color(panel, value), fontsize=8,
                 fontweight="bold", ha="left", va="center")
    ax.set_xlim(low, high)
    ax.set_ylim(-0.5, count - 0.5)


def _table(fig, rect, panel: dict, data: PanelData) -> None:
    excluded, renamed, index = set(), {}, {}
    for transformation in panel.get("transformations", []):
        if transformation.get("id") == "organize":
            options = transformation.get("options", {})
            excluded = {k for k, v in options.get("excludeByName", {}).items() if v}
            renamed = options.get("renameByName", {})
            index = options.get("indexByName", {})
    single = len(data.targets) == 1
    rows: dict[tuple, dict] = {}
    label_columns: list[str] = []
    for target in data.targets:
        column = "Value" if single else f"Value #{target.ref}"
        for s in target.series:
            labels = {k: v for k, v in s.labels.items() if k not in excluded}
            for name in labels:
                if name not in label_columns:
                    label_columns.append(name)
            key = tuple(sorted(labels.items()))
            rows.setdefault(key, dict(labels))[column] = s.last
    value_columns = (["Value"] if single else [f"Value #{t.ref}" for t in data.targets])
    columns = [c for c in label_columns + value_columns if c not in excluded]
    columns.sort(key=lambda c: index.get(c, len(index)))  # stable: the rest keep their order
    cells = []
    for row in sorted(rows.values(), key=lambda r: [str(r.get(c, "")) for c in label_columns]):
        cells.append([format_value(row.get(c), _unit_for(panel, renamed.get(c, c)))
                      if c in value_columns else str(row.get(c, "")) for c in columns])
    left, bottom, w, h = rect
    ax = fig.add_axes(rect)
    ax.set_axis_off()
    if not cells:
        return
    max_rows = max(1, int(h * fig.get_figheight() / 0.22) - 1)
    shown = cells[:max_rows]
    table = ax.table(cellText=shown, colLabels=[renamed.get(c, c) for c in columns],
                     loc="upper center", cellLoc="left", colLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.0)
    for (r, _), cell in table.get_celld().items():
        cell.set_edgecolor(BORDER)
        cell.set_facecolor(PANEL if r else BORDER)
        cell.get_text().set_color(TEXT if r else MUTED)
        cell.set_height(0.95 / (len(shown) + 1))


# ---- the command ------------------------------------------------------------------------------

def scrape_interval(root: Path) -> float:
    """The datasource's timeInterval (the scrape interval) from the Grafana provisioning."""
    path = root / "grafana/provisioning/datasources/prometheus.yml"
    try:
        import yaml

        document = yaml.safe_load(path.read_text())
        return parse_duration(document["datasources"][0]["jsonData"]["timeInterval"])
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        return DEFAULT_SCRAPE_INTERVAL


def render_all(root: Path, prometheus_url: str, out_dir: Path, since: float,
               only: list[str] | None = None, end: float | None = None
               ) -> list[tuple[Path, list[str]]]:
    """Render every dashboard (or those named in `only`, by uid or file name) into
    `out_dir/<file name>.png`; return each file with the titles of its panels without data."""
    prometheus = Prometheus(prometheus_url)
    interval = scrape_interval(root)
    end = time.time() if end is None else end
    dashboards = load_dashboards(root)
    if only:
        unknown = set(only) - set(dashboards) - {d.get("uid") for d in dashboards.values()}
        if unknown:
            raise RenderError(f"no such dashboard: {', '.join(sorted(unknown))}")
    written = []
    for name, dashboard in dashboards.items():
        if only and name not in only and dashboard.get("uid") not in only:
            continue
        panels = fetch(dashboard, prometheus, since, end, interval)
        path = Path(out_dir) / f"{name}.png"
        render(dashboard, panels, path, since, end)
        written.append((path, [p.title for p in panels if not p.has_data]))
    return written
