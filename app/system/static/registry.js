// The model registry: registered models (GET /v1/registry), one model's versions and aliases
// (GET /v1/registry/{name}), and one version's lineage, files and exports with their parity figures
// (GET /v1/registry/{name}/versions/{version} and .../exports).

import { $, BASE, call, esc, fmt, shortId, showError, statusBadge, when } from "./common.js";

const path = (name) => `/v1/registry/${encodeURIComponent(name)}`;
const size = (bytes) => (bytes >= 1 << 20 ? `${fmt(bytes / (1 << 20), 3)} MiB` : bytes >= 1024 ? `${fmt(bytes / 1024, 3)} KiB`
  : `${bytes} B`);

function aliasList(aliases) {
  return aliases.map((alias) => `<span class="tag alias" data-alias="${esc(alias)}">@${esc(alias)}</span>`).join(" ");
}

function loadInto(view, work) {
  let stopped = false;
  (async () => {
    try {
      await work(() => stopped);
    } catch (error) {
      if (!stopped) showError(error);
    }
  })();
  return () => { stopped = true; };
}

export function registryListView(view) {
  view.innerHTML = `
    <section class="registry" data-loaded="false">
      <div class="title-row"><h1>Registered models</h1></div>
      <table id="registered-models" class="jobs"><thead><tr><th>name</th><th>description</th><th>latest version</th>
        <th>aliases</th><th>created</th></tr></thead><tbody></tbody></table>
      <p id="registry-empty" class="muted" hidden>No registered models yet: register one with
        <code>POST /v1/registry</code>, then add versions from succeeded fit jobs (see the <a href="docs#/registry">API docs</a>).</p>
    </section>`;
  return loadInto(view, async (stopped) => {
    const models = await call("GET", "/v1/registry");
    if (stopped()) return;
    $("#registered-models tbody", view).innerHTML = models.map((m) => `<tr data-name="${esc(m.name)}">
      <td><a href="#/registry/${esc(encodeURIComponent(m.name))}">${esc(m.name)}</a></td><td>${esc(m.description)}</td>
      <td>${esc(m.latest_version ?? "—")}</td>
      <td>${Object.entries(m.aliases).map(([a, v]) => `<span class="tag">@${esc(a)} → ${esc(v)}</span>`).join(" ")}</td>
      <td>${esc(when(m.created_at))}</td></tr>`).join("");
    $("#registry-empty", view).hidden = models.length > 0;
    $("section.registry", view).dataset.loaded = "true";
  });
}

export function registeredModelView(view, name) {
  view.innerHTML = `
    <section class="registered-model" data-name="${esc(name)}" data-loaded="false">
      <p><a href="#/registry">← all registered models</a></p>
      <div class="title-row"><h1>${esc(name)}</h1></div>
      <p id="model-description" class="muted"></p>
      <h2>Versions</h2>
      <table id="versions" class="jobs"><thead><tr><th>version</th><th>aliases</th><th>job</th><th>description</th>
        <th>metrics (final)</th><th>created</th></tr></thead><tbody></tbody></table>
    </section>`;
  return loadInto(view, async (stopped) => {
    const model = await call("GET", path(name));
    if (stopped()) return;
    $("#model-description", view).textContent = model.description;
    $("#versions tbody", view).innerHTML = model.versions.map((v) => `<tr data-version="${esc(v.version)}">
      <td><a href="#/registry/${esc(encodeURIComponent(name))}/${esc(v.version)}">${esc(v.version)}</a></td>
      <td>${aliasList(v.aliases)}</td>
      <td><a href="#/jobs/${esc(v.job_id)}"><code>${esc(shortId(v.job_id))}</code></a></td><td>${esc(v.description)}</td>
      <td>${Object.entries(v.lineage.metrics || {}).map(([m, s]) => `${esc(m)} ${esc(fmt(s.final))}`).join(" · ")}</td>
      <td>${esc(when(v.created_at))}</td></tr>`).join("");
    $("section.registered-model", view).dataset.loaded = "true";
  });
}

function table(id, headers, rows) {
  return `<table id="${id}" class="jobs"><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>
    <tbody>${rows.join("")}</tbody></table>`;
}

function exportRow(e) {
  const v = e.verification;
  const diffs = v ? Object.entries(v.max_abs_diff || {}).map(([output, diff]) =>
    `<span data-output="${esc(output)}" data-diff="${esc(diff)}">${esc(output)}: ${esc(diff.toExponential(2))}</span>`).join(", ") : "—";
  const file = e.file ? `<a href="${esc(BASE + e.file.url)}" download>${esc(e.file.name)}</a> (${esc(size(e.file.size_bytes))})
    <code class="muted" title="sha256">${esc(e.file.sha256.slice(0, 16))}…</code>` : "—";
  return `<tr data-export-job="${esc(e.job_id)}">
    <td><a href="#/jobs/${esc(e.job_id)}"><code>${esc(shortId(e.job_id))}</code></a></td><td>${esc(e.format)}</td>
    <td>${statusBadge(e.status)}</td>
    <td class="parity" data-parity="${esc(v?.status ?? "")}">${v ? statusBadge(v.status) : "—"}</td>
    <td class="max-abs-diff">${diffs}</td><td>${esc(v?.tolerance ?? "—")}</td><td>${esc(v?.rows ?? "—")}</td>
    <td>${esc(v?.runtime ?? "—")}</td><td>${file}</td>
    <td>${e.error ? esc(`${e.error.type}: ${e.error.message}`) : ""}</td><td>${esc(when(e.created_at))}</td></tr>`;
}

export function versionView(view, name, version) {
  view.innerHTML = `
    <section class="model-version" data-name="${esc(name)}" data-version="${esc(version)}" data-loaded="false">
      <p><a href="#/registry/${esc(encodeURIComponent(name))}">← ${esc(name)}</a></p>
      <div class="title-row"><h1>${esc(name)} <span class="muted">version</span> ${esc(version)}</h1>
        <span id="version-aliases"></span></div>
      <dl id="version-facts" class="facts"></dl>
      <h2>Trained with</h2><dl id="trained-with" class="facts"></dl>
      <h2>Datasets</h2><div id="lineage-datasets"></div>
      <h2>Parameters</h2><div id="lineage-params"></div>
      <h2>Metrics</h2><div id="lineage-metrics"></div>
      <h2>Files</h2><div id="version-artifacts"></div>
      <h2>Exports</h2><div id="version-exports"></div>
    </section>`;
  return loadInto(view, async (stopped) => {
    const base = `${path(name)}/versions/${encodeURIComponent(version)}`;
    const [v, exports] = await Promise.all([call("GET", base), call("GET", `${base}/exports`)]);
    if (stopped()) return;
    const lineage = v.lineage;
    const job = lineage.job || {};
    $("#version-aliases", view).innerHTML = aliasList(v.aliases);
    const facts = [
      ["reference", `<code>${esc(v.reference)}</code>`], ["description", esc(v.description) || "—"],
      ["job", `<a id="lineage-job" href="#/jobs/${esc(job.id ?? v.job_id)}"><code>${esc(shortId(job.id ?? v.job_id))}</code></a>
        ${esc(job.name ?? "")} ${statusBadge(job.status ?? "—")}`],
      ["sweep", job.sweep_id ? `<a href="#/sweeps/${esc(job.sweep_id)}"><code>${esc(shortId(job.sweep_id))}</code></a>` : "—"],
      ["model spec", `${esc(lineage.model?.name ?? "")} <code>${esc(lineage.model?.id ?? v.model_id)}</code>`],
      ["seed", esc(lineage.seed ?? "—")], ["epochs run", esc(lineage.epochs_run ?? "—")],
      ["started from", esc(lineage.started_from ?? "—")],
      ["attempts", `${esc(job.attempts ?? "—")} of ${esc(job.max_attempts ?? "—")}`],
      ["trained", `${esc(when(job.started_at))} – ${esc(when(job.finished_at))}`], ["registered", esc(when(v.created_at))],
    ];
    $("#version-facts", view).innerHTML = facts.map(([k, val]) => `<dt>${k}</dt><dd>${val}</dd>`).join("");
    const trained = lineage.trained_with;
    $("#trained-with", view).innerHTML = trained
      ? Object.entries(trained).map(([k, val]) => `<dt>${esc(k)}</dt><dd data-key="${esc(k)}">${esc(fmt(val))}</dd>`).join("")
      : `<dt>versions</dt><dd class="muted">not recorded (trained before workers recorded them)</dd>`;
    $("#lineage-datasets", view).innerHTML = table("datasets", ["sha256", "dataset", "format", "arrays"],
      lineage.datasets.map((d) => `<tr data-sha256="${esc(d.sha256)}"><td><code>${esc(d.sha256)}</code></td>
        <td><code>${esc(shortId(d.dataset_id))}</code></td><td>${esc(d.format)}</td>
        <td>${d.arrays.map((a) => `${esc(a.argument)} ← ${esc(a.array)} ${esc(a.dtype)}[${esc(a.shape.join("×"))}]`).join("<br>")}</td></tr>`));
    $("#lineage-params", view).innerHTML = table("params", ["parameter", "value"],
      Object.entries(lineage.params).map(([p, val]) => `<tr data-param="${esc(p)}"><td>${esc(p)}</td><td>${esc(fmt(val))}</td></tr>`));
    $("#lineage-metrics", view).innerHTML = table("metrics", ["metric", "final", "best", "best epoch", "goal"],
      Object.entries(lineage.metrics).map(([m, s]) => `<tr data-metric="${esc(m)}"><td>${esc(m)}</td><td>${esc(fmt(s.final))}</td>
        <td>${esc(fmt(s.best))}</td><td>${esc(s.best_epoch ?? "—")}</td><td>${esc(s.goal)}</td></tr>`));
    $("#version-artifacts", view).innerHTML = table("artifacts", ["file", "size", "sha256"],
      v.artifacts.map((a) => `<tr data-artifact="${esc(a.name)}"><td><a href="${esc(BASE + a.url)}" download>${esc(a.name)}</a></td>
        <td>${esc(size(a.size_bytes))}</td><td><code>${esc(a.sha256)}</code></td></tr>`));
    $("#version-exports", view).innerHTML = exports.length
      ? table("exports", ["job", "format", "status", "parity", "largest difference from Keras, per output", "tolerance",
                          "rows", "runtime", "file", "error", "created"], exports.map(exportRow))
      : `<p class="muted">No exports: <code>POST ${esc(base)}/exports</code> makes one.</p>`;
    $("section.model-version", view).dataset.loaded = "true";
  });
}
