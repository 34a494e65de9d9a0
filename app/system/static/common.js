// What every view of the dashboard shares: calls to the API with the tab's key, errors, and small formatters.

// Everything is relative to where the app is mounted, so a proxy prefix works too.
export const BASE = location.pathname.replace(/\/dashboard(\/.*)?$/, "");
// A server that requires keys gets this tab's key on every call (EventSource, which cannot send headers,
// passes it as ?api_key=, which the events route accepts).
export const KEY_STORE = "kerasd.api_key";
export const apiKey = () => sessionStorage.getItem(KEY_STORE) || "";

export const $ = (selector, root = document) => root.querySelector(selector);
export const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
export const shortId = (id) => (id ? id.slice(0, 8) : "");
export const fmt = (value, digits = 4) =>
  value === null || value === undefined ? "—" : typeof value === "number" ? Number(value.toPrecision(digits)).toString() : String(value);
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

export class ApiError extends Error {
  constructor(status, problem) {
    const hint = status === 401 ? " Enter an API key with the API key button (top right)." : "";
    super((problem?.detail || problem?.title || `HTTP ${status}`) + hint);
    this.status = status;
    this.problem = problem;
  }
}

export async function call(method, path, body) {
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

export function statusBadge(status, extra = "") {
  return `<span class="status status-${esc(status)}" data-status="${esc(status)}">${esc(status)}${extra}</span>`;
}

export function showError(error) {
  const box = $("#flash");
  box.textContent = error instanceof Error ? error.message : String(error);
  box.hidden = false;
}

// A run's label: its name, else the start of its id.
export const runLabel = (run) => run.name || shortId(run.id);
