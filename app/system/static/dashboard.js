// The kerasd dashboard: the job list, a form that starts the tutorial's §3.2 job, and a job view fed by
// the job's Server-Sent Events (live curves, epochs, artifacts, cancel). Plain JavaScript, no build step.

import { tutorialArrays } from "./npz.js";

// Everything is relative to where the app is mounted, so a proxy prefix works too.
const BASE = location.pathname.replace(/\/dashboard(\/.*)?$/, "");
// As app/core/statuses.py and app/core/events.py define them.
const EVENT_TYPES = ["queued", "started", "batch", "epoch", "checkpoint", "log", "finished", "failed", "cancelled",
                     "pruned"];
const TERMINAL_EVENTS = new Set(["finished", "failed", "cancelled", "pruned"]);
const TERMINAL_STATUSES = new Set(["succeeded", "failed", "cancelled", "pruned"]);
const COLORS = { batch: "#9db7e0", train: "#1f5fbf", val: "#d9661f" };
// A server that requires keys gets this tab's key on every call (EventSource, which cannot send headers,
// passes it as ?api_key=, which the events route accepts).
const KEY_STORE = "kerasd.api_key";
const apiKey = () => sessionStorage.getItem(KEY_STORE) || "";

const $ = (selector, root = document) => root.querySelector(selector);
const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const shortId = (id) => (id ? id.slice(0, 8) : "");
const fmt = (value, digits = 4) =>
  value === null || value === undefined ? "—" : typeof value === "number" ? Number(value.toPrecision(digits)).toString() : String(value);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

class ApiError extends Error {
  constructor(status, problem) {
    const hint = status === 401 ? " Enter an API key with the API key button (top right)." : "";
    super((problem?.detail || problem?.title || `HTTP ${status}`) + hint);
    this.status = status;
    this.problem = problem;
  }
}

async function call(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
  if (apiKey()) init.headers["x-api-key"] = apiKey();
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  const response = await fetch(BASE + path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

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

function statusBadge(status, extra = "") {
  return `<span class="status status-${esc(status)}" data-status="${esc(status)}">${esc(status)}${extra}</span>`;
}

function showError(error) {
  const box = $("#flash");
  box.textContent = error instanceof Error ? error.message : String(error);
  box.hidden = false;
}

// ---------------------------------------------------------------------------------------------------
// The job list

function jobListView(view) {
  view.innerHTML = `
    <section>
      <div class="title-row"><h1>Jobs</h1><a class="button" href="#/new" id="new-job-link">New job…</a>
        <label>Status <select id="status-filter">
          <option value="">all</option><option>queued</option><option>running</option>
          <option>succeeded</option><option>failed</option><option>cancelled</option><option>pruned</option>
        </select></label></div>
      <table class="jobs" id="jobs">
        <thead><tr><th>Job</th><th>Kind</th><th>Status</th><th>Model</th><th>Queue position</th>
          <th>Progress</th><th>Created</th></tr></thead>
        <tbody></tbody>
      </table>
      <p id="jobs-empty" class="muted" hidden>No jobs yet: start one from <a href="#/new">New job</a>.</p>
    </section>`;
  let timer = null;
  let stopped = false;
  $("#status-filter", view).addEventListener("change", () => refresh());

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
      const status = $("#status-filter", view).value;
      const page = await call("GET", `/v1/jobs?limit=100${status ? `&status=${status}` : ""}`);
      const rows = await Promise.all(page.items.map(async (job) => {
        const [name, progress] = await Promise.all([modelName(job.model_id), progressOf(job).catch(() => null)]);
        const position = job.queue_position ?? null;
        const bar = progress
          ? `<progress max="1" ${progress.value === null ? "" : `value="${progress.value}"`}></progress> ${esc(progress.text)}`
          : "";
        return `<tr data-job-id="${esc(job.id)}">
          <td><a href="#/jobs/${esc(job.id)}"><code>${esc(shortId(job.id))}</code></a></td>
          <td>${esc(job.kind)}</td><td>${statusBadge(job.status)}</td>
          <td>${esc(name)} <code class="muted">${esc(shortId(job.model_id))}</code></td>
          <td class="queue-position">${position === null ? "—" : esc(position)}</td>
          <td class="progress">${bar}</td><td>${esc(when(job.created_at))}</td></tr>`;
      }));
      if (stopped) return;
      $("#jobs tbody", view).innerHTML = rows.join("");
      $("#jobs-empty", view).hidden = rows.length > 0;
    } catch (error) {
      showError(error);
    }
    if (!stopped) timer = setTimeout(refresh, 2000);
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ---------------------------------------------------------------------------------------------------
// Starting a job: the tutorial's §3.2 example, editable

const SEED_MODEL = {
  type: "sequential", name: "seed_3_2", input_shape: [72],
  layers: [
    { class_name: "Dense", units: 32, activation: "relu" },
    { class_name: "Dense", units: 32, activation: "relu" },
    { class_name: "Dense", units: 10, activation: "softmax" },
  ],
};
const SEED_JOB = {
  kind: "fit", model_id: "$MODEL",
  compile: { optimizer: { class_name: "Adam", config: { learning_rate: 0.001 } },
             loss: "categorical_crossentropy", metrics: ["categorical_accuracy"] },
  fit: { x: { dataset_id: "$DATASET", array: "train_x" }, y: { dataset_id: "$DATASET", array: "train_y" },
         epochs: 10, batch_size: 100,
         validation_data: { x: { dataset_id: "$DATASET", array: "val_x" }, y: { dataset_id: "$DATASET", array: "val_y" } } },
};

function newJobView(view) {
  view.innerHTML = `
    <section>
      <h1>New job</h1>
      <p>The tutorial's §3.2 example, ready to run: a Sequential model of Dense 32 → 32 → 10 trained with
        Adam on random data. Edit anything; the same JSON works with <code>curl</code> (see the API docs).</p>
      <form id="new-job">
        <fieldset><legend>1 · Data (POST /v1/datasets)</legend>
          <label><input type="radio" name="data" value="random" checked> Random arrays as in the tutorial:
            <code>np.random.random((1000, 72))</code>, 10-class one-hot labels, 200 validation rows
            (<code>train_x</code>, <code>train_y</code>, <code>val_x</code>, <code>val_y</code>)</label>
          <label><input type="radio" name="data" value="file"> A <code>.npz</code> or <code>.npy</code> file:
            <input type="file" id="data-file" accept=".npz,.npy"></label>
        </fieldset>
        <fieldset><legend>2 · Model (POST /v1/models)</legend>
          <textarea id="model-spec" rows="11" spellcheck="false"></textarea></fieldset>
        <fieldset><legend>3 · Compile and fit (POST /v1/jobs)</legend>
          <p class="muted"><code>$MODEL</code> and <code>$DATASET</code> become the ids that steps 2 and 1 return.</p>
          <textarea id="job-request" rows="18" spellcheck="false"></textarea></fieldset>
        <button type="submit" id="start-job">Start job</button> <span id="new-job-status" class="muted"></span>
      </form>
    </section>`;
  $("#model-spec", view).value = JSON.stringify(SEED_MODEL, null, 2);
  $("#job-request", view).value = JSON.stringify(SEED_JOB, null, 2);
  $("#new-job", view).addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#start-job", view);
    const say = (text) => ($("#new-job-status", view).textContent = text);
    button.disabled = true;
    try {
      const spec = JSON.parse($("#model-spec", view).value);
      const template = $("#job-request", view).value;
      JSON.parse(template);
      const form = new FormData();
      if (view.querySelector("input[name=data]:checked").value === "file") {
        const file = $("#data-file", view).files[0];
        if (!file) throw new Error("Choose a .npz or .npy file, or use the random arrays.");
        form.append("file", file, file.name);
      } else {
        form.append("file", tutorialArrays(), "seed.npz");
      }
      say("uploading the arrays…");
      const dataset = await call("POST", "/v1/datasets", form);
      say("building the model…");
      const model = await call("POST", "/v1/models", spec);
      say("submitting the job…");
      const body = template.replaceAll("$MODEL", model.id).replaceAll("$DATASET", dataset.id);
      const job = await call("POST", "/v1/jobs", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      say("");
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
  return () => {};
}

// ---------------------------------------------------------------------------------------------------
// Charts: one SVG per metric, batch values (light), epoch values and validation values

function chartSvg(metric, series) {
  const width = 460, height = 220, left = 52, right = 12, top = 12, bottom = 28;
  const points = series.flatMap((s) => s.points);
  const count = points.length;
  if (!count) {
    return `<svg class="chart" data-metric="${esc(metric)}" data-points="0" viewBox="0 0 ${width} ${height}"></svg>`;
  }
  let [xMin, xMax, yMin, yMax] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of points) {
    [xMin, xMax, yMin, yMax] = [Math.min(xMin, x), Math.max(xMax, x), Math.min(yMin, y), Math.max(yMax, y)];
  }
  if (xMin === xMax) [xMin, xMax] = [xMin - 0.5, xMax + 0.5];
  if (yMin === yMax) [yMin, yMax] = [yMin - 0.5, yMax + 0.5];
  const sx = (x) => left + ((x - xMin) / (xMax - xMin)) * (width - left - right);
  const sy = (y) => top + (1 - (y - yMin) / (yMax - yMin)) * (height - top - bottom);
  const lines = series.filter((s) => s.points.length).map((s) => {
    // A long job has many batch points: draw at most about 1500 of them, evenly spaced, and the last.
    const step = Math.ceil(s.points.length / 1500);
    const drawn = step === 1 ? s.points : s.points.filter((_, i) => i % step === 0 || i === s.points.length - 1);
    const path = drawn.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    const dots = s.dots
      ? s.points.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`).join("")
      : "";
    return `<polyline class="series series-${s.key}" data-series="${esc(s.label)}" data-points="${s.points.length}"
      fill="none" stroke="${s.color}" stroke-width="${s.dots ? 2 : 1}" points="${path}"/>${dots}`;
  });
  const legend = series.filter((s) => s.points.length)
    .map((s, i) => `<text x="${width - right - 4}" y="${top + 10 + i * 12}" text-anchor="end" fill="${s.color}"
      class="legend">${esc(s.label)}</text>`)
    .join("");
  return `<svg class="chart" data-metric="${esc(metric)}" data-points="${count}" viewBox="0 0 ${width} ${height}"
      role="img" aria-label="${esc(metric)} by epoch">
    <line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" class="axis"/>
    <line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" class="axis"/>
    <text x="${left - 4}" y="${top + 4}" text-anchor="end" class="tick">${esc(fmt(yMax, 3))}</text>
    <text x="${left - 4}" y="${height - bottom}" text-anchor="end" class="tick">${esc(fmt(yMin, 3))}</text>
    <text x="${left}" y="${height - 8}" class="tick">${esc(fmt(xMin, 3))}</text>
    <text x="${width - right}" y="${height - 8}" text-anchor="end" class="tick">epoch ${esc(fmt(xMax, 3))}</text>
    ${lines.join("")}${legend}</svg>`;
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
  };

  function scheduleRender() {
    if (state.renderTimer === null) state.renderTimer = setTimeout(render, 150);
  }

  function render() {
    state.renderTimer = null;
    if (state.stopped) return;
    const metrics = new Set();
    for (const batch of state.batches) Object.keys(batch.logs).forEach((key) => metrics.add(key));
    for (const logs of state.epochs.values()) Object.keys(logs).forEach((key) => metrics.add(key.replace(/^val_/, "")));
    const epochs = [...state.epochs.entries()].sort((a, b) => a[0] - b[0]);
    const ordered = [...metrics].sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a.localeCompare(b)));
    $("#charts", view).innerHTML = ordered.map((metric) => `<figure><figcaption>${esc(metric)}</figcaption>${chartSvg(metric, [
      { key: "batch", label: `${metric} (batches)`, color: COLORS.batch,
        points: state.batches.filter((b) => b.logs[metric] != null).map((b) => [b.x, b.logs[metric]]) },
      { key: "train", label: metric, color: COLORS.train, dots: true,
        points: epochs.filter(([, l]) => l[metric] != null).map(([e, l]) => [e + 1, l[metric]]) },
      { key: "val", label: `val_${metric}`, color: COLORS.val, dots: true,
        points: epochs.filter(([, l]) => l[`val_${metric}`] != null).map(([e, l]) => [e + 1, l[`val_${metric}`]]) },
    ])}</figure>`).join("");

    const keys = [...new Set(epochs.flatMap(([, logs]) => Object.keys(logs)))]
      .sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a.localeCompare(b)));
    $("#epochs thead", view).innerHTML = `<tr><th>epoch</th>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}</tr>`;
    $("#epochs tbody", view).innerHTML = epochs.map(([epoch, logs]) =>
      `<tr><td>${epoch + 1}</td>${keys.map((k) => `<td>${esc(fmt(logs[k]))}</td>`).join("")}</tr>`).join("");

    const total = state.epochsTotal ?? (state.job && epochsAsked(state.job));
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
      ["kind", esc(job.kind)],
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
  leave = job ? jobView(view, job[1]) : path === "/new" ? newJobView(view) : jobListView(view);
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
