// Small SVG charts (line and grouped bars) built with DOM calls: no library, no inline style or
// script, so the strict CSP holds. Every value becomes an attribute or a text node, never markup.

const NS = "http://www.w3.org/2000/svg";
const W = 720;
const H = 220;
const M = { top: 12, right: 12, bottom: 28, left: 56 };
export const PALETTE = ["#58a6ff", "#3fb950", "#d29922", "#a371f7", "#f85149", "#39c5cf", "#db61a2", "#8b949e"];

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function title(text) {
  return svg("title", null, text);
}

/** Axis scale: a 1/2/5 × 10^k step giving at most ~5 gridlines, and the top as a whole number of steps. */
export function niceScale(v, integer = false) {
  if (!(v > 0)) return integer ? { max: 1, step: 1 } : { max: 1, step: 0.25 };
  if (integer && v <= 4) return { max: Math.ceil(v), step: 1 };
  const raw = v / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = 10 * p;
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) { step = m * p; break; }
  return { max: step * Math.ceil(v / step - 1e-9), step };
}

function xLabel(ms, bucketSeconds, n) {
  const iso = new Date(ms).toISOString();
  if (bucketSeconds >= 86400) return iso.slice(5, 10);
  return n > 24 ? iso.slice(5, 10) + " " + iso.slice(11, 13) + "h" : iso.slice(11, 16);
}

function frame(buckets, bucketSeconds, scale, fmt) {
  const g = svg("g", { class: "axes" });
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const steps = Math.round(scale.max / scale.step);
  for (let i = 0; i <= steps; i++) {
    const y = M.top + ih - (ih * i) / steps;
    g.appendChild(svg("line", { x1: M.left, x2: W - M.right, y1: y, y2: y, class: "grid" }));
    g.appendChild(svg("text", { x: M.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, fmt(scale.step * i)));
  }
  const n = buckets.length;
  const every = Math.max(1, Math.ceil(n / 8));
  for (let i = 0; i < n; i += every) {
    const x = M.left + (iw * (i + 0.5)) / n;
    g.appendChild(svg("text", { x, y: H - 8, "text-anchor": "middle", class: "tick" }, xLabel(buckets[i], bucketSeconds, n)));
  }
  return g;
}

function legend(series) {
  const box = document.createElement("div");
  box.className = "chart-legend";
  series.forEach((s, i) => {
    const item = document.createElement("span");
    item.className = "chart-legend-item";
    const sw = svg("svg", { width: 14, height: 10, "aria-hidden": "true" },
      svg("line", { x1: 0, x2: 14, y1: 5, y2: 5, stroke: s.color || PALETTE[i % PALETTE.length], "stroke-width": 3,
        "stroke-dasharray": s.dashed ? "3 2" : null }));
    item.appendChild(sw);
    item.appendChild(document.createTextNode(" " + s.label));
    box.appendChild(item);
  });
  return box;
}

function wrap(kind, opts, svgEl, series) {
  const fig = document.createElement("figure");
  fig.className = "chart";
  fig.dataset.testid = opts.testid || "chart";
  fig.dataset.kind = kind;
  fig.dataset.buckets = String(opts.buckets.length);
  const cap = document.createElement("figcaption");
  cap.textContent = opts.title;
  fig.appendChild(cap);
  fig.appendChild(svgEl);
  if (series.length) fig.appendChild(legend(series));
  else {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "No activations in this range.";
    fig.appendChild(p);
  }
  return fig;
}

/**
 * Line chart: one polyline per series over the bucket grid; a null value breaks the line.
 * opts = {title, testid, buckets: [epoch ms], bucketSeconds, series: [{label, values, color, dashed}], fmt}
 */
export function lineChart(opts) {
  const fmt = opts.fmt || ((v) => String(Math.round(v * 100) / 100));
  const n = opts.buckets.length;
  let max = 0;
  for (const s of opts.series) for (const v of s.values) if (typeof v === "number" && v > max) max = v;
  const scale = opts.maxY ? { max: opts.maxY, step: opts.maxY / 4 } : niceScale(max, opts.integer);
  const maxY = scale.max;
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const x = (i) => M.left + (iw * (i + 0.5)) / n;
  const y = (v) => M.top + ih - (ih * v) / maxY;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": opts.title });
  root.appendChild(frame(opts.buckets, opts.bucketSeconds, scale, fmt));
  opts.series.forEach((s, si) => {
    const color = s.color || PALETTE[si % PALETTE.length];
    const g = svg("g", { class: "series", "data-series": s.label });
    let d = "";
    let pen = false;
    s.values.forEach((v, i) => {
      if (typeof v !== "number") { pen = false; return; }
      d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1) + " ";
      pen = true;
    });
    if (d) g.appendChild(svg("path", { d: d.trim(), fill: "none", stroke: color, "stroke-width": 2,
      "stroke-dasharray": s.dashed ? "5 3" : null, class: "line" }));
    s.values.forEach((v, i) => {
      if (typeof v !== "number") return;
      g.appendChild(svg("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: n > 200 ? 1.5 : 3, fill: color,
        class: "pt", "data-i": i, "data-v": v },
        title(`${s.label} · ${new Date(opts.buckets[i]).toISOString().slice(0, 16).replace("T", " ")} UTC: ${fmt(v)}`)));
    });
    root.appendChild(g);
  });
  return wrap("line", opts, root, opts.series);
}

/** Grouped bar chart: one bar per series in each bucket. Same opts as lineChart. */
export function barChart(opts) {
  const fmt = opts.fmt || ((v) => String(Math.round(v * 100) / 100));
  const n = opts.buckets.length;
  const k = Math.max(1, opts.series.length);
  let max = 0;
  for (const s of opts.series) for (const v of s.values) if (typeof v === "number" && v > max) max = v;
  const scale = niceScale(max, opts.integer);
  const maxY = scale.max;
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const slot = iw / n;
  const bw = Math.max(1, (slot * 0.8) / k);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img", "aria-label": opts.title });
  root.appendChild(frame(opts.buckets, opts.bucketSeconds, scale, fmt));
  opts.series.forEach((s, si) => {
    const color = s.color || PALETTE[si % PALETTE.length];
    const g = svg("g", { class: "series", "data-series": s.label });
    s.values.forEach((v, i) => {
      const known = typeof v === "number";
      const val = known ? v : 0;
      const hgt = (ih * val) / maxY;
      // a null value (unknown) is a bar of height 0 whose tooltip says what fmt makes of null
      g.appendChild(svg("rect", { x: (M.left + slot * i + slot * 0.1 + bw * si).toFixed(1), y: (M.top + ih - hgt).toFixed(1),
        width: bw.toFixed(1), height: hgt.toFixed(1), fill: color, class: known ? "cbar" : "cbar unknown", "data-i": i,
        "data-v": known ? val : "" },
        title(`${s.label} · ${new Date(opts.buckets[i]).toISOString().slice(0, 10)}: ${fmt(known ? val : null)}`)));
    });
    root.appendChild(g);
  });
  return wrap("bar", opts, root, opts.series);
}
