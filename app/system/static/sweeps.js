// Sweeps: the list (GET /v1/sweeps) and one sweep (GET /v1/sweeps/{id}): its trials sortable by objective, the
// objective of each trial with the best so far, and its trials in the compare view (compare.js).

import { lineChart } from "./charts.js";
import { $, call, esc, fmt, shortId, showError, statusBadge, when } from "./common.js";
import { compareView } from "./compare.js";

// A running sweep is read again this often (its trials change at the pace of epochs).
const REFRESH_MS = 2000;

export function sweepListView(view) {
  view.innerHTML = `
    <section class="sweeps">
      <div class="title-row"><h1>Sweeps</h1></div>
      <table id="sweeps" class="jobs"><thead><tr><th>id</th><th>name</th><th>status</th><th>algorithm</th>
        <th>objective</th><th>trials</th><th>created</th><th>finished</th></tr></thead><tbody></tbody></table>
      <p id="sweeps-empty" class="muted" hidden>No sweeps yet: start one with <code>POST /v1/sweeps</code>
        (see the <a href="docs#/sweeps">API docs</a>).</p>
    </section>`;
  let stopped = false;
  (async () => {
    try {
      const page = await call("GET", "/v1/sweeps?limit=200");
      if (stopped) return;
      $("#sweeps tbody", view).innerHTML = page.items.map((s) => `<tr data-sweep-id="${esc(s.id)}">
        <td><a href="#/sweeps/${esc(s.id)}"><code>${esc(shortId(s.id))}</code></a></td><td class="name">${esc(s.name ?? "")}</td>
        <td>${statusBadge(s.status)}</td><td>${esc(s.algorithm)}</td>
        <td>${esc(s.objective.metric)} <span class="muted">(${esc(s.objective.direction)})</span></td>
        <td>${esc(s.trials_created)}</td><td>${esc(when(s.created_at))}</td><td>${esc(when(s.finished_at))}</td></tr>`).join("");
      $("#sweeps-empty", view).hidden = page.items.length > 0;
      $("#sweeps", view).dataset.loaded = "true";
    } catch (error) {
      showError(error);
    }
  })();
  return () => { stopped = true; };
}

// The trials in the order of their numbers with, for each, the best objective of the trials up to it.
export function bestSoFar(trials, direction) {
  const better = direction === "maximize" ? (a, b) => a > b : (a, b) => a < b;
  let best = null;
  return [...trials].sort((a, b) => a.number - b.number).map((trial) => {
    if (trial.objective !== null && (best === null || better(trial.objective, best))) best = trial.objective;
    return { number: trial.number, objective: trial.objective, best };
  });
}

export function sweepView(view, sweepId) {
  view.innerHTML = `
    <section class="sweep" data-sweep-id="${esc(sweepId)}" data-loaded="false">
      <p><a href="#/sweeps">← all sweeps</a></p>
      <div class="title-row"><h1>Sweep <span id="sweep-name"></span> <code>${esc(shortId(sweepId))}</code></h1>
        <span id="sweep-status"></span></div>
      <dl id="sweep-facts" class="facts"></dl>
      <h2>Trials</h2>
      <table id="trials" class="jobs"><thead></thead><tbody></tbody></table>
      <h2>Objective by trial, and the best so far</h2>
      <div id="best-so-far" class="charts"></div>
      <h2>The trials compared</h2>
      <div id="sweep-compare"></div>
    </section>`;
  const section = $("section.sweep", view);
  // Objective ascending for a sweep that minimizes, descending for one that maximizes: the best first.
  const state = { sweep: null, sort: null, chart: null, timer: null, stopped: false, compared: "", leaveCompare: null };

  function sortedTrials() {
    const trials = [...state.sweep.trials];
    const { key, descending } = state.sort;
    const value = (t) => (key === "objective" ? t.objective : t.number);
    trials.sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      if (x === null || y === null) return (x === null) - (y === null);  // no objective yet: last either way
      return descending ? y - x : x - y;
    });
    return trials;
  }

  function drawTrials() {
    const sweep = state.sweep;
    const params = [...new Set(sweep.trials.flatMap((t) => Object.keys(t.params || {})))].sort();
    const arrow = (key) => (state.sort.key === key ? (state.sort.descending ? " ▼" : " ▲") : "");
    $("#trials thead", view).innerHTML = `<tr><th class="sortable" data-sort="number">trial${arrow("number")}</th>
      <th>job</th><th>status</th>${params.map((p) => `<th class="param" data-param="${esc(p)}">${esc(p)}</th>`).join("")}
      <th class="sortable" data-sort="objective">${esc(sweep.objective.metric)}${arrow("objective")}</th><th>note</th></tr>`;
    $("#trials tbody", view).innerHTML = sortedTrials().map((t) => `<tr data-trial="${esc(t.number)}" data-job-id="${esc(t.job_id)}"
      ${sweep.best && sweep.best.number === t.number ? ' class="best-trial"' : ""}>
      <td>${esc(t.number)}</td><td><a href="#/jobs/${esc(t.job_id)}"><code>${esc(shortId(t.job_id))}</code></a></td>
      <td>${statusBadge(t.status)}</td>${params.map((p) => `<td class="param" data-param="${esc(p)}">${esc(fmt(t.params?.[p]))}</td>`).join("")}
      <td class="objective" data-objective="${esc(t.objective ?? "")}">${esc(fmt(t.objective))}</td>
      <td class="muted">${esc(t.note ?? "")}</td></tr>`).join("");
  }

  function drawBestSoFar() {
    const sweep = state.sweep;
    const steps = bestSoFar(sweep.trials, sweep.objective.direction);
    const box = $("#best-so-far", view);
    state.chart?.destroy();
    box.innerHTML = `<figure><figcaption>${esc(sweep.objective.metric)} (${esc(sweep.objective.direction)})</figcaption>
      <div class="chart"></div></figure>`;
    const last = Math.max(1, steps.length - 1);
    state.chart = lineChart($(".chart", box), {
      xLabel: "trial", xRange: [0, last], width: 620, height: 260,
      series: [
        { label: "objective", color: "#9db7e0", dots: true, line: false,
          points: steps.filter((s) => s.objective !== null).map((s) => [s.number, s.objective]) },
        { label: "best so far", color: "#1f5fbf", width: 2,
          points: steps.filter((s) => s.best !== null).map((s) => [s.number, s.best]) },
      ],
    });
    box.uplot = state.chart;  // the page's tests read the drawn series from here
  }

  // The trials' jobs in the compare view, drawn again when the set of trials or their statuses change.
  function drawCompare() {
    const trials = [...state.sweep.trials].sort((a, b) => a.number - b.number);
    const key = trials.map((t) => `${t.job_id}:${t.status}`).join(",");
    if (key === state.compared || !trials.length) return;
    state.compared = key;
    state.leaveCompare?.();
    state.leaveCompare = compareView($("#sweep-compare", view), trials.map((t) => t.job_id), { embedded: true });
  }

  function show(sweep) {
    state.sweep = sweep;
    state.sort ??= { key: "objective", descending: sweep.objective.direction === "maximize" };
    $("#sweep-name", view).textContent = sweep.name ?? "";
    $("#sweep-status", view).innerHTML = statusBadge(sweep.status);
    const counts = Object.entries(sweep.counts).map(([s, n]) => `${esc(n)} ${esc(s)}`).join(", ") || "—";
    const best = sweep.best
      ? `trial ${esc(sweep.best.number)}: ${esc(fmt(sweep.best.objective))} (<a href="#/jobs/${esc(sweep.best.job_id)}">job
         <code>${esc(shortId(sweep.best.job_id))}</code></a>)` : "—";
    const facts = [
      ["objective", `${esc(sweep.objective.metric)} (${esc(sweep.objective.direction)})`],
      ["algorithm", esc(sweep.algorithm)],
      ["trials", `${esc(sweep.trials_created)} of ${esc(sweep.budget.max_trials)}, at most ${esc(sweep.budget.max_concurrent)} at once`],
      ["by status", counts], ["best so far", best],
      ["created", esc(when(sweep.created_at))], ["finished", esc(when(sweep.finished_at))],
    ];
    $("#sweep-facts", view).innerHTML = facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
    drawTrials();
    drawBestSoFar();
    drawCompare();
    section.dataset.loaded = "true";
  }

  async function load() {
    try {
      const sweep = await call("GET", `/v1/sweeps/${sweepId}`);
      if (state.stopped) return;
      show(sweep);
      if (sweep.status === "running" || sweep.trials.some((t) => t.objective === null && !t.note)) {
        state.timer = setTimeout(load, REFRESH_MS);
      }
    } catch (error) {
      showError(error);
    }
  }

  $("#trials thead", view).addEventListener("click", (event) => {
    const header = event.target.closest("th[data-sort]");
    if (!header || !state.sweep) return;
    const key = header.dataset.sort;
    state.sort = state.sort.key === key ? { key, descending: !state.sort.descending } : { key, descending: false };
    drawTrials();
  });
  load();
  return () => {
    state.stopped = true;
    clearTimeout(state.timer);
    state.chart?.destroy();
    state.leaveCompare?.();
  };
}
