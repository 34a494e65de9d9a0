// Charts of the dashboard, drawn by uPlot (vendor/uPlot.iife.min.js, MIT licence beside it; index.html loads it as
// a plain script, so it is `window.uPlot` here). uPlot draws on a canvas, picks readable ticks and lays the legend
// out under the plot, never over the curves.

const uPlot = window.uPlot;

// Colours for many runs: hues a golden angle apart, so neighbours in the list never look alike.
export function runColor(index, alpha = 1) {
  return `hsl(${Math.round((index * 137.508) % 360)} 70% 40%${alpha === 1 ? "" : ` / ${alpha}`})`;
}

// uPlot wants every series on one x array: the union of the series' x values, each series' y there or null.
export function align(pointLists) {
  const xs = new Set();
  for (const points of pointLists) for (const [x] of points) xs.add(x);
  const x = Float64Array.from(xs).sort();
  const at = new Map();
  x.forEach((value, i) => at.set(value, i));
  const ys = pointLists.map((points) => {
    const y = new Array(x.length).fill(null);
    for (const [px, py] of points) y[at.get(px)] = py;
    return y;
  });
  return [Array.from(x), ...ys];
}

function seriesOption(s) {
  const option = { label: s.label, stroke: s.color, width: s.width ?? 1.5, spanGaps: true, class: s.cls };
  if (s.dash) option.dash = s.dash;
  if (s.dots !== undefined) option.points = { show: s.dots, size: 5, fill: s.color };
  if (s.line === false) option.paths = () => null;  // its points only
  return option;
}

// A line chart of `series` ([{label, color, points: [[x, y], ...], dots?, line?, width?, dash?, cls?}]), or of `data` already
// in uPlot's shape ([xs, ys of each series]) with `series` giving only their looks. `xRange` fixes the
// x axis (an epoch axis from 0 to the epochs asked, so one epoch is a point at 1 on 0..1, not a dot in the middle of
// a range uPlot pads around a single value); it grows if the data go past it.
export function lineChart(container, { series, data = null, xLabel = "epoch", xRange = null, width = 460, height = 240,
                                        legend = true }) {
  const options = {
    width, height,
    legend: { show: legend },
    cursor: { drag: { x: true, y: false }, points: { size: 6, show: series.length <= 30 } },
    scales: { x: { time: false, range: (u, min, max) => {
      if (!u.xRange) return [min, max];
      const xs = u.data[0];
      return [Math.min(u.xRange[0], xs[0] ?? u.xRange[0]), Math.max(u.xRange[1], xs[xs.length - 1] ?? u.xRange[1])];
    } } },
    axes: [{ label: xLabel, labelSize: 18, size: 34 }, { size: 58 }],
    series: [{ label: xLabel }, ...series.map(seriesOption)],
    // Read by the x range above: set before the first scaling, and again before each setData.
    hooks: { init: [(u) => { u.xRange = xRange; }] },
  };
  const chart = new uPlot(options, data ?? align(series.map((s) => s.points)), container);
  chart.keys = series.map((s) => s.label).join("\u0000");
  return chart;
}

// The same chart with new points (and x range), or a new chart when its series changed.
export function updateLineChart(chart, container, spec) {
  if (chart && chart.keys === spec.series.map((s) => s.label).join("\u0000")) {
    chart.xRange = spec.xRange ?? null;
    chart.setData(align(spec.series.map((s) => s.points)));
    return chart;
  }
  chart?.destroy();
  return lineChart(container, spec);
}

// One point per run: a parameter (numbers, or categories such as optimizer names) against a metric. `points` are
// [{x, y, label, color}]. Each run is a series of its own (uPlot's x values must be distinct and sorted, and runs
// share parameter values), coloured as in the run legend; the chart's legend names them when there are few.
export function scatterChart(container, { points, xLabel, yLabel, width = 620, height = 300 }) {
  const shown = points.filter((p) => p.y !== null && p.y !== undefined && p.x !== null && p.x !== undefined);
  const numeric = shown.every((p) => typeof p.x === "number");
  const categories = numeric ? null : [...new Set(shown.map((p) => String(p.x)))].sort();
  const xOf = (p) => (numeric ? p.x : categories.indexOf(String(p.x)));
  const data = align(shown.map((p) => [[xOf(p), p.y]]));
  const xs = data[0];
  // A parameter spread over orders of magnitude (learning rates) reads on a log axis.
  const logX = numeric && xs.length > 1 && xs[0] > 0 && xs[xs.length - 1] / xs[0] >= 100;
  const xScale = { time: false };
  if (logX) Object.assign(xScale, { distr: 3, log: 10 });
  if (categories) xScale.range = () => [-0.5, categories.length - 0.5];
  else if (xs.length === 1) xScale.range = () => [xs[0] - Math.abs(xs[0] || 1) / 2, xs[0] + Math.abs(xs[0] || 1) / 2];
  // A margin, so that the points at either end are drawn whole.
  else if (!logX) xScale.range = (_u, min, max) => [min - (max - min) * 0.05, max + (max - min) * 0.05];
  const xAxis = { label: xLabel, labelSize: 18, size: 34 };
  if (categories) {
    xAxis.splits = () => categories.map((_, i) => i);
    xAxis.values = (_u, splits) => splits.map((i) => categories[i] ?? "");
  }
  const options = {
    width, height,
    legend: { show: shown.length <= 12 },
    cursor: { points: { size: 10 } },
    scales: { x: xScale },
    axes: [xAxis, { label: yLabel, labelSize: 18, size: 58 }],
    series: [{ label: xLabel, value: (_u, v) => (v == null ? "—" : categories ? categories[v] : String(v)) },
      ...shown.map((p) => ({ label: p.label, stroke: p.color, paths: () => null,
                             points: { show: true, size: 8, fill: p.color, stroke: p.color } }))],
  };
  const chart = new uPlot(options, data, container);
  chart.runs = shown.map((p) => p.label);
  return chart;
}
