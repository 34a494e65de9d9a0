// The compare view: the selected runs' curves overlaid per metric (epochs from GET /v1/jobs/compare, batches from
// each finished run's event stream while Redis holds it), a params × metrics table that marks what differs, and
// one parameter against one metric, a point per run. The charts in sight are drawn before the view is shown; the
// others, the table and the scatter under them when scrolled near or in idle time (lazy.js).

import { lineChart, runColor, scatterChart } from "./charts.js";
import { $, apiKey, BASE, call, esc, fmt, runLabel, shortId, showError } from "./common.js";
import { drawLazily } from "./lazy.js";

// Ids per compare request. The compare route takes up to 500 at once, but parts of 200 asked together came sooner:
// the browser reads and parses one part while the next arrives (500 runs in Chromium, bench/compare_dashboard.py:
// the answers' arrival 1.93 s against 2.29 s as one request, medians of 5 alternated rounds, loaded machine).
const IDS_PER_REQUEST = 200;
// Batch curves come from one event stream per run: read at most this many.
const BATCH_RUNS_MAX = 20;
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "pruned"]);

async function fetchComparison(ids) {
  const parts = [];
  for (let i = 0; i < ids.length; i += IDS_PER_REQUEST) parts.push(ids.slice(i, i + IDS_PER_REQUEST));
  const answers = await Promise.all(parts.map((part) => call("GET", `/v1/jobs/compare?ids=${part.join(",")}`)));
  if (answers.length === 1) return answers[0];
  const runs = answers.flatMap((a) => a.runs);
  const union = (key) => [...new Set(answers.flatMap((a) => a[key]))];
  // Across parts a parameter also differs when its values differ between them.
  const differing = new Set(union("differing_params"));
  for (const name of union("param_names")) {
    const values = new Set(runs.filter((r) => name in (r.params || {})).map((r) => JSON.stringify(r.params[name])));
    if (values.size > 1) differing.add(name);
  }
  return { runs, metric_names: union("metric_names"), param_names: union("param_names"), differing_params: [...differing] };
}

// A finished run's batch points per metric ({metric: [[x, y], ...]}, x = epoch + step/steps, the last attempt's),
// read from its event stream, which ends after the terminal event; {} once Redis no longer holds the stream.
async function batchPoints(runId) {
  const headers = { accept: "text/event-stream" };
  if (apiKey()) headers["x-api-key"] = apiKey();
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 15_000);
  try {
    const response = await fetch(`${BASE}/v1/jobs/${runId}/events`, { headers, signal: abort.signal });
    if (!response.ok || response.status === 204) return {};
    const points = {};
    for (const line of (await response.text()).split("\n")) {
      if (!line.startsWith("data: ")) continue;
      const event = JSON.parse(line.slice(6));
      if (event.type === "started") for (const key of Object.keys(points)) delete points[key];
      if (event.type !== "batch") continue;
      const d = event.data;
      const x = d.epoch + (d.steps ? d.step / d.steps : 0);
      for (const [metric, value] of Object.entries(d.logs || {})) (points[metric] ||= []).push([x, value]);
    }
    return points;
  } catch {
    return {};
  } finally {
    clearTimeout(timer);
  }
}

function epochPoints(run, metric) {
  return (run.history?.[metric] || []).map((value, epoch) => [epoch + 1, value]).filter(([, v]) => v !== null);
}

const metricValue = (run, metric, stat) => run.metrics?.[metric]?.[stat] ?? null;

// `embedded`: inside another view (a sweep's), without the way back to the job list.
export function compareView(view, ids, { embedded = false } = {}) {
  view.innerHTML = `
    <section class="compare" data-rendered="false">
      ${embedded ? "" : '<p><a href="#/">← all jobs</a></p>'}
      <div class="title-row"><h1>Compare <span id="run-count">${ids.length}</span> runs</h1>
        <label><input type="checkbox" id="batch-curves"> batch curves
          <span class="muted">(first ${BATCH_RUNS_MAX} finished runs, while their event streams are kept)</span></label></div>
      <ul id="run-legend" class="run-legend"></ul>
      <div id="compare-charts" class="charts"></div>
      <h2>Parameters and metrics</h2>
      <label><input type="checkbox" id="only-differing"> only the parameters that differ</label>
      <div class="table-scroll"><table id="compare-table" class="compare-table"><thead></thead><tbody></tbody></table></div>
      <h2>One parameter against one metric</h2>
      <div class="filters"><label>Parameter <select id="scatter-param"></select></label>
        <label>Metric <select id="scatter-metric"></select></label>
        <label><select id="scatter-stat"><option value="best">best</option><option value="final">final</option></select></label></div>
      <div id="scatter"></div>
    </section>`;
  const section = $("section.compare", view);
  const state = { data: null, charts: [], scatter: null, tableDrawn: false, batches: new Map(), stopped: false,
                  lazy: {}, pending: new Set(), fetched: 0 };
  // Resolved once the view is shown: the parts out of sight are drawn in idle time only after that.
  let markShown;
  const shown = new Promise((resolve) => { markShown = resolve; });

  // The parts still to draw (charts, table, scatter): once none is left after the view was shown, the section says
  // so in data-complete (and the first time, how long since the answers came: bench/compare_dashboard.py).
  function drawing(part) {
    state.pending.add(part);
    section.dataset.complete = "false";
  }
  function drawn(part) {
    state.pending.delete(part);
    completeIfDrawn();
  }
  function completeIfDrawn() {
    if (state.pending.size || section.dataset.rendered !== "true") return;
    section.dataset.completeMs ||= String(Math.round(performance.now() - state.fetched));
    section.dataset.complete = "true";
  }
  // Draws `part` (an element of the view) lazily with `draw`.
  function drawPart(name, element, draw) {
    state.lazy[name]?.stop();
    drawing(name);
    state.lazy[name] = drawLazily([element], draw, { idleAfter: shown, done: () => drawn(name) });
  }

  function destroyCharts() {
    state.lazy.charts?.stop();
    for (const chart of state.charts) chart.destroy();
    state.charts = [];
  }

  // A chart per metric, a curve per run: those in sight now, the others when scrolled near or in idle time.
  // Returns how many were drawn now.
  function drawCharts() {
    destroyCharts();
    drawing("charts");
    const { runs, metric_names: metrics } = state.data;
    const lastEpoch = Math.max(1, ...runs.map((run) => Math.max(0, ...Object.values(run.history || {}).map((v) => v.length))));
    const showBatches = $("#batch-curves", view).checked;
    // Many curves at once: whole-pixel lines and no dots draw about twice as fast (measured: 500 runs of 100
    // epochs, 25-40 ms a chart at width 1 against 60-130 ms at 1.5, in headless Chromium).
    const thin = runs.length > 30 ? { width: 1, dots: false } : {};
    // Every run's history is indexed by epoch (the compare route's alignment), so without batch curves the
    // charts' x values are the epochs 1..lastEpoch and each run's y values are its history as it came: no pairs
    // built and aligned again (for 500 runs x 20 metrics x 100 epochs that was 1M arrays and most of the time
    // before uPlot began).
    const epochs = Array.from({ length: lastEpoch }, (_, i) => i + 1);
    const padded = (values) => (!values ? epochs.map(() => null)
      : values.length === lastEpoch ? values : epochs.map((_, i) => values[i] ?? null));
    const box = $("#compare-charts", view);
    box.innerHTML = metrics.map((metric) => `<figure class="compare-chart" data-metric="${esc(metric)}">
      <figcaption>${esc(metric)}</figcaption><div class="plot" style="width:440px;height:220px"></div></figure>`).join("");
    const figures = [...box.querySelectorAll("figure.compare-chart")];

    function draw(figure) {
      const metric = figure.dataset.metric;
      const series = runs.map((run, i) => ({ label: runLabel(run), color: runColor(i), ...thin }));
      let data = null;
      if (showBatches) {
        series.forEach((s, i) => { s.points = epochPoints(runs[i], metric); });
        runs.forEach((run, i) => {
          const points = state.batches.get(run.id)?.[metric];
          if (points?.length) series.push({ label: `${runLabel(run)} (batches)`, color: runColor(i, 0.35), width: 1, points });
        });
      } else {
        data = [epochs, ...runs.map((run) => padded(run.history?.[metric]))];
      }
      // Epochs from 1, or from 0 under batch curves (which start there); a one-epoch comparison on 0..1.
      const xRange = [showBatches || lastEpoch === 1 ? 0 : 1, lastEpoch];
      const chart = lineChart($(".plot", figure), { series, data, xRange, legend: false, width: 440, height: 220 });
      figure.uplot = chart;  // the page's tests and benchmarks read the drawn series from here
      figure.dataset.series = String(series.length);
      state.charts.push(chart);
    }

    state.lazy.charts = drawLazily(figures, draw, { idleAfter: shown, done: () => drawn("charts") });
    return state.lazy.charts.inSight;
  }

  function drawTable() {
    state.tableDrawn = true;
    const { runs, param_names: params, metric_names: metrics, differing_params: differing } = state.data;
    const differs = new Set(differing);
    const onlyDiffering = $("#only-differing", view).checked;
    // What differs first, so that it is in sight without scrolling.
    const shown = [...params.filter((p) => differs.has(p)), ...params.filter((p) => !differs.has(p) && !onlyDiffering)];
    const best = new Map(metrics.map((metric) => {
      const values = runs.map((r) => metricValue(r, metric, "best")).filter((v) => v !== null);
      const goal = runs.find((r) => r.metrics?.[metric])?.metrics[metric].goal;
      return [metric, values.length ? (goal === "max" ? Math.max(...values) : Math.min(...values)) : null];
    }));
    $("#compare-table thead", view).innerHTML = `<tr><th>run</th><th>status</th>${shown.map((p) =>
      `<th class="param${differs.has(p) ? " differs" : ""}" data-param="${esc(p)}">${esc(p)}</th>`).join("")}${metrics.map((m) =>
      `<th class="metric" data-metric="${esc(m)}">${esc(m)} <span class="muted">best</span></th>`).join("")}</tr>`;
    $("#compare-table tbody", view).innerHTML = runs.map((run, i) => `<tr data-job-id="${esc(run.id)}">
      <td><span class="swatch" style="background:${runColor(i)}"></span><a href="#/jobs/${esc(run.id)}">${esc(runLabel(run))}</a></td>
      <td>${esc(run.status)}</td>${shown.map((p) =>
        `<td class="param${differs.has(p) ? " differs" : ""}" data-param="${esc(p)}">${esc(fmt(run.params?.[p]))}</td>`).join("")}${metrics.map((m) => {
        const value = metricValue(run, m, "best");
        const m_ = run.metrics?.[m];
        const title = m_ ? `final ${fmt(m_.final)} · best ${fmt(m_.best)} at epoch ${m_.best_epoch ?? "—"} (${m_.goal})` : "";
        return `<td class="metric${value !== null && value === best.get(m) ? " best-run" : ""}" title="${esc(title)}">${esc(fmt(value))}</td>`;
      }).join("")}</tr>`).join("");
  }

  function fillScatterChoices() {
    const { param_names: params, metric_names: metrics, differing_params: differing } = state.data;
    const paramChoice = differing[0] ?? params[0];
    const metricChoice = ["val_loss", "loss"].find((m) => metrics.includes(m)) ?? metrics[0];
    $("#scatter-param", view).innerHTML = params.map((p) => `<option${p === paramChoice ? " selected" : ""}>${esc(p)}</option>`).join("");
    $("#scatter-metric", view).innerHTML = metrics.map((m) => `<option${m === metricChoice ? " selected" : ""}>${esc(m)}</option>`).join("");
  }

  function drawScatter() {
    state.scatter?.destroy();
    state.scatter = null;
    const box = $("#scatter", view);
    box.innerHTML = "";
    const param = $("#scatter-param", view).value;
    const metric = $("#scatter-metric", view).value;
    const stat = $("#scatter-stat", view).value;
    if (!param || !metric) return;
    const points = state.data.runs.map((run, i) => ({ x: run.params?.[param] ?? null, y: metricValue(run, metric, stat),
                                                      label: runLabel(run), color: runColor(i) }));
    state.scatter = scatterChart(box, { points, xLabel: param, yLabel: `${metric} (${stat})` });
    box.uplot = state.scatter;
    box.dataset.points = String(state.scatter.runs.length);
  }

  async function loadBatches() {
    const finished = state.data.runs.filter((run) => TERMINAL.has(run.status)).slice(0, BATCH_RUNS_MAX);
    const missing = finished.filter((run) => !state.batches.has(run.id));
    const found = await Promise.all(missing.map((run) => batchPoints(run.id)));
    missing.forEach((run, i) => state.batches.set(run.id, found[i]));
  }

  async function load() {
    const started = performance.now();
    try {
      state.data = await fetchComparison(ids);
      if (state.stopped) return;
      const fetched = (state.fetched = performance.now());
      $("#run-count", view).textContent = String(state.data.runs.length);
      $("#run-legend", view).innerHTML = state.data.runs.map((run, i) => `<li data-job-id="${esc(run.id)}">
        <span class="swatch" style="background:${runColor(i)}"></span>${esc(runLabel(run))}
        <code class="muted">${esc(shortId(run.id))}</code></li>`).join("");
      const drawnNow = drawCharts();
      // Under the charts, out of sight with many runs: 500 runs are a table of 14,000 cells and a scatter of 500
      // series. Drawn as the charts out of sight are, unless a choice of the user's drew them first.
      fillScatterChoices();
      drawPart("table", $(".table-scroll", view), () => state.tableDrawn || drawTable());
      drawPart("scatter", $("#scatter", view), () => state.scatter || drawScatter());
      // uPlot draws in a microtask after each chart is made, the browser paints at the next frame: wait for both.
      await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
      if (state.stopped) return;
      // How long the answer took to come and the view to be shown, with the charts in sight drawn, and how many
      // those were (bench/compare_dashboard.py reads them).
      section.dataset.fetchMs = String(Math.round(fetched - started));
      section.dataset.drawMs = String(Math.round(performance.now() - fetched));
      section.dataset.chartsInSight = String(drawnNow);
      section.dataset.rendered = "true";
      markShown();
      completeIfDrawn();  // every part was in sight
    } catch (error) {
      showError(error);
    }
  }

  $("#batch-curves", view).addEventListener("change", async (event) => {
    if (event.target.checked) await loadBatches();
    if (!state.stopped && state.data) drawCharts();
  });
  $("#only-differing", view).addEventListener("change", () => state.data && drawTable());
  for (const id of ["#scatter-param", "#scatter-metric", "#scatter-stat"]) {
    $(id, view).addEventListener("change", () => state.data && drawScatter());
  }
  load();
  return () => {
    state.stopped = true;
    for (const lazy of Object.values(state.lazy)) lazy.stop();
    destroyCharts();
    state.scatter?.destroy();
  };
}
