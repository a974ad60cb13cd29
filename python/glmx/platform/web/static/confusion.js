// A confusion matrix as an SVG heat map: rows = true class, columns = prediction, colour = the
// share of the row (so rare classes read as well as common ones), counts in the cells, a
// tooltip (<title>) per cell. Past CELLS_MAX classes the cells are one pixel each of a canvas
// image (tens of thousands of SVG elements take seconds to lay out) and hovering reports the
// cell through opts.onHover. Class names go in through textContent only.
const CELLS_MAX = 40;
const NS = "http://www.w3.org/2000/svg";
const WHITE = [255, 255, 255], BLUE = [8, 48, 107];

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

export function heat(frac) {
  const c = WHITE.map((w, i) => Math.round(w + (BLUE[i] - w) * frac));
  return `rgb(${c.join(",")})`;
}

const pct = (f) => `${(100 * f).toFixed(f > 0 && f < 0.001 ? 2 : 1)}%`;
const short = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

const describe = (names, i, j, count, total) =>
  `true ${names[i]}, predicted ${names[j]}: ${count} of ${total} (${pct(total ? count / total : 0)})`;

// doc: {classes: [name], matrix: [[count]]}; opts.onHover(text or null) -> <svg>
export function confusionChart(doc, opts = {}) {
  const names = doc.classes.map(String), m = doc.matrix, n = names.length;
  const cell = n <= 10 ? 36 : n <= 20 ? 26 : 520 / n;
  const font = Math.min(11, Math.max(7, Math.floor(cell * 0.4)));
  const chars = Math.max(...names.map((s) => s.length));
  const labelChars = Math.min(chars, 14);
  const showLabels = cell >= 9;
  const rotate = showLabels && labelChars * font * 0.62 > cell - 2;
  const lw = showLabels ? labelChars * font * 0.62 + 8 : 4;
  const L = 18 + lw, T = 8, grid = n * cell;
  const B = 20 + (rotate ? lw * 0.75 : font + 8), legendH = 34;
  const W = L + grid + 12, H = T + grid + B + legendH;
  const svg = el("svg", { viewBox: `0 0 ${W.toFixed(0)} ${H.toFixed(0)}`, role: "img",
    "aria-label": `confusion matrix, ${n} classes`, "data-classes": n });
  const totals = m.map((row) => row.reduce((a, b) => a + b, 0));
  if (n > CELLS_MAX) svg.append(pixelCells(names, m, totals, { L, T, grid, cell }, opts.onHover));
  else for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const count = m[i][j], frac = totals[i] ? count / totals[i] : 0;
      const g = el("g", { class: "cell" });
      const rect = el("rect", { x: L + j * cell, y: T + i * cell, width: cell, height: cell,
        fill: heat(frac), stroke: "#e3e7eb", "stroke-width": 0.5, "data-cell": `${i},${j}`,
        "data-count": count });
      rect.append(el("title", {}, describe(names, i, j, count, totals[i])));
      g.append(rect);
      if (cell >= 18 && count > 0) {
        g.append(el("text", { x: L + j * cell + cell / 2, y: T + i * cell + cell / 2 + font * 0.35,
          "text-anchor": "middle", "font-size": font, fill: frac > 0.5 ? "#fff" : "#1d232a",
          "pointer-events": "none" }, count));
      }
      svg.append(g);
    }
  }
  if (showLabels) {
    // a label is <g class=...><title>full name</title><text>shortened</text></g>
    const label = (cls, attrs, name) => {
      const g = el("g", { class: cls });
      g.append(el("title", {}, name), el("text", { "font-size": font, ...attrs }, short(name, 14)));
      svg.append(g);
    };
    names.forEach((name, i) => {
      label("row-label", { x: L - 4, y: T + i * cell + cell / 2 + font * 0.35, "text-anchor": "end" }, name);
      const x = L + i * cell + cell / 2, y = T + grid + font + 4;
      label("col-label", rotate
        ? { x, y: y - font / 2, "text-anchor": "end", transform: `rotate(-45 ${x} ${y - font / 2})` }
        : { x, y, "text-anchor": "middle" }, name);
    });
  }
  svg.append(el("text", { x: 10, y: T + grid / 2, "text-anchor": "middle", "font-size": 10,
    fill: "#66707a", transform: `rotate(-90 10 ${T + grid / 2})` }, "true class"));
  svg.append(el("text", { x: L + grid / 2, y: T + grid + B - 4, "text-anchor": "middle",
    "font-size": 10, fill: "#66707a" }, "predicted class"));
  // legend: the colour scale, 0 to 100% of the true class
  const ly = T + grid + B + 6, lx = L, lwid = Math.min(grid, 200), steps = 10;
  for (let k = 0; k < steps; k++) {
    svg.append(el("rect", { x: lx + (k * lwid) / steps, y: ly, width: lwid / steps + 0.5, height: 8,
      fill: heat((k + 0.5) / steps) }));
  }
  svg.append(el("text", { x: lx, y: ly + 20, "font-size": 9, fill: "#66707a" }, "0%"));
  svg.append(el("text", { x: lx + lwid, y: ly + 20, "font-size": 9, fill: "#66707a",
    "text-anchor": "end" }, "100% of the true class"));
  return svg;
}

// One pixel per cell on a canvas, shown as an <image> (pixelated); the hovered cell is reported.
function pixelCells(names, m, totals, { L, T, grid, cell }, onHover) {
  const n = names.length, canvas = document.createElement("canvas");
  canvas.width = n; canvas.height = n;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    const frac = totals[i] ? m[i][j] / totals[i] : 0, k = (i * n + j) * 4;
    WHITE.forEach((w, c) => { img.data[k + c] = Math.round(w + (BLUE[c] - w) * frac); });
    img.data[k + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const image = el("image", { x: L, y: T, width: grid, height: grid, href: canvas.toDataURL("image/png"),
    preserveAspectRatio: "none", "image-rendering": "pixelated", class: "cells", "data-cells": n * n });
  if (onHover) {
    image.addEventListener("mousemove", (ev) => {
      const box = image.getBoundingClientRect();
      const j = Math.min(n - 1, Math.floor(((ev.clientX - box.left) / box.width) * n));
      const i = Math.min(n - 1, Math.floor(((ev.clientY - box.top) / box.height) * n));
      onHover(describe(names, i, j, m[i][j], totals[i]));
    });
    image.addEventListener("mouseleave", () => onHover(null));
  }
  const g = el("g");
  g.append(image, el("rect", { x: L, y: T, width: grid, height: grid, fill: "none", stroke: "#d9dee3" }));
  return g;
}

// Sum of the diagonal over the sum of all counts.
export function accuracy(doc) {
  let right = 0, all = 0;
  doc.matrix.forEach((row, i) => row.forEach((c, j) => { all += c; if (i === j) right += c; }));
  return all ? { right, all, acc: right / all } : { right, all, acc: 0 };
}
