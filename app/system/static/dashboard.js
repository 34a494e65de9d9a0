// The kerasd dashboard: the job list (filters, chosen columns, sorting, runs selected to compare), a form that starts
// the tutorial's §3.2 job (new_job.js), a job view fed by the job's Server-Sent Events (live curves, epochs,
// artifacts, cancel), the compare view (compare.js), sweeps (sweeps.js) and the model registry (registry.js). Plain
// JavaScript modules, no build step; charts by uPlot.

import { updateLineChart } from "./charts.js";
import { BASE, KEY_STORE, $, ApiError, apiKey, call, esc, fmt, shortId, showError, statusBadge, when } from "./common.js";
import { compareView } from "./compare.js";
import { jobsQuery, JobsTable } from "./jobs_table.js";
import { newJobView } from "./new_job.js";
import { registeredModelView, registryListView, versionView } from "./registry.js";
import { sweepListView, sweepView } from "./sweeps.js";

// As app/core/statuses.py and app/core/events.py define them.
const EVENT_TYPES = ["queued", "started", "batch", "epoch", "checkpoint", "log", "finished", "failed", "cancelled",
                     "pruned"];
const TERMINAL_EVENTS = new Set(["finished", "failed", "cancelled", "pruned"]);
const TERMINAL_STATUSES = new Set(["succeeded", "failed", "cancelled", "pruned"]);
const COLORS = { batch: "#9db7e0", train: "#1f5fbf", val: "#d9661f" };

const modelNames = new Map();
async function modelName(modelId) {
  if (!modelNames.has(modelId)) {
    modelNames.set(modelId, call("GET", `/v1/models/${modelId}`).then((m) => m.name).catch(() => shortId(modelId)));
  }
  return modelNames.get(modelId);
}

function epochsAsked(job) {
  const submitted = job.request || {};
  return submitted.fit?.epochs ?? submitted.epochs ?? null;
}

// ---------------------------------------------------------------------------------------------------
// The job list

function jobListView(view) {
  view.innerHTML = `
    <section>
      <div class="title-row"><h1>Jobs</h1><a class="button" href="#/new" id="new-job-link">New job…</a>
        <button type="button" id="compare-selected" disabled>Compare selected</button>
        <button type="button" id="clear-selection" class="quiet" hidden>Clear selection</button></div>
      <div class="filters">
        <label>Status <select id="status-filter">
          <option value="">all</option><option>queued</option><option>running</option>
          <option>succeeded</option><option>failed</option><option>cancelled</option><option>pruned</option>
        </select></label>
        <label>Name <input id="name-filter" type="search" placeholder="starts with…" size="16"></label>
        <label>Tags <input id="tag-filter" type="search" placeholder="tag, another" size="16"></label>
        <label>Show <select id="limit-filter"><option>50</option><option selected>100</option><option>500</option>
          </select></label>
        <details id="column-choices"><summary>Columns</summary><div class="choices"></div></details>
      </div>
      <table class="jobs" id="jobs"><thead></thead><tbody></tbody></table>
      <p id="jobs-empty" class="muted" hidden>No jobs yet: start one from <a href="#/new">New job</a>.</p>
    </section>`;
  const table = new JobsTable();
  let timer = null;
  let stopped = false;
  let shown = [];
  let typing = null;
  $("#status-filter", view).addEventListener("change", () => refresh());
  $("#limit-filter", view).addEventListener("change", () => refresh());
  for (const input of ["#name-filter", "#tag-filter"]) {
    $(input, view).addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(refresh, 300);
    });
  }
  $("#jobs thead", view).addEventListener("click", (event) => {
    const header = event.target.closest("th[data-sort]");
    if (!header) return;
    table.toggleSort(header.dataset.sort);
    refresh();
  });
  $("#jobs", view).addEventListener("change", (event) => {
    const box = event.target;
    if (box.id === "select-all") shown.forEach((id) => (box.checked ? table.selected.add(id) : table.selected.delete(id)));
    else if (box.classList.contains("select-job")) box.checked ? table.selected.add(box.value) : table.selected.delete(box.value);
    else return;
    showSelection();
    for (const row of view.querySelectorAll("#jobs tbody tr")) {
      const on = table.selected.has(row.dataset.jobId);
      row.classList.toggle("selected", on);
      row.querySelector(".select-job").checked = on;
    }
  });
  $("#column-choices", view).addEventListener("change", (event) => {
    const box = event.target.closest("input[data-column-kind]");
    if (!box) return;
    table.toggleColumn(box.dataset.columnKind, box.value, box.checked);
    refresh();
  });
  $("#compare-selected", view).addEventListener("click", () => {
    location.hash = `#/compare?ids=${[...table.selected].join(",")}`;
  });
  $("#clear-selection", view).addEventListener("click", () => {
    table.selected.clear();
    showSelection();
    refresh();
  });

  function showSelection() {
    const count = table.selected.size;
    const button = $("#compare-selected", view);
    button.disabled = count === 0;
    button.textContent = count ? `Compare selected (${count})` : "Compare selected";
    $("#clear-selection", view).hidden = count === 0;
  }

  async function progressOf(job) {
    if (job.status === "succeeded") return { value: 1, text: "done" };
    if (job.status !== "running") return null;
    const detail = await call("GET", `/v1/jobs/${job.id}`);
    const total = epochsAsked(detail);
    const done = (detail.epochs || []).length;
    return total ? { value: done / total, text: `epoch ${done}/${total}` } : { value: null, text: "running" };
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const tags = $("#tag-filter", view).value.split(",").map((t) => t.trim()).filter(Boolean);
      const page = await call("GET", jobsQuery({ limit: $("#limit-filter", view).value, status: $("#status-filter", view).value,
                                                 name: $("#name-filter", view).value.trim(), tags, sort: table.sort }));
      const rows = await Promise.all(page.items.map(async (job) => {
        const [name, progress] = await Promise.all([modelName(job.model_id), progressOf(job).catch(() => null)]);
        const bar = progress
          ? `<progress max="1" ${progress.value === null ? "" : `value="${progress.value}"`}></progress> ${esc(progress.text)}`
          : "";
        return [job, name, bar];
      }));
      if (stopped) return;
      if (table.learn(page.items)) $("#column-choices .choices", view).innerHTML = table.choicesHtml();
      shown = page.items.map((job) => job.id);
      $("#jobs thead", view).innerHTML = table.headerHtml(shown);
      $("#jobs tbody", view).innerHTML = rows.map(([job, name, bar]) => table.rowHtml(job, name, bar)).join("");
      $("#jobs-empty", view).hidden = rows.length > 0;
    } catch (error) {
      showError(error);
    }
    if (!stopped) timer = setTimeout(refresh, 2000);
  }
  $("#column-choices .choices", view).innerHTML = table.choicesHtml();
  showSelection();
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(typing);
  };
}

// ---------------------------------------------------------------------------------------------------
// One job, live

function jobView(view, jobId) {
  view.innerHTML = `
    <section class="job" data-job-id="${esc(jobId)}">
      <p><a href="#/">← all jobs</a></p>
      <div class="title-row"><h1>Job <code>${esc(shortId(jobId))}</code></h1>
        <span id="job-status">${statusBadge("…")}</span>
        <button id="cancel-job" hidden>Cancel</button><button id="retry-job" hidden>Retry</button></div>
      <dl id="job-facts" class="facts"></dl>
      <div id="job-error" class="error" hidden></div>
      <div class="progress-line"><progress id="epoch-progress" max="1" value="0"></progress>
        <span id="progress-text" class="muted">waiting for events…</span></div>
      <div id="charts" class="charts"></div>
      <h2>Epochs</h2>
      <table id="epochs" class="epochs"><thead></thead><tbody></tbody></table>
      <h2>Artifacts</h2>
      <ul id="artifacts"><li class="muted">none yet</li></ul>
      <h2>Events</h2>
      <ol id="event-log" class="event-log" reversed></ol>
    </section>`;
  const state = {
    job: null, attempt: null, lastEventId: null, batches: [], epochs: new Map(), epochsTotal: null,
    lastBatch: null, ended: false, source: null, renderTimer: null, pollTimer: null, stopped: false,
    charts: new Map(),
  };

  function scheduleRender() {
    if (state.renderTimer === null) state.renderTimer = setTimeout(render, 150);
  }

  // One chart per metric, kept and fed new points: batches (light), epochs and validation epochs. The x axis runs
  // from 0 to the epochs asked, so a one-epoch job is its batch curve and a point at 1.
  function drawChart(metric, epochs, total) {
    let entry = state.charts.get(metric);
    if (!entry) {
      const figure = document.createElement("figure");
      figure.innerHTML = `<figcaption>${esc(metric)}</figcaption><div class="chart" data-metric="${esc(metric)}"></div>`;
      entry = { figure, body: $(".chart", figure), chart: null };
      state.charts.set(metric, entry);
    }
    $("#charts", view).append(entry.figure);
    const series = [
      { cls: "series-batch", label: `${metric} (batches)`, color: COLORS.batch, width: 1,
        points: state.batches.filter((b) => b.logs[metric] != null).map((b) => [b.x, b.logs[metric]]) },
      { cls: "series-train", label: metric, color: COLORS.train, dots: true, width: 2,
        points: epochs.filter(([, l]) => l[metric] != null).map(([e, l]) => [e + 1, l[metric]]) },
      { cls: "series-val", label: `val_${metric}`, color: COLORS.val, dots: true, width: 2,
        points: epochs.filter(([, l]) => l[`val_${metric}`] != null).map(([e, l]) => [e + 1, l[`val_${metric}`]]) },
    ];
    entry.chart = updateLineChart(entry.chart, entry.body, { series, xRange: total ? [0, total] : null });
    entry.body.dataset.points = String(series.reduce((sum, s) => sum + s.points.length, 0));
    for (const s of series) {
      entry.body.querySelectorAll(`.${s.cls}`).forEach((element) => (element.dataset.points = String(s.points.length)));
    }
  }

  function render() {
    state.renderTimer = null;
    if (state.stopped) return;
    const metrics = new Set();
    for (const batch of state.batches) Object.keys(batch.logs).forEach((key) => metrics.add(key));
    for (const logs of state.epochs.values()) Object.keys(logs).forEach((key) => metrics.add(key.replace(/^val_/, "")));
    const epochs = [...state.epochs.entries()].sort((a, b) => a[0] - b[0]);
    const ordered = [...metrics].sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a.localeCompare(b)));
    const total = state.epochsTotal ?? (state.job && epochsAsked(state.job));
    for (const metric of ordered) drawChart(metric, epochs, total);

    const keys = [...new Set(epochs.flatMap(([, logs]) => Object.keys(logs)))]
      .sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a.localeCompare(b)));
    $("#epochs thead", view).innerHTML = `<tr><th>epoch</th>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}</tr>`;
    $("#epochs tbody", view).innerHTML = epochs.map(([epoch, logs]) =>
      `<tr><td>${epoch + 1}</td>${keys.map((k) => `<td>${esc(fmt(logs[k]))}</td>`).join("")}</tr>`).join("");

    const done = state.epochs.size;
    const bar = $("#epoch-progress", view);
    if (total) bar.value = Math.min(1, done / total);
    if (state.job?.status === "succeeded") bar.value = 1;
    const parts = [];
    if (total) parts.push(`epoch ${done}/${total}`);
    const last = state.lastBatch;
    if (last && !state.ended) {
      parts.push(`step ${last.step}/${last.steps ?? "?"} of epoch ${last.epoch + 1}`);
      if (last.samples_per_s) parts.push(`${Math.round(last.samples_per_s).toLocaleString()} samples/s`);
      else if (last.steps_per_s) parts.push(`${fmt(last.steps_per_s, 3)} steps/s`);
      if (last.eta_s != null) parts.push(`epoch ETA ${fmt(last.eta_s, 2)} s`);
    }
    $("#progress-text", view).textContent = parts.join(" · ") || (state.ended ? "" : "waiting for events…");
  }

  function showJob(job) {
    state.job = job;
    const cancelling = job.cancel_requested_at && !TERMINAL_STATUSES.has(job.status);
    $("#job-status", view).innerHTML = statusBadge(job.status, cancelling ? " (cancelling…)" : "");
    $("#cancel-job", view).hidden = TERMINAL_STATUSES.has(job.status) || Boolean(cancelling);
    $("#retry-job", view).hidden = !(job.status === "failed" || job.status === "cancelled");
    const facts = [
      ["kind", job.sweep_id ? `${esc(job.kind)}, a trial of <a id="job-sweep" href="#/sweeps/${esc(job.sweep_id)}">sweep
        <code>${esc(shortId(job.sweep_id))}</code></a>` : esc(job.kind)],
      ["model", `<span id="model-name"></span> <code>${esc(job.model_id)}</code>`],
      ["attempt", `${esc(job.attempt)} of ${esc(job.max_attempts)}`],
      ["queue position", job.queue_position == null ? "—" : esc(job.queue_position)],
      ["created", esc(when(job.created_at))], ["started", esc(when(job.started_at))],
      ["finished", esc(when(job.finished_at))],
    ];
    $("#job-facts", view).innerHTML = facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
    modelName(job.model_id).then((name) => { const el = $("#model-name", view); if (el) el.textContent = name; });
    const error = $("#job-error", view);
    error.hidden = !job.error;
    if (job.error) error.textContent = `${job.error.type}: ${job.error.message}`;
    // Epochs that SQL has and the stream may not (an expired stream): the table stays complete.
    for (const row of job.epochs || []) {
      if (!state.epochs.has(row.epoch)) {
        const { epoch, ...logs } = row;
        state.epochs.set(epoch, logs);
      }
    }
    scheduleRender();
  }

  async function refreshJob() {
    try {
      showJob(await call("GET", `/v1/jobs/${jobId}`));
      if (TERMINAL_STATUSES.has(state.job.status)) await showArtifacts();
    } catch (error) {
      showError(error);
    }
  }

  async function showArtifacts() {
    const artifacts = await call("GET", `/v1/jobs/${jobId}/artifacts`);
    $("#artifacts", view).innerHTML = artifacts.length
      ? artifacts.map((a) => `<li><a href="${esc(BASE + a.url)}" download="${esc(a.name)}" data-artifact>${esc(a.name)}</a>
          <span class="muted">${(a.size_bytes / 1024).toFixed(1)} KiB · ${esc(a.media_type)}</span></li>`).join("")
      : `<li class="muted">none</li>`;
  }

  function logEvent(event) {
    const list = $("#event-log", view);
    const summary = event.type === "batch"
      ? `epoch ${event.data.epoch + 1} step ${event.data.step}/${event.data.steps ?? "?"} loss ${fmt(event.data.logs?.loss)}`
      : event.type === "epoch" ? `epoch ${event.data.epoch + 1}/${event.data.epochs ?? "?"} ` +
        Object.entries(event.data.logs || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")
      : event.type === "log" ? `${event.data.level}: ${event.data.message}`
      : event.data?.error ? `${event.data.error.type}: ${event.data.error.message}` : "";
    const item = document.createElement("li");
    item.className = `event event-${event.type}`;
    item.innerHTML = `<code>${esc(event.ts?.slice(11, 23) ?? "")}</code> <b>${esc(event.type)}</b> ${esc(summary)}`;
    list.prepend(item);
    while (list.children.length > 200) list.lastChild.remove();
  }

  function onEvent(event) {
    if (state.stopped) return;
    if (event.id) state.lastEventId = event.id;
    if (event.type === "started" && state.attempt !== null && event.attempt !== state.attempt) {
      // A new attempt (a retry) starts over: its curves replace the last attempt's.
      state.batches = [];
      state.epochs.clear();
    }
    if (event.type === "started") state.attempt = event.attempt;
    if (event.type === "queued") state.ended = false;
    if (event.type === "batch") {
      const d = event.data;
      state.lastBatch = d;
      state.batches.push({ x: d.epoch + (d.steps ? d.step / d.steps : 0), logs: d.logs || {} });
    } else if (event.type === "epoch") {
      state.epochs.set(event.data.epoch, event.data.logs || {});
      if (event.data.epochs) state.epochsTotal = event.data.epochs;
    }
    if (event.type !== "batch" || state.batches.length % 10 === 1) logEvent(event);
    if (TERMINAL_EVENTS.has(event.type)) {
      state.ended = true;
      closeStream();
      refreshJob();
    } else if (state.job && ["started", "queued"].includes(event.type)) {
      refreshJob();
    }
    scheduleRender();
  }

  function openStream() {
    closeStream();
    // The job's first read can end after the view was left (a link followed at once): no stream for a gone view.
    if (state.stopped) return;
    const query = new URLSearchParams();
    if (state.lastEventId) query.set("after", state.lastEventId);
    if (apiKey()) query.set("api_key", apiKey());
    const search = query.toString();
    const source = new EventSource(`${BASE}/v1/jobs/${jobId}/events${search ? `?${search}` : ""}`);
    for (const type of EVENT_TYPES) source.addEventListener(type, (message) => onEvent(JSON.parse(message.data)));
    // EventSource reconnects by itself (with Last-Event-ID); once closed for good the job is over.
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) refreshJob(); };
    state.source = source;
  }

  function closeStream() {
    state.source?.close();
    state.source = null;
  }

  async function poll() {
    if (state.stopped) return;
    if (!state.ended) await refreshJob();
    state.pollTimer = setTimeout(poll, 2000);
  }

  // With a key, a plain link would download without it: fetch with the key, then save the bytes.
  $("#artifacts", view).addEventListener("click", async (event) => {
    const link = event.target.closest("a[data-artifact]");
    if (!link || !apiKey()) return;
    event.preventDefault();
    try {
      const response = await fetch(link.href, { headers: { "x-api-key": apiKey() } });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      const url = URL.createObjectURL(await response.blob());
      const save = Object.assign(document.createElement("a"), { href: url, download: link.getAttribute("download") });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      showError(error);
    }
  });

  $("#cancel-job", view).addEventListener("click", async () => {
    try {
      showJob(await call("POST", `/v1/jobs/${jobId}/cancel`));
    } catch (error) {
      showError(error);
    }
  });
  $("#retry-job", view).addEventListener("click", async () => {
    try {
      showJob(await call("POST", `/v1/jobs/${jobId}/retry`));
      state.ended = false;
      openStream();
    } catch (error) {
      showError(error);
    }
  });

  refreshJob().then(openStream);
  poll();
  return () => {
    state.stopped = true;
    closeStream();
    clearTimeout(state.pollTimer);
    clearTimeout(state.renderTimer);
    for (const entry of state.charts.values()) entry.chart?.destroy();
  };
}

// ---------------------------------------------------------------------------------------------------

let leave = () => {};

function route() {
  leave();
  $("#flash").hidden = true;
  const view = $("#view");
  const path = location.hash.replace(/^#/, "") || "/";
  const job = path.match(/^\/jobs\/([0-9a-f]{32})$/);
  const compare = path.match(/^\/compare\?ids=([0-9a-f,]*)$/);
  const ids = compare ? compare[1].split(",").filter((id) => /^[0-9a-f]{32}$/.test(id)) : [];
  const sweep = path.match(/^\/sweeps\/([0-9a-f]{32})$/);
  const registered = path.match(/^\/registry\/([^/]+)(?:\/([^/]+))?$/);
  const [name, version] = registered ? registered.slice(1).map((part) => part && decodeURIComponent(part)) : [];
  leave = job ? jobView(view, job[1]) : path === "/new" ? newJobView(view) : compare ? compareView(view, ids)
    : sweep ? sweepView(view, sweep[1]) : path === "/sweeps" ? sweepListView(view)
    : registered ? (version ? versionView(view, name, version) : registeredModelView(view, name))
    : path === "/registry" ? registryListView(view)
    : jobListView(view);
}

async function showVersions() {
  try {
    const v = await call("GET", "/version");
    const workers = Array.isArray(v.workers) ? v.workers.length : Object.keys(v.workers || {}).length;
    $("#versions").textContent =
      `kerasd ${v.kerasd} · Keras ${v.keras} (${v.backend}) · ${workers} worker${workers === 1 ? "" : "s"}`;
  } catch {
    $("#versions").textContent = "";
  }
}

function keyControls() {
  const form = $("#api-key-form");
  const button = $("#api-key-button");
  const label = () => (button.textContent = apiKey() ? "API key ✓" : "API key");
  button.addEventListener("click", () => {
    form.hidden = !form.hidden;
    if (!form.hidden) $("#api-key").focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("#api-key").value.trim());
    $("#api-key").value = "";
    form.hidden = true;
    label();
    route();
  });
  $("#api-key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    form.hidden = true;
    label();
    route();
  });
  label();
}

window.addEventListener("hashchange", route);
keyControls();
route();
showVersions();
