// The fleet page (/fleet): per bot and framework, activity, failures, latency, tokens and cost over
// a chosen range, and the latest failures linking to their traces. Data from /api/fleet/*.
import { getJSON, qs, enc } from "./api.js";
import { h, clear, badge, fmtCost, fmtTokens, fmtDuration } from "./dom.js";
import { lineChart, barChart, PALETTE } from "./charts.js";

const RANGES = [["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]];

function fwLabel(fw) {
  return fw === "chapter2" ? "chapter2" : "ChapterX";
}

function seriesLabel(s) {
  return `${s.bot || "(no bot)"} (${fwLabel(s.framework)})`;
}

function pct(v) {
  return typeof v === "number" ? (v * 100).toFixed(v < 0.1 ? 1 : 0) + "%" : "–";
}

/** Fleet state lives in the URL: range, bot, framework (and `until` to pin the grid, for links). */
function fleetParams(p) {
  const out = { range: p.get("range") || "24h" };
  for (const k of ["bot", "framework", "until"]) if (p.get(k)) out[k] = p.get(k);
  return out;
}

function select(id, label, options, value, onchange) {
  const sel = h("select", { id, "aria-label": label, onchange });
  for (const [v, text] of options) sel.appendChild(h("option", { value: v }, text));
  sel.value = value || "";
  return sel;
}

export async function showFleet(main, p, navigate) {
  const fp = fleetParams(p);
  const query = qs(fp);
  const [bots, hourly, daily, failures] = await Promise.all([
    getJSON("/api/fleet/bots" + qs({ range: fp.range, framework: fp.framework, until: fp.until })),
    getJSON("/api/fleet/hourly" + query),
    getJSON("/api/fleet/daily" + query),
    getJSON("/api/fleet/failures" + qs({ range: fp.range, bot: fp.bot, until: fp.until, limit: 20 })),
  ]);
  clear(main);
  const go = (changes) => {
    const next = { ...fp, ...changes };
    for (const k of Object.keys(next)) if (!next[k]) delete next[k];
    navigate("/fleet" + qs(next));
  };
  const botOptions = [["", "All bots"], ...bots.bots.map((b) => [b.bot, b.bot])];
  const seen = new Set();
  const uniqueBots = botOptions.filter(([v]) => (seen.has(v) ? false : (seen.add(v), true)));
  main.appendChild(h("div", { className: "fleet-controls", dataset: { testid: "fleet-controls" } },
    h("h1", null, "Fleet"),
    select("fleet-range", "Range", RANGES, fp.range, (ev) => go({ range: ev.target.value })),
    select("fleet-framework", "Framework", [["", "All frameworks"], ["chapterx", "ChapterX"], ["chapter2", "chapter2"]],
      fp.framework, (ev) => go({ framework: ev.target.value })),
    select("fleet-bot", "Bot", uniqueBots, fp.bot, (ev) => go({ bot: ev.target.value })),
  ));
  main.appendChild(summaryTable(bots.bots.filter((b) => !fp.bot || b.bot === fp.bot), go));

  const color = colorFor([...hourly.series, ...daily.series]);
  const hs = hourly.series;
  const base = { buckets: hourly.buckets, bucketSeconds: hourly.bucketSeconds };
  const charts = h("div", { className: "charts" });
  charts.appendChild(lineChart({ ...base, title: "Activations per hour", testid: "chart-activations",
    series: hs.map((s) => ({ label: seriesLabel(s), values: s.activations, color: color(s) })), integer: true, fmt: (v) => String(Math.round(v)) }));
  charts.appendChild(lineChart({ ...base, title: "Failure rate per hour", testid: "chart-failure-rate", maxY: 1,
    series: hs.map((s) => ({ label: seriesLabel(s), values: s.failureRate, color: color(s) })), fmt: pct }));
  charts.appendChild(lineChart({ ...base, title: "Duration per hour (p95 solid, p50 dashed)", testid: "chart-duration",
    series: hs.flatMap((s) => [
      { label: seriesLabel(s) + " p95", values: s.p95Ms, color: color(s) },
      { label: seriesLabel(s) + " p50", values: s.p50Ms, color: color(s), dashed: true },
    ]), fmt: fmtDuration }));
  const dbase = { buckets: daily.buckets, bucketSeconds: daily.bucketSeconds };
  charts.appendChild(barChart({ ...dbase, title: "Tokens per day (input + output)", testid: "chart-tokens",
    series: daily.series.map((s) => ({ label: seriesLabel(s), values: s.inputTokens.map((v, i) => v + s.outputTokens[i]), color: color(s) })),
    fmt: fmtTokens }));
  charts.appendChild(barChart({ ...dbase, title: "Cost per day (USD)", testid: "chart-cost",
    series: daily.series.map((s) => ({ label: seriesLabel(s), values: s.costUsd, color: color(s) })), fmt: costText }));
  main.appendChild(charts);
  main.appendChild(failureList(failures.failures, navigate));
}

/** A cost: "—" when unknown (null: activations, none of which reported a cost), never "$0". */
function costText(v) {
  return typeof v === "number" ? fmtCost(v) || "$0" : "—";
}

/** The table's cost cell: unknown says so; a partly priced total says how many activations it covers. */
function costCell(b) {
  const priced = b.pricedActivations || 0;
  if (b.costUsd === null || b.costUsd === undefined) {
    return h("td", { className: "num unknown", title: "No activation in this range reported a cost", dataset: { testid: "fleet-cost" } }, "—");
  }
  const partial = priced < b.activations;
  return h("td", { className: "num", dataset: { testid: "fleet-cost" },
    title: partial ? `Cost of the ${priced} of ${b.activations} activations that reported one` : null },
  costText(b.costUsd), partial ? h("span", { className: "priced" }, ` (${priced} of ${b.activations} priced)`) : null);
}

function colorFor(series) {
  const keys = [];
  for (const s of series) {
    const k = s.bot + "\u0000" + s.framework;
    if (!keys.includes(k)) keys.push(k);
  }
  keys.sort();
  return (s) => PALETTE[keys.indexOf(s.bot + "\u0000" + s.framework) % PALETTE.length];
}

function summaryTable(rows, go) {
  const table = h("table", { className: "fleet-table", dataset: { testid: "fleet-bots" } },
    h("thead", null, h("tr", null, ...["Bot", "Framework", "Activations", "Failures", "Failure rate", "Cost", "Last activation"].map((t) => h("th", null, t)))));
  const body = h("tbody");
  for (const b of rows) {
    body.appendChild(h("tr", { dataset: { testid: "fleet-bot-row", bot: b.bot, framework: b.framework } },
      h("td", null, h("a", { href: "/fleet" + qs({ bot: b.bot }), onclick: (ev) => { ev.preventDefault(); go({ bot: b.bot }); } }, b.bot || "(no bot)")),
      h("td", null, badge(fwLabel(b.framework), b.framework === "chapter2" ? "ch2" : "cx")),
      h("td", { className: "num" }, String(b.activations)),
      h("td", { className: "num" + (b.failures ? " fail" : "") }, String(b.failures)),
      h("td", { className: "num" }, pct(b.failureRate)),
      costCell(b),
      h("td", null, b.lastActivation ? new Date(b.lastActivation).toLocaleString() : "never"),
    ));
  }
  if (!rows.length) body.appendChild(h("tr", null, h("td", { colspan: 7, className: "empty" }, "No bots in the index yet.")));
  table.appendChild(body);
  return table;
}

function failureList(rows, navigate) {
  const box = h("section", { className: "fleet-failures", dataset: { testid: "fleet-failures" } }, h("h2", null, "Latest failures"));
  if (!rows.length) {
    box.appendChild(h("p", { className: "empty" }, "No failed activations in this range."));
    return box;
  }
  const list = h("table", { className: "fleet-table" },
    h("thead", null, h("tr", null, ...["When", "Bot", "Framework", "Channel", "Error", "Trace"].map((t) => h("th", null, t)))));
  const body = h("tbody");
  for (const f of rows) {
    const href = "/trace/" + enc(f.traceId);
    body.appendChild(h("tr", { dataset: { testid: "fleet-failure", traceId: f.traceId } },
      h("td", null, new Date(f.timestamp).toLocaleString()),
      h("td", null, f.bot),
      h("td", null, fwLabel(f.framework)),
      h("td", null, f.channelId || ""),
      h("td", { className: "error-text" }, (f.error || "").slice(0, 200)),
      h("td", null, h("a", { href, className: "trace-link", dataset: { testid: "failure-link", traceId: f.traceId },
        onclick: (ev) => { if (ev.button !== 0 || ev.metaKey || ev.ctrlKey) return; ev.preventDefault(); navigate(href); } }, f.traceId)),
    ));
  }
  list.appendChild(body);
  box.appendChild(list);
  return box;
}
