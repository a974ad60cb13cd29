// The dashboard's shell: token login (sessionStorage, sent as a header), API calls, routing.
// Every string reaches the page through textContent (see h()), never through innerHTML.
import { VIEWS } from "./views.js";

const KEY = "glmx.token";
export const token = () => sessionStorage.getItem(KEY);

export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) { logout(); throw new ApiError(401, "log in again"); }
  const data = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new ApiError(r.status, data && data.detail);
  return data;
}

export const fmtNum = (v) => (v === null || v === undefined ? "-" :
  Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(Number(v.toPrecision(4))));
export const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleString() : "-");
export function fmtDur(s) {
  if (s === null || s === undefined || s < 0) return "-";
  s = Math.round(s);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return hh ? `${hh}h${String(mm).padStart(2, "0")}m` : mm ? `${mm}m${String(ss).padStart(2, "0")}s` : `${ss}s`;
}
export const stateBadge = (s) => h("span", { class: `state ${s}`, "data-state": s }, s);

function logout() {
  sessionStorage.removeItem(KEY);
  route();
}

function loginView(main) {
  const input = h("input", { type: "password", id: "token", autocomplete: "off", size: 40 });
  const err = h("div", { class: "error", id: "login-error" });
  const form = h("form", { class: "card login", onsubmit: async (ev) => {
    ev.preventDefault();
    const r = await fetch("/api/v1/auth/check", { headers: { Authorization: `Bearer ${input.value}` } });
    if (r.ok) { sessionStorage.setItem(KEY, input.value); route(); }
    else err.textContent = "That token is not the server's (see <home>/token or GLMX_PLATFORM_TOKEN).";
  } },
  h("h1", {}, "Log in"),
  h("div", { class: "field" }, h("label", { for: "token" }, "Server token"), input, err),
  h("button", { type: "submit", id: "login" }, "Log in"));
  main.replaceChildren(form);
  input.focus();
}

// What the shown view must stop when the user moves on (intervals, sockets). A list: a view
// registers several.
let cleanups = [];
export function onLeave(main, fn) {
  if (main.isConnected) cleanups.push(fn);
  else fn();  // the user left before this view finished loading
}

export async function route() {
  for (const fn of cleanups.splice(0)) { try { fn(); } catch (e) { console.warn(e); } }
  // Each visit renders into its own slot: a view still loading when the user moves on writes
  // into its detached slot, never over the newer page, and the old page is gone at once.
  const main = h("div", { class: "view" });
  document.getElementById("main").replaceChildren(main);
  document.getElementById("logout").hidden = !token();
  if (!token()) return loginView(main);
  const [path, query] = (location.hash.slice(1) || "/runs").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0]}`);
  }
  const view = VIEWS[parts[0]] || VIEWS.runs;
  const shown = location.hash || "#/runs";
  try {
    await view(main, parts.slice(1), params);
    main.dataset.shown = shown;  // its first data is on screen (what tests and scripts wait for)
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    main.replaceChildren(h("div", { class: "card error" }, `Error: ${e.message}`));
  }
}

window.addEventListener("hashchange", route);
document.getElementById("logout").addEventListener("click", logout);
route();
