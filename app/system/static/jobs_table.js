// The job list's table: name and tags, the parameter and metric columns a person chooses (kept in this browser),
// sorting by them through GET /v1/jobs?sort=, and the runs selected for the compare view.

import { esc, fmt, shortId, statusBadge, when } from "./common.js";

const COLUMN_STORE = "kerasd.columns";
// Shown until a person chooses: these where the listed jobs have them.
const DEFAULT_COLUMNS = { params: ["optimizer", "optimizer.learning_rate", "fit.batch_size"], metrics: ["loss", "val_loss"] };

// The list route's query: filters as the route takes them (`tag` repeated, `name` a prefix) and `sort` as
// `metrics.<name>.best` or `params.<name>`, `-` first for descending.
export function jobsQuery({ limit, status, name, tags, sort }) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (status) query.set("status", status);
  if (name) query.set("name", name);
  for (const tag of tags) query.append("tag", tag);
  if (sort) query.set("sort", sort);
  return `/v1/jobs?${query}`;
}

export class JobsTable {
  constructor() {
    this.selected = new Set();
    this.sort = null;
    this.known = { params: new Set(), metrics: new Set() };
    this.chosen = JSON.parse(localStorage.getItem(COLUMN_STORE) || "null");
  }

  columns() {
    if (this.chosen) return this.chosen;
    return { params: DEFAULT_COLUMNS.params.filter((p) => this.known.params.has(p)),
             metrics: DEFAULT_COLUMNS.metrics.filter((m) => this.known.metrics.has(m)) };
  }

  // Records the params and metrics these jobs have; true when the choices offered changed.
  learn(jobs) {
    const before = this.known.params.size + this.known.metrics.size;
    for (const job of jobs) {
      Object.keys(job.params || {}).forEach((p) => this.known.params.add(p));
      Object.keys(job.metrics || {}).forEach((m) => this.known.metrics.add(m));
    }
    return this.known.params.size + this.known.metrics.size !== before;
  }

  toggleColumn(kind, name, on) {
    const current = this.columns();
    const next = { params: [...current.params], metrics: [...current.metrics] };
    next[kind] = on ? [...next[kind].filter((n) => n !== name), name] : next[kind].filter((n) => n !== name);
    this.chosen = next;
    localStorage.setItem(COLUMN_STORE, JSON.stringify(next));
  }

  // Clicking a column sorts by it ascending, again descending, a third time back to newest first.
  toggleSort(key) {
    this.sort = this.sort === key ? `-${key}` : this.sort === `-${key}` ? null : key;
  }

  choicesHtml() {
    const { params, metrics } = this.columns();
    const box = (kind, name, on) => `<label><input type="checkbox" data-column-kind="${kind}" value="${esc(name)}"${
      on ? " checked" : ""}> ${esc(name)}</label>`;
    const known = (set) => [...set].sort();
    return `<div><b>Metrics</b>${known(this.known.metrics).map((m) => box("metrics", m, metrics.includes(m))).join("")
      || '<span class="muted"> none yet</span>'}</div><div><b>Parameters</b>${known(this.known.params)
      .map((p) => box("params", p, params.includes(p))).join("") || '<span class="muted"> none yet</span>'}</div>`;
  }

  headerHtml(shownIds) {
    const { params, metrics } = this.columns();
    const arrow = (key) => (this.sort === key ? " ▲" : this.sort === `-${key}` ? " ▼" : "");
    const sortable = (key, label) => `<th class="sortable" data-sort="${esc(key)}" title="sort by ${esc(key)}">${label}${arrow(key)}</th>`;
    const all = shownIds.length > 0 && shownIds.every((id) => this.selected.has(id));
    return `<tr><th><input type="checkbox" id="select-all" title="select every job shown"${all ? " checked" : ""}></th>
      <th>Job</th><th>Name</th><th>Tags</th><th>Kind</th><th>Status</th><th>Model</th>${
      params.map((p) => sortable(`params.${p}`, esc(p))).join("")}${
      metrics.map((m) => sortable(`metrics.${m}.best`, `${esc(m)} <span class="muted">best</span>`)).join("")}
      <th>Queue position</th><th>Progress</th><th>Created</th></tr>`;
  }

  rowHtml(job, modelName, progressHtml) {
    const { params, metrics } = this.columns();
    const position = job.queue_position ?? null;
    const tags = (job.tags || []).map((tag) => `<span class="tag">${esc(tag)}</span>`).join(" ");
    const metric = (m) => {
      const value = job.metrics?.[m];
      const title = value ? `final ${fmt(value.final)}, best at epoch ${value.best_epoch ?? "—"} (${value.goal})` : "";
      return `<td class="metric" data-metric="${esc(m)}" title="${esc(title)}">${esc(fmt(value?.best))}</td>`;
    };
    return `<tr data-job-id="${esc(job.id)}"${this.selected.has(job.id) ? ' class="selected"' : ""}>
      <td><input type="checkbox" class="select-job" value="${esc(job.id)}"${this.selected.has(job.id) ? " checked" : ""}></td>
      <td><a href="#/jobs/${esc(job.id)}"><code>${esc(shortId(job.id))}</code></a></td>
      <td class="name">${esc(job.name ?? "")}</td><td class="tags">${tags}</td>
      <td>${esc(job.kind)}${job.sweep_id ? ` <a class="sweep-link" href="#/sweeps/${esc(job.sweep_id)}">(trial)</a>` : ""}</td>
      <td>${statusBadge(job.status)}</td>
      <td>${esc(modelName)} <code class="muted">${esc(shortId(job.model_id))}</code></td>${
      params.map((p) => `<td class="param" data-param="${esc(p)}">${esc(fmt(job.params?.[p]))}</td>`).join("")}${
      metrics.map(metric).join("")}
      <td class="queue-position">${position === null ? "—" : esc(position)}</td>
      <td class="progress">${progressHtml}</td><td>${esc(when(job.created_at))}</td></tr>`;
  }
}
