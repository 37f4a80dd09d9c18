// A small Grafana dashboard library of our own: panels, rows, template variables and an
// automatic grid layout. A dashboard file reads like a table of contents:
//
//   local g = import 'lib/grafana.libsonnet';
//   g.dashboard('Vigil / Redis', uid='vigil-redis', variables=[...], items=[
//     g.row('Health'),
//     g.stat('Up', 'Whether ...', 'none', [g.target('vigil_redis_up{...}')], w=4),
//     ...
//   ])
//
// Every panel constructor takes (title, description, unit, targets) and optional named settings;
// `dashboard` assigns ids and refIds and places panels left to right in 24 columns, wrapping when
// a line is full, so panels never overlap and nobody maintains coordinates by hand.
local datasource = { type: 'prometheus', uid: '$datasource' };

local refIds = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

// Threshold steps from a list of {value, color}: the base step (value null) is green unless said.
local thresholdSteps(steps, base) =
  [{ color: base, value: null }] + [{ color: s.color, value: s.value } for s in steps];

local withRefIds(targets) =
  [targets[i] { refId: refIds[i] } for i in std.range(0, std.length(targets) - 1)];

local reduceOptions(calc) = { calcs: [calc], fields: '', values: false };

// Fields every panel shares. `thresholds` is a list of {value, color} (e.g. the alert's value);
// `links` are panel links (runbooks, other dashboards).
local panel(type, title, description, unit, targets, w, h, thresholds, thresholdBase, min, max,
            decimals, links, options, custom, overrides, mappings, transformations) = {
  type: type,
  title: title,
  description: description,
  datasource: datasource,
  targets: withRefIds([t { datasource: datasource } for t in targets]),
  links: links,
  gridPos: { w: w, h: h },
  fieldConfig: {
    defaults: {
      unit: unit,
      color: { mode: if type == 'timeseries' then 'palette-classic' else 'thresholds' },
      thresholds: { mode: 'absolute', steps: thresholdSteps(thresholds, thresholdBase) },
      mappings: mappings,
      custom: custom,
    } + (if min != null then { min: min } else {})
      + (if max != null then { max: max } else {})
      + (if decimals != null then { decimals: decimals } else {}),
    overrides: overrides,
  },
  options: options,
  transformations: transformations,
};

{
  datasource:: datasource,

  // A Prometheus query. `legend` uses Grafana's {{label}} syntax; `instant` for tables and
  // big numbers that only need the latest value; `exemplar` also fetches the exemplars of the
  // series the query selects (trace links on latency panels).
  target(expr, legend='', instant=false, format='time_series', interval='', exemplar=false):: {
    expr: expr,
    legendFormat: legend,
    format: format,
    instant: instant,
    range: !instant,
    [if interval != '' then 'interval']: interval,
    [if exemplar then 'exemplar']: true,
  },

  // A threshold step: the value at which the colour changes.
  threshold(value, color='red'):: { value: value, color: color },

  // A panel link, e.g. to a runbook section or to another dashboard.
  link(title, url):: { title: title, url: url, targetBlank: false },

  timeseries(title, description, unit, targets, w=8, h=8, thresholds=[], min=null, max=null,
             decimals=null, links=[], stack=false, fill=10, legend='list', overrides=[],
             thresholdStyle='dashed', drawStyle='line', base='green')::
    panel('timeseries', title, description, unit, targets, w, h, thresholds, base, min, max,
          decimals, links,
          options={
            legend: { displayMode: legend, placement: 'bottom', showLegend: true, calcs: [] },
            tooltip: { mode: 'multi', sort: 'desc' },
          },
          custom={
            drawStyle: drawStyle,
            lineWidth: 1,
            fillOpacity: fill,
            showPoints: 'never',
            spanNulls: false,
            stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
            thresholdsStyle: { mode: if thresholds == [] then 'off' else thresholdStyle },
          },
          overrides=overrides, mappings=[], transformations=[]),

  // A big number (the last value of each series). `graph` adds the sparkline.
  stat(title, description, unit, targets, w=4, h=4, thresholds=[], base='green', min=null,
       max=null, decimals=null, links=[], mappings=[], graph=true, calc='lastNotNull',
       colorMode='value', textMode='auto')::
    panel('stat', title, description, unit, targets, w, h, thresholds, base, min, max, decimals,
          links,
          options={
            reduceOptions: reduceOptions(calc),
            colorMode: colorMode,
            graphMode: if graph then 'area' else 'none',
            justifyMode: 'auto',
            orientation: 'auto',
            textMode: textMode,
          },
          custom={}, overrides=[], mappings=mappings, transformations=[]),

  gauge(title, description, unit, targets, w=4, h=6, thresholds=[], min=0, max=1,
        decimals=null, links=[])::
    panel('gauge', title, description, unit, targets, w, h, thresholds, 'green', min, max,
          decimals, links,
          options={
            reduceOptions: reduceOptions('lastNotNull'),
            showThresholdLabels: false,
            showThresholdMarkers: true,
            orientation: 'auto',
          },
          custom={}, overrides=[], mappings=[], transformations=[]),

  // Horizontal bars, one per series: "how close is each tenant to its limit".
  bargauge(title, description, unit, targets, w=12, h=8, thresholds=[], min=0, max=1,
           decimals=null, links=[])::
    panel('bargauge', title, description, unit, targets, w, h, thresholds, 'green', min, max,
          decimals, links,
          options={
            reduceOptions: reduceOptions('lastNotNull'),
            displayMode: 'gradient',
            orientation: 'horizontal',
            showUnfilled: true,
            valueMode: 'color',
            namePlacement: 'auto',
            sizing: 'auto',
          },
          custom={}, overrides=[], mappings=[], transformations=[]),

  // A table of instant queries, one column per query, joined on their labels.
  // `columns` renames columns: {'Value #A': 'Agents', tenant: 'Tenant'}, and its order is the
  // column order (other columns follow); `hide` drops label columns.
  table(title, description, unit, targets, w=24, h=8, thresholds=[], columns={}, hide=[],
        decimals=null, links=[], sortBy='', overrides=[], order=[])::
    panel('table', title, description, unit,
          [t { instant: true, range: false, format: 'table' } for t in targets],
          w, h, thresholds, 'green', null, null, decimals, links,
          options={
            showHeader: true,
            cellHeight: 'sm',
            footer: { show: false, reducer: ['sum'], fields: '' },
            sortBy: if sortBy == '' then [] else [{ displayName: sortBy, desc: true }],
          },
          custom={ align: 'auto', cellOptions: { type: 'color-text' }, inspect: false },
          overrides=overrides, mappings=[],
          transformations=[
            { id: 'merge', options: {} },
            {
              id: 'organize',
              options: {
                excludeByName: { [n]: true for n in std.set(['Time', '__name__'] + hide) },
                renameByName: columns,
                indexByName: { [order[i]]: i for i in std.range(0, std.length(order) - 1) },
              },
            },
          ]),

  // A field override: properties for the series whose display name matches `regex`.
  override(regex, properties):: {
    matcher: { id: 'byRegexp', options: regex },
    properties: [{ id: k, value: properties[k] } for k in std.objectFields(properties)],
  },

  // A row; `repeat` names a variable to repeat it (and the panels after it) for each value.
  row(title, repeat=''):: {
    type: 'row',
    title: title,
    collapsed: false,
    panels: [],
    gridPos: { w: 24, h: 1 },
    [if repeat != '' then 'repeat']: repeat,
  },

  // Template variables. The datasource variable follows the dashboard-linter convention.
  variables:: {
    datasource: {
      name: 'datasource',
      label: 'Data source',
      type: 'datasource',
      query: 'prometheus',
      current: { selected: false, text: 'default', value: 'default' },
      hide: 0,
      refresh: 1,
      regex: '',
      options: [],
    },

    // A multi-select query variable over label_values(); "All" means the regex `.+`.
    query(name, label, query, multi=true, hide=0):: {
      name: name,
      label: label,
      type: 'query',
      datasource: datasource,
      query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 },
      definition: query,
      refresh: 2,  // on time range change: new instances appear without a reload
      sort: 1,
      multi: multi,
      includeAll: multi,
      [if multi then 'allValue']: '.+',
      current: if multi then { selected: true, text: ['All'], value: ['$__all'] } else {},
      hide: hide,
      regex: '',
      options: [],
    },

    // `job` and `instance` as the dashboard-linter wants them: label 'Job'/'Instance',
    // multi-select, allValue '.+'. `selector` is the Prometheus bundle's job selector.
    job(metric, selector=''):: self.query(
      'job', 'Job', 'label_values(%s, job)' % (if selector == '' then metric else '%s{%s}' % [metric, selector])
    ),
    instance(metric):: self.query(
      'instance', 'Instance', 'label_values(%s{job=~"$job"}, instance)' % metric
    ),
  },

  // Lay out `items` (rows and panels with gridPos.w/h) in 24 columns and number them.
  layout(items)::
    local step(state, item) =
      if item.type == 'row' then
        local y = state.y + state.lineH;
        state {
          x: 0,
          y: y + 1,
          lineH: 0,
          out+: [item { gridPos: { x: 0, y: y, w: 24, h: 1 } }],
        }
      else
        local wraps = state.x + item.gridPos.w > 24;
        local x = if wraps then 0 else state.x;
        local y = if wraps then state.y + state.lineH else state.y;
        local lineH = if wraps then 0 else state.lineH;
        state {
          x: x + item.gridPos.w,
          y: y,
          lineH: std.max(lineH, item.gridPos.h),
          out+: [item { gridPos: { x: x, y: y, w: item.gridPos.w, h: item.gridPos.h } }],
        };
    local placed = std.foldl(step, items, { x: 0, y: 0, lineH: 0, out: [] }).out;
    [placed[i] { id: i + 1 } for i in std.range(0, std.length(placed) - 1)],

  dashboard(title, uid, description, variables, items, tags=[], links=[], time='now-1h',
            refresh='30s')::
    {
      uid: uid,
      title: title,
      description: description,
      tags: tags,
      editable: false,
      graphTooltip: 1,  // shared crosshair
      schemaVersion: 39,
      version: 1,
      time: { from: time, to: 'now' },
      timepicker: { refresh_intervals: ['30s', '1m', '5m', '15m', '1h'] },
      timezone: 'utc',
      refresh: refresh,
      fiscalYearStartMonth: 0,
      liveNow: false,
      weekStart: '',
      annotations: {
        list: [{
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        }],
      },
      links: links,
      templating: { list: variables },
      panels: $.layout(items),
    },
}
