// fmt(template, values): `template % values` for the `%s` and `%(key)s` templates the bundle
// uses. The C++ Jsonnet evaluates `%` (std.format) in Jsonnet, character by character: about
// 10 ms a call, and a build makes hundreds. Any other template (`%d`, `%.2f`, `%%`, ...) goes
// to std.format, so the result is always that of `%`.
local allTrue(xs) = std.length([x for x in xs if !x]) == 0;
local round(x) = std.floor(x + 0.5);
local rest(piece, from) = std.substr(piece, from, std.length(piece) - from);

// The pieces after each '%', as [argument, text after it], or null if one is not plain.
local positional(pieces, args) =
  if std.length(pieces) == std.length(args) && allTrue([std.startsWith(p, 's') for p in pieces])
  then [std.toString(args[i]) + rest(pieces[i], 1) for i in std.range(0, std.length(args) - 1)]
  else null;

local named(pieces, values) =
  local parts = [std.splitLimit(p, ')', 1) for p in pieces];
  if allTrue([std.length(kv) == 2 && std.startsWith(kv[0], '(') && std.startsWith(kv[1], 's')
              && std.objectHasAll(values, rest(kv[0], 1)) for kv in parts])
  then [std.toString(values[rest(kv[0], 1)]) + rest(kv[1], 1) for kv in parts]
  else null;

// x as '%.15g' writes it, for numbers written in at most 15 significant digits.
local decimal(x) =
  local magnitude = std.abs(x);
  local scales = [k for k in std.range(1, 15) if round(magnitude * std.pow(10, k)) / std.pow(10, k) == magnitude];
  if std.length(scales) == 0 then null
  else
    local digits = std.toString(round(magnitude * std.pow(10, scales[0])));
    local padded = std.join('', ['0' for _ in std.range(1, scales[0] + 1 - std.length(digits))]) + digits;
    local point = std.length(padded) - scales[0];
    (if x < 0 then '-' else '') + std.substr(padded, 0, point) + '.' + rest(padded, point);

{
  fmt(template, values)::
    local pieces = std.split(template, '%');
    local filled =
      if std.length(pieces) == 1 then []
      else if std.isObject(values) then named(pieces[1:], values)
      else positional(pieces[1:], if std.isArray(values) then values else [values]);
    if filled == null then std.format(template, values) else pieces[0] + std.join('', filled),

  // A number as PromQL and people write it: 0.8, not 0.80000000000000004 ('%.15g').
  num(x)::
    local magnitude = std.abs(x);
    local fast =
      if magnitude >= 1e15 || (magnitude < 1e-4 && x != 0) then null
      else if x == std.floor(x) then std.toString(x)
      else decimal(x);
    if fast == null then '%.15g' % x else fast,
}
