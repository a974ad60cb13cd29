// A small SVG line chart: several series, optional log scale, optional right axis.
// No dependencies; text goes in through textContent only.
const NS = "http://www.w3.org/2000/svg";
export const COLORS = ["#2266cc", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#1098ad"];

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function fmt(v) {
  if (!Number.isFinite(v)) return "";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

function ticks(lo, hi, n, log) {
  if (log) {
    const out = [];
    for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++) out.push(10 ** p);
    return out.filter((t) => t >= lo * 0.999 && t <= hi * 1.001);
  }
  const step = (hi - lo) / n || 1;
  return Array.from({ length: n + 1 }, (_, i) => lo + i * step);
}

// Debiased exponential moving average (TensorBoard's smoothing), weight in [0, 1).
export function smooth(points, weight) {
  if (!weight) return points;
  let last = 0, n = 0;
  return points.map(([x, y]) => {
    last = last * weight + (1 - weight) * y;
    n += 1;
    return [x, last / (1 - weight ** n)];
  });
}

function extent(series, log) {
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const [, y] of s.points) {
    if (log && y <= 0) continue;
    lo = Math.min(lo, y); hi = Math.max(hi, y);
  }
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) { lo = log ? lo / 2 : lo - 1; hi = log ? hi * 2 : hi + 1; }
  return [lo, hi];
}

// series: [{name, points: [[x, y]], right?: bool}]; opts: {logY, xLabel}
export function lineChart(series, opts = {}) {
  const W = 420, H = 240, L = 52, R = series.some((s) => s.right) ? 52 : 12, T = 10, B = 42;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  const left = series.filter((s) => !s.right), right = series.filter((s) => s.right);
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const x0 = xs.length ? Math.min(...xs) : 0, x1 = xs.length ? Math.max(...xs) : 1;
  const sx = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const scale = (lo, hi, log) => (y) => {
    const f = log ? (Math.log10(y) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1)
                  : (y - lo) / (hi - lo || 1);
    return H - B - f * (H - T - B);
  };
  const [ly0, ly1] = extent(left, opts.logY);
  const syL = scale(ly0, ly1, opts.logY);
  const [ry0, ry1] = extent(right, false);
  const syR = scale(ry0, ry1, false);
  svg.append(el("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fff",
    stroke: "#d9dee3" }));
  for (const t of ticks(ly0, ly1, 4, opts.logY)) {
    const y = syL(t);
    svg.append(el("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#eef0f3" }));
    svg.append(el("text", { x: L - 4, y: y + 3, "text-anchor": "end", "font-size": 10 }, fmt(t)));
  }
  if (right.length) for (const t of ticks(ry0, ry1, 4, false)) {
    svg.append(el("text", { x: W - R + 4, y: syR(t) + 3, "font-size": 10, fill: "#666" }, fmt(t)));
  }
  for (const t of ticks(x0, x1, 4, false)) {
    svg.append(el("text", { x: sx(t), y: H - B + 14, "text-anchor": "middle", "font-size": 10 },
      fmt(x1 - x0 > 10 ? Math.round(t) : Math.round(t * 100) / 100)));
  }
  svg.append(el("text", { x: (L + W - R) / 2, y: H - 16, "text-anchor": "middle",
    "font-size": 10, fill: "#666" }, opts.xLabel || "step"));
  series.forEach((s, i) => {
    const sy = s.right ? syR : syL;
    const pts = s.points.filter(([, y]) => Number.isFinite(y) && (!opts.logY || s.right || y > 0));
    if (!pts.length) return;
    const d = pts.map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
    svg.append(el("path", { d: d.join(""), fill: "none", stroke: s.color || COLORS[i % 6],
      "stroke-width": 1.6, "stroke-dasharray": s.right ? "4 3" : "none",
      "data-series": s.name, "data-points": pts.length }));
  });
  let lx = L + 4;
  series.forEach((s, i) => {
    svg.append(el("rect", { x: lx, y: H - 10, width: 10, height: 3, fill: s.color || COLORS[i % 6] }));
    const label = el("text", { x: lx + 13, y: H - 6, "font-size": 10 }, s.name);
    svg.append(label);
    lx += 22 + 6 * s.name.length;
  });
  return svg;
}
