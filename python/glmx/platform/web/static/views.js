// The dashboard's pages: runs, run detail, new run, compare, agents.
import { api, ApiError, fmtDur, fmtNum, fmtTime, h, onLeave, stateBadge, token } from "./app.js";
import { COLORS, lineChart, smooth } from "./chart.js";
import { accuracy, confusionChart } from "./confusion.js";

const STATES = ["", "queued", "claimed", "running", "done", "failed", "cancelled", "preempted"];
const FINAL_STATES = ["done", "failed", "cancelled", "preempted"];

function every(main, ms, fn) {
  const id = setInterval(fn, ms);
  onLeave(main, () => clearInterval(id));
}

function metricOf(run) {
  const m = run.final_metrics || {};
  const key = ["val/loss", "train/loss", "loss"].find((k) => m[k]) || Object.keys(m)[0];
  return key ? { key, value: m[key].value, best: m[key].best } : null;
}

// -- runs table ------------------------------------------------------------------------------
async function runsView(main, _parts, params) {
  const sel = { state: params.get("state") || "", tag: params.get("tag") || "", q: params.get("q") || "" };
  let order = params.get("order") || "-id";
  const picked = new Set();
  const body = h("tbody");
  const total = h("span", { class: "muted", id: "total" });
  const setQuery = () => {
    const p = new URLSearchParams(Object.entries({ ...sel, order }).filter(([, v]) => v));
    history.replaceState(null, "", `#/runs?${p}`);
    load();
  };
  const stateSel = h("select", { id: "filter-state", onchange: (e) => { sel.state = e.target.value; setQuery(); } },
    STATES.map((s) => h("option", { value: s, selected: s === sel.state }, s || "any state")));
  const tag = h("input", { id: "filter-tag", placeholder: "tag", value: sel.tag, onchange: (e) => { sel.tag = e.target.value; setQuery(); } });
  const q = h("input", { id: "search", placeholder: "search name / experiment", value: sel.q, onchange: (e) => { sel.q = e.target.value; setQuery(); } });
  const compare = h("button", { id: "compare-selected", class: "secondary", onclick: () => {
    location.hash = `#/compare?ids=${[...picked].join(",")}`;
  } }, "Compare selected");
  const csv = h("button", { class: "secondary", id: "csv", onclick: () => exportCsv(rows) }, "CSV");
  const cols = [["", null], ["id", "id"], ["name", "name"], ["state", "state"], ["experiment", null],
    ["tags", null], ["agent", null], ["started", "started"], ["duration", null], ["metric", null]];
  const head = h("tr", {}, cols.map(([label, key]) => h("th", key ? { class: "sortable", onclick: () => {
    order = order === `-${key}` ? key : `-${key}`; setQuery();
  } } : {}, label + (key && order.replace("-", "") === key ? (order.startsWith("-") ? " ↓" : " ↑") : ""))));
  main.replaceChildren(h("h1", {}, "Runs"),
    h("div", { class: "toolbar" }, stateSel, tag, q, compare, csv, total),
    h("div", { class: "card" }, h("table", { id: "runs" }, h("thead", {}, head), body)));
  let rows = [];
  async function load() {
    const p = new URLSearchParams(Object.entries({ ...sel, order, limit: 200 }).filter(([, v]) => v));
    const data = await api("GET", `/runs?${p}`);
    rows = data.runs;
    total.textContent = `${data.total} runs`;
    body.replaceChildren(...rows.map((r) => {
      const m = metricOf(r);
      const end = r.finished || (r.started ? Date.now() / 1000 : null);
      return h("tr", { "data-run": r.id },
        h("td", {}, h("input", { type: "checkbox", checked: picked.has(r.id), "aria-label": `select run ${r.id}`,
          onchange: (e) => (e.target.checked ? picked.add(r.id) : picked.delete(r.id)) })),
        h("td", {}, h("a", { href: `#/run/${r.id}` }, r.id)),
        h("td", { class: "wrap" }, h("a", { href: `#/run/${r.id}`, class: "run-name" }, r.name)),
        h("td", {}, stateBadge(r.state)),
        h("td", {}, r.experiment || (r.kind === "smoke" ? "(smoke)" : "-")),
        h("td", {}, (r.tags || []).join(", ")),
        h("td", {}, r.agent_id ?? "-"),
        h("td", {}, fmtTime(r.started)),
        h("td", {}, fmtDur(end && r.started ? end - r.started : null)),
        h("td", {}, m ? `${m.key} ${fmtNum(m.value)} (best ${fmtNum(m.best)})` : "-"));
    }));
  }
  await load();
  every(main, 3000, load);
}

function exportCsv(rows) {
  const cells = [["id", "name", "state", "experiment", "tags", "agent", "started", "finished"]];
  for (const r of rows) cells.push([r.id, r.name, r.state, r.experiment, (r.tags || []).join(" "),
    r.agent_id ?? "", r.started ?? "", r.finished ?? ""]);
  const text = cells.map((row) => row.map((c) => `"${String(c).replaceAll('"', '""')}"`).join(",")).join("\n");
  const a = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: "runs.csv" });
  a.click();
}

// -- run detail --------------------------------------------------------------------------------
// x of a point {step, epoch, t} on the chosen axis: step, epoch, or seconds since the first point
export function xOf(axis, t0) {
  return (p) => (axis === "epoch" ? p.epoch ?? 0 : axis === "time" ? p.t - t0 : p.step);
}
const XLABEL = { step: "step", epoch: "epoch", time: "seconds" };

function chartsFor(container, series, opts) {
  const keys = Object.keys(series).filter((k) => !k.startsWith("perf/")).sort();
  const lr = keys.find((k) => /(^|\/)lr/.test(k));
  const t0 = Math.min(...Object.values(series).flat().map((p) => p.t || Infinity));
  const x = xOf(opts.axis || "step", t0);
  const xy = (k) => series[k].map((p) => [x(p), p.value]);
  container.replaceChildren(...keys.filter((k) => k !== lr).map((k) => {
    const s = [{ name: k, points: xy(k) }];
    if (lr && k.includes("loss")) s.push({ name: lr, points: xy(lr), right: true, color: "#999" });
    return h("div", { class: "chart", "data-key": k }, h("p", { class: "title" }, k),
      lineChart(s, { ...opts, xLabel: XLABEL[opts.axis || "step"] }));
  }));
}

// Per class: images (row total), recall (diagonal / row), precision (diagonal / column).
function classTable(m) {
  const pct = (a, b) => (b ? `${(100 * a / b).toFixed(1)}%` : "-");
  const predicted = m.classes.map((_, j) => m.matrix.reduce((sum, row) => sum + row[j], 0));
  return h("div", { class: "classes" }, h("table", { id: "confusion-classes" },
    h("thead", {}, h("tr", {}, ["class", "images", "recall", "precision"].map((c) => h("th", {}, c)))),
    h("tbody", {}, m.classes.map((c, i) => {
      const total = m.matrix[i].reduce((a, b) => a + b, 0), hit = m.matrix[i][i];
      return h("tr", {}, h("td", { class: "wrap" }, c), h("td", {}, total),
        h("td", {}, pct(hit, total)), h("td", {}, pct(hit, predicted[i])));
    }))));
}

// The newest confusion matrix per stage (image runs); hidden for runs without one.
function confusionPanel() {
  const stage = h("select", { id: "confusion-stage", hidden: true, onchange: () => draw() });
  const info = h("span", { class: "muted", id: "confusion-info" });
  const box = h("div", { class: "card confusion", id: "confusion" });
  const el = h("section", { id: "confusion-section", hidden: true }, h("h2", {}, "Confusion matrix"),
    h("div", { class: "toolbar" }, stage, info), box);
  let mats = [], seen = "";
  function draw() {
    const m = mats.find((x) => x.stage === stage.value) || mats[0];
    const { right, all, acc } = accuracy(m);
    const summary = `${m.stage}, step ${m.step}: ${right} of ${all} right (${(100 * acc).toFixed(1)}%)`;
    info.textContent = summary;
    const onHover = (text) => { info.textContent = text || summary; };
    box.replaceChildren(h("div", { class: "matrix" }, confusionChart(m, { onHover })), classTable(m));
  }
  function update(list) {
    const sig = list.map((m) => `${m.stage}@${m.step}@${m.t}`).join("|");
    if (!list.length || sig === seen) return;
    seen = sig;
    mats = list;
    const keep = list.some((m) => m.stage === stage.value) ? stage.value
      : (list.find((m) => m.stage === "test") || list[0]).stage;
    stage.replaceChildren(...list.map((m) => h("option", { value: m.stage, selected: m.stage === keep },
      `${m.stage} (step ${m.step})`)));
    stage.value = keep;
    stage.hidden = list.length < 2;
    el.hidden = false;
    draw();
  }
  return { el, update };
}

async function runView(main, parts) {
  const id = Number(parts[0]);
  let run = await api("GET", `/runs/${id}`);
  const series = {};
  const add = (pts) => { for (const p of pts) (series[p.key] ||= []).push(p); };
  add((await api("GET", `/runs/${id}/metrics?max_points=2000`)).points);
  const charts = h("div", { class: "charts", id: "charts" });
  const info = h("div", { class: "grid2", id: "run-info" });
  const log = h("pre", { class: "log", id: "log" });
  const ckpts = h("tbody");
  const msg = h("div", { class: "error", id: "action-error" });
  const tb = h("div", { id: "tb" });
  const confusion = confusionPanel();
  let confusionFinal = false;
  const axis = h("select", { id: "x-axis", onchange: () => chartsFor(charts, series, { axis: axis.value }) },
    ["step", "epoch", "time"].map((a) => h("option", { value: a }, a)));
  const action = (name) => h("button", { id: `action-${name}`, class: name === "cancel" ? "danger" : "secondary",
    onclick: async () => {
      msg.textContent = "";
      try { run = await api("POST", `/runs/${id}/actions/${name}`); renderInfo(); }
      catch (e) { msg.textContent = e.message; }
    } }, name);
  const tbButton = h("button", { id: "open-tb", class: "secondary", onclick: async () => {
    msg.textContent = "";
    try {
      const inst = await api("POST", "/tensorboard", { run_ids: [id] });
      tb.replaceChildren("TensorBoard: ", h("a", { href: inst.url, target: "_blank", rel: "noopener", id: "tb-link" }, inst.url));
      every(main, 60000, () => api("POST", `/tensorboard/${inst.id}/touch`).catch(() => {}));
    } catch (e) { msg.textContent = e.message; }
  } }, "Open TensorBoard");
  function renderInfo() {
    const rows = [["state", stateBadge(run.state)], ["experiment", run.experiment || "-"],
      ["overrides", (run.overrides || []).join(" ") || "-"], ["tags", (run.tags || []).join(", ") || "-"],
      ["agent", run.agent_id ?? "-"], ["attempt", run.attempt], ["step", run.last_step],
      ["created", fmtTime(run.created)], ["started", fmtTime(run.started)], ["finished", fmtTime(run.finished)],
      ["exit code", run.exit_code ?? "-"], ["run dir", run.run_dir]];
    info.replaceChildren(...rows.flatMap(([k, v]) => [h("b", {}, k), h("span", { class: "wrap" }, v)]));
  }
  main.replaceChildren(h("h1", { id: "run-title" }, `Run ${id}: `, run.name),
    h("div", { class: "toolbar" }, action("save"), action("stop"), action("cancel"), tbButton, msg), tb,
    h("div", { class: "card" }, info), confusion.el,
    h("h2", {}, "Metrics"), h("div", { class: "toolbar" }, "x axis ", axis), charts,
    h("h2", {}, "Log"), log,
    h("h2", {}, "Checkpoints"),
    h("div", { class: "card" }, h("table", { id: "checkpoints" }, h("thead", {}, h("tr", {}, h("th", {}, "checkpoint"), h("th", {}, "files"))), ckpts)));
  renderInfo();
  chartsFor(charts, series, { axis: axis.value });
  // A tick that began before the user left stops at its next await (no requests after that).
  const left = () => !main.isConnected;
  async function refreshSlow() {
    const lines = (await api("GET", `/runs/${id}/logs?tail=200`)).lines;
    if (left()) return;
    log.textContent = lines.map((l) => l.line).join("\n");
    log.scrollTop = log.scrollHeight;
    if (!confusionFinal) {  // a finished run's matrices no longer change: fetched once more
      confusionFinal = FINAL_STATES.includes(run.state);
      confusion.update((await api("GET", `/runs/${id}/confusion`)).matrices);
      if (left()) return;
    }
    if (run.external) {  // its checkpoints stay on the machine that ran it
      ckpts.replaceChildren(h("tr", {}, h("td", { class: "muted", colspan: 2 }, "a run started elsewhere: checkpoints are in its run dir")));
      return;
    }
    const cps = (await api("GET", `/runs/${id}/checkpoints`)).checkpoints;
    ckpts.replaceChildren(...cps.map((c) => h("tr", {}, h("td", {}, c.name),
      h("td", { class: "wrap" }, c.files.flatMap((f) => [h("a", { href: `/api/v1/runs/${id}/checkpoints/${encodeURIComponent(c.name)}/${encodeURIComponent(f.name)}`, download: f.name }, f.name), " "])))));
  }
  await refreshSlow();
  every(main, 3000, refreshSlow);
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/runs/${id}/stream`);
  ws.onopen = () => ws.send(JSON.stringify({ token: token() }));
  let skipFirst = true;
  ws.onmessage = (ev) => {
    if (left()) return;
    const m = JSON.parse(ev.data);
    if (m.type === "state") {
      const ended = !FINAL_STATES.includes(run.state) && FINAL_STATES.includes(m.state);
      Object.assign(run, m);
      renderInfo();
      if (ended) refreshSlow();  // the final checkpoints and logs at once, not at the next tick
    }
    if (m.type === "metrics") {
      if (skipFirst) { skipFirst = false; for (const k of Object.keys(series)) series[k] = []; }
      add(m.points);
      for (const k of Object.keys(series)) series[k].sort((a, b) => a.step - b.step);
      chartsFor(charts, series, { axis: axis.value });
    }
  };
  // closing a socket still connecting makes the browser log an error: close it once open
  onLeave(main, () => {
    if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close();
    else ws.close();
  });
}

// -- new run -----------------------------------------------------------------------------------
async function newView(main) {
  const exps = (await api("GET", "/experiments")).experiments;
  const exp = h("select", { id: "experiment" }, exps.map((e) => h("option", { value: e }, e)));
  const ov = h("textarea", { id: "overrides", placeholder: "one override per line, e.g. trainer.max_epochs=5" });
  const name = h("input", { id: "name", placeholder: "optional" });
  const tags = h("input", { id: "tags", placeholder: "comma-separated" });
  const errs = { experiment: h("div", { class: "error", id: "experiment-error" }),
    overrides: h("div", { class: "error", id: "overrides-error" }), form: h("div", { class: "error", id: "form-error" }) };
  const form = h("form", { class: "card", id: "new-run", onsubmit: async (ev) => {
    ev.preventDefault();
    for (const e of Object.values(errs)) e.textContent = "";
    const overrides = ov.value.split("\n").map((s) => s.trim()).filter(Boolean);
    try {
      const run = await api("POST", "/runs", { experiment: exp.value, overrides, name: name.value,
        tags: tags.value.split(",").map((s) => s.trim()).filter(Boolean) });
      location.hash = `#/run/${run.id}`;
    } catch (e) {
      if (!(e instanceof ApiError) || !Array.isArray(e.detail)) { errs.form.textContent = e.message; return; }
      for (const d of e.detail) {
        const field = String((d.loc || []).slice(-1)[0] || "");
        const target = field.startsWith("overrides") ? errs.overrides : field === "experiment" ? errs.experiment : errs.form;
        const m = field.match(/overrides\[(\d+)\]/);
        target.textContent += (m ? `line ${Number(m[1]) + 1} (${overrides[Number(m[1])]}): ` : "") + d.msg + "\n";
      }
    }
  } },
  h("div", { class: "field" }, h("label", { for: "experiment" }, "Experiment"), exp, errs.experiment),
  h("div", { class: "field" }, h("label", { for: "overrides" }, "Overrides"), ov, errs.overrides),
  h("div", { class: "field" }, h("label", { for: "name" }, "Name"), name),
  h("div", { class: "field" }, h("label", { for: "tags" }, "Tags"), tags),
  h("button", { type: "submit", id: "submit" }, "Submit to the queue"), errs.form);
  main.replaceChildren(h("h1", {}, "New run"), form);
}

// -- compare -----------------------------------------------------------------------------------
async function compareView(main, _parts, params) {
  const ids = (params.get("ids") || "").split(",").map(Number).filter(Boolean).slice(0, 6);
  const input = h("input", { id: "compare-ids", value: ids.join(","), placeholder: "run ids, e.g. 3,4" });
  const go = h("button", { onclick: () => { location.hash = `#/compare?ids=${input.value}`; } }, "Compare");
  main.replaceChildren(h("h1", {}, "Compare runs"), h("div", { class: "toolbar" }, input, go));
  if (ids.length < 2) { main.append(h("p", { class: "muted" }, "Pick 2 to 6 runs (select them in the runs table).")); return; }
  const runs = await Promise.all(ids.map((i) => api("GET", `/runs/${i}`)));
  const data = await Promise.all(ids.map((i) => api("GET", `/runs/${i}/metrics?max_points=2000`)));
  const keys = [...new Set(data.flatMap((d) => d.points.map((p) => p.key)))].filter((k) => !k.startsWith("perf/")).sort();
  const keySel = h("select", { id: "compare-key" }, keys.map((k) => h("option", { value: k, selected: k === "train/loss" }, k)));
  const smoothIn = h("input", { id: "smooth", type: "range", min: 0, max: 0.99, step: 0.01, value: 0.6 });
  const logIn = h("input", { id: "logy", type: "checkbox" });
  const axisSel = h("select", { id: "compare-axis" }, ["step", "epoch", "time"].map((a) => h("option", { value: a }, a)));
  const chart = h("div", { class: "chart", id: "compare-chart" });
  const draw = () => {
    const series = runs.map((r, i) => {
      const pts = data[i].points.filter((p) => p.key === keySel.value);
      const x = xOf(axisSel.value, Math.min(...data[i].points.map((p) => p.t)));
      return { name: `run ${r.id}`, color: COLORS[i % 6],
        points: smooth(pts.map((p) => [x(p), p.value]), Number(smoothIn.value)) };
    });
    chart.replaceChildren(h("p", { class: "title" }, keySel.value),
      lineChart(series, { logY: logIn.checked, xLabel: XLABEL[axisSel.value] }));
  };
  for (const c of [keySel, smoothIn, logIn, axisSel]) c.addEventListener("input", draw);
  const cfg = (r) => Object.fromEntries([["experiment", r.experiment],
    ...(r.overrides || []).map((o) => o.split("=")).map(([k, ...v]) => [k, v.join("=")])]);
  const cfgs = runs.map(cfg);
  const allKeys = [...new Set(cfgs.flatMap(Object.keys))].sort();
  const diff = h("table", { class: "diff", id: "config-diff" },
    h("thead", {}, h("tr", {}, h("th", {}, "key"), runs.map((r) => h("th", {}, `run ${r.id}`)))),
    h("tbody", {}, allKeys.map((k) => {
      const vals = cfgs.map((c) => c[k] ?? "");
      const changed = new Set(vals).size > 1;
      return h("tr", { class: changed ? "changed" : "" }, h("td", {}, k), vals.map((v) => h("td", { class: changed ? "changed" : "" }, v)));
    })));
  main.append(h("div", { class: "toolbar" }, "metric ", keySel, " x ", axisSel, " smoothing ", smoothIn, h("label", {}, logIn, " log scale")),
    chart, h("h2", {}, "Config"), h("div", { class: "card" }, diff));
  draw();
}

// -- agents ------------------------------------------------------------------------------------
async function agentsView(main) {
  const body = h("tbody");
  main.replaceChildren(h("h1", {}, "Agents"), h("div", { class: "card" }, h("table", { id: "agents" },
    h("thead", {}, h("tr", {}, ["id", "name", "host", "device", "GPU", "memory", "state", "last heartbeat", "current run"].map((c) => h("th", {}, c)))), body)));
  async function load() {
    const agents = (await api("GET", "/agents")).agents;
    body.replaceChildren(...agents.map((a) => h("tr", {}, h("td", {}, a.id), h("td", {}, a.name), h("td", {}, a.host),
      h("td", {}, a.device), h("td", {}, a.gpu_name || "-"), h("td", {}, a.gpu_memory_mb ? `${a.gpu_memory_mb} MiB` : "-"),
      h("td", {}, stateBadge(a.state)), h("td", {}, fmtDur(Date.now() / 1000 - a.last_heartbeat) + " ago"),
      h("td", {}, a.current_run_id ? h("a", { href: `#/run/${a.current_run_id}` }, a.current_run_id) : "-"))));
  }
  await load();
  every(main, 3000, load);
}

export const VIEWS = { runs: runsView, run: runView, new: newView, compare: compareView, agents: agentsView };
