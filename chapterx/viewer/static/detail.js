// Trace detail view (ChapterX activation traces and chapter2 replies). Text only, never HTML.
import { getJSON, enc } from "./api.js";
import { h, badge, section, fmtTime, fmtTokens, fmtCost, fmtDuration, pretty, text } from "./dom.js";
import { openModal, openModalLoading, openModalError } from "./modal.js";

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
const BODY_TITLES = {
  request: "LLM Request",
  response: "LLM Response",
  "membrane-request": "Membrane Request",
  "membrane-response": "Membrane Response",
};

export async function openBody(kind, ref, label) {
  const title = `${label || BODY_TITLES[kind]}: ${ref}`;
  openModalLoading(title);
  try {
    const data = await getJSON(`/api/${kind}/${enc(ref)}`);
    openModal(title, data, kind);
  } catch (err) {
    openModalError(title, err.message);
  }
}

function stat(label, value, testid) {
  return h("div", { className: "stat", dataset: testid ? { testid } : undefined }, h("div", { className: "stat-label" }, label), h("div", { className: "stat-value" }, value));
}

function sum(list, fn) {
  return (list || []).reduce((a, x) => a + (Number(fn(x)) || 0), 0);
}

function actualUsage(trace) {
  const calls = trace.llmCalls || [];
  return {
    input: sum(calls, (c) => c.tokenUsage && c.tokenUsage.inputTokens),
    output: sum(calls, (c) => c.tokenUsage && c.tokenUsage.outputTokens),
    cacheRead: sum(calls, (c) => c.tokenUsage && c.tokenUsage.cacheReadTokens),
    cacheWrite: sum(calls, (c) => c.tokenUsage && c.tokenUsage.cacheCreationTokens),
  };
}

function traceCost(trace) {
  if (typeof trace.cost === "number") return trace.cost;
  if (trace.cost && typeof trace.cost.total === "number") return trace.cost.total;
  if (typeof trace.costUsd === "number") return trace.costUsd;
  const calls = (trace.llmCalls || []).filter((c) => typeof c.cost === "number");
  return calls.length ? sum(calls, (c) => c.cost) : null;
}

export function renderTrace(trace) {
  const isCh2 = trace.framework === "chapter2";
  const outcome = trace.outcome;
  const cb = trace.contextBuild || {};
  const usage = actualUsage(trace);
  const cost = traceCost(trace);
  const root = h("div", { className: "trace", dataset: { testid: "trace-detail", traceId: text(trace.traceId) } });
  const firstReq = (trace.llmCalls || []).map((c) => (c.requestBodyRefs && c.requestBodyRefs[0]) || c.requestBodyRef).find(Boolean);
  root.appendChild(h("div", { className: "trace-head" },
    h("h1", null, "Trace: ", h("code", { dataset: { testid: "trace-id" } }, text(trace.traceId))),
    badge(isCh2 ? "chapter2" : "ChapterX", isCh2 ? "ch2" : "cx"),
    trace.botId ? badge(text(trace.botId), "bot") : null,
    h("span", { className: "time" }, fmtTime(trace.timestamp)),
    firstReq ? h("button", { type: "button", dataset: { testid: "view-request" }, onclick: () => openBody("request", firstReq) }, "📤 View Request") : null,
    h("button", { type: "button", onclick: (ev) => copyLink(ev.currentTarget, trace.traceId) }, "📋 Copy Link"),
  ));
  const tokensLabel = cb.tokenEstimates ? `~${fmtTokens(cb.tokenEstimates.total)} est.` : "";
  const actual = usage.input + usage.output ? `${fmtTokens(usage.input)} in / ${fmtTokens(usage.output)} out` : "";
  root.appendChild(h("div", { className: "stats-grid" },
    stat("Trigger", text(trace.activation && trace.activation.reason) || "—"),
    stat("Channel", (trace.isThread ? "thread " : "") + text(trace.channelId)),
    stat("Messages", text(cb.messagesIncluded ?? "—")),
    stat("Tokens", [tokensLabel, actual].filter(Boolean).join(" · ") || "—"),
    stat("LLM Calls", String((trace.llmCalls || []).length)),
    stat("Duration", fmtDuration(trace.durationMs) || "—"),
    stat("Cost", cost === null || cost === undefined ? "—" : fmtCost(cost), "cost"),
    stat("Outcome", outcome ? (outcome.success ? "✓ Success" : "✗ Failed") : (trace.status ? text(trace.status) : "no outcome"), "outcome-stat"),
    trace.machine ? stat("Machine", text(trace.machine), "machine") : null,
  ));
  if (isCh2) root.appendChild(chapter2Sections(trace));
  if (cb.tokenEstimates) root.appendChild(section("Token Breakdown", tokenBreakdown(trace, usage), { open: true, testid: "tokens" }));
  if (trace.config) root.appendChild(section("⚙️ Bot Configuration", configView(trace.config), { testid: "config" }));
  if (Array.isArray(trace.rawDiscordMessages)) root.appendChild(section(`Raw Discord Messages (${trace.rawDiscordMessages.length})`, rawMessages(trace), { testid: "raw-messages" }));
  if (Array.isArray(cb.messages)) root.appendChild(section(`Context Messages (${cb.messages.length})`, contextMessages(cb), { testid: "context-messages" }));
  if (!isCh2) root.appendChild(section(`LLM Calls (${(trace.llmCalls || []).length})`, llmCalls(trace), { open: true, testid: "llm-calls" }));
  if ((trace.toolExecutions || []).length) root.appendChild(section(`Tool Executions (${trace.toolExecutions.length})`, toolExecutions(trace), { testid: "tools" }));
  if (!isCh2 || (trace.logs || []).length) root.appendChild(section(`Console Logs (${(trace.logs || []).length})`, logsView(trace.logs || []), { testid: "logs" }));
  root.appendChild(section("Outcome", outcomeView(trace), { open: true, testid: "outcome" }));
  return root;
}

async function copyLink(btn, id) {
  const url = location.origin + "/trace/" + enc(id);
  try {
    await navigator.clipboard.writeText(url);
    btn.textContent = "✓ Copied";
  } catch (e) {
    btn.textContent = url;
  }
}

function tokenBreakdown(trace, usage) {
  const cb = trace.contextBuild;
  const est = cb.tokenEstimates;
  const total = Number(est.total) || 0;
  const parts = [["System", est.system, "sys"], ["Messages", est.messages, "msg"], ["Images", est.images, "img"], ["Tools", est.tools, "tool"]];
  const bar = h("div", { className: "bar" });
  for (const [, value, cls] of parts) {
    const seg = h("div", { className: "bar-seg seg-" + cls });
    seg.style.width = (total > 0 ? (100 * (Number(value) || 0)) / total : 0) + "%";
    bar.appendChild(seg);
  }
  const legend = h("div", { className: "legend" }, parts.map(([label, value, cls]) => h("span", { className: "legend-item" }, h("span", { className: "swatch seg-" + cls }), `${label}: ${fmtTokens(Number(value) || 0)}`)));
  const cacheMsg = (cb.messages || []).find((m) => m.hasCacheControl);
  const cache = h("div", { className: "cache-info" },
    h("strong", null, "Cache: "),
    cb.cacheMarker ? `marker …${String(cb.cacheMarker).slice(-8)}` : "no marker",
    cacheMsg ? ` at #${cacheMsg.position} (${text(cacheMsg.participant)})` : "",
    usage.cacheRead || usage.cacheWrite ? ` · created ${fmtTokens(usage.cacheWrite)}, read ${fmtTokens(usage.cacheRead)} (all calls)` : " · No caching");
  return h("div", null, bar, legend,
    cb.didTruncate ? h("div", { className: "warn" }, `⚠ ${text(cb.messagesRolledOff)} messages rolled off (${text(cb.truncateReason)})`) : null,
    h("div", { className: "actual" }, `Actual usage: ${usage.input} input, ${usage.output} output, ${usage.cacheRead} cache read, ${usage.cacheWrite} cache created`),
    cache);
}

const CONFIG_KEYS = ["model", "continuation_model", "mode", "temperature", "max_tokens", "tools_enabled", "inline_tool_execution",
  "preserve_thinking_context", "tool_plugins", "rolling_threshold", "recency_window_messages", "prompt_caching",
  "continuation_max_tokens", "message_history_format"];

function configView(config) {
  const cards = h("div", { className: "config-grid" });
  for (const key of CONFIG_KEYS) {
    if (!(key in config)) continue;
    const v = config[key];
    cards.appendChild(h("div", { className: "config-card" }, h("div", { className: "k" }, key), h("div", { className: "v" }, typeof v === "object" ? pretty(v) : String(v))));
  }
  return h("div", null, cards, h("button", { type: "button", dataset: { testid: "view-config" }, onclick: () => openModal("Bot Configuration", config, "config") }, "View Full Config JSON"));
}

function expandable(head, body, attrs) {
  return h("details", { className: "row", ...(attrs || {}) }, h("summary", null, head), h("div", { className: "row-body" }, body));
}

function rawMessages(trace) {
  const trig = trace.triggeringMessageId;
  return h("div", { className: "rows" }, trace.rawDiscordMessages.map((m) => {
    const author = m.author || {};
    const content = text(m.content);
    const att = Array.isArray(m.attachments) ? m.attachments.length : 0;
    return expandable(
      [h("strong", { className: "author" }, text(author.displayName || author.username || author.id)), " ", h("span", { className: "preview-inline" }, content.slice(0, 80)), m.id === trig ? badge("TRIGGER", "trigger") : null],
      [h("div", { className: "meta" }, `${text(m.id)} | ${fmtTime(m.timestamp)}` + (att ? ` | ${att} attachment(s)` : "")), h("pre", { className: "text" }, content)],
      { dataset: { testid: "raw-message" } });
  }));
}

function contextMessages(cb) {
  return h("div", { className: "rows" }, cb.messages.map((m) => expandable(
    [h("span", { className: "pos" }, `#${text(m.position)}`), " ", h("strong", { className: "author" }, text(m.participant)), " ",
      h("span", { className: "preview-inline" }, text(m.contentPreview).slice(0, 60)),
      m.isTrigger ? badge("TRIGGER", "trigger") : null, m.hasCacheControl ? badge("📍 CACHE", "cache") : null,
      h("span", { className: "tk" }, `~${text(m.tokenEstimate)} tk`)],
    [h("div", { className: "meta" }, `${m.discordMessageId === null ? "(no Discord id)" : text(m.discordMessageId)}` +
      (m.imageCount ? ` | ${m.imageCount} image(s)` : "") + ((m.transformations || []).length ? ` | ${m.transformations.join(", ")}` : "")),
     h("pre", { className: "text" }, text(m.content ?? m.contentPreview))],
    { className: "row" + (m.hasCacheControl ? " cached" : ""), dataset: { testid: "context-message" } })));
}

function refsOf(call, many, one) {
  const list = Array.isArray(call[many]) && call[many].length ? call[many] : (call[one] ? [call[one]] : []);
  return list.filter((r) => typeof r === "string" && r);
}

function llmCalls(trace) {
  const calls = trace.llmCalls || [];
  if (!calls.length) return h("p", { className: "empty" }, "No LLM calls.");
  return h("div", { className: "rows" }, calls.map((c, i) => {
    const reqs = refsOf(c, "requestBodyRefs", "requestBodyRef");
    const resps = refsOf(c, "responseBodyRefs", "responseBodyRef");
    const btns = h("div", { className: "buttons" });
    reqs.forEach((r, j) => btns.appendChild(h("button", { type: "button", dataset: { testid: "open-request" }, onclick: () => openBody("request", r) }, reqs.length > 1 ? `Req ${j + 1}` : "Request")));
    resps.forEach((r, j) => btns.appendChild(h("button", { type: "button", dataset: { testid: "open-response" }, onclick: () => openBody("response", r) }, resps.length > 1 ? `Resp ${j + 1}` : "Response")));
    if (c.membraneRequestRef) btns.appendChild(h("button", { type: "button", dataset: { testid: "open-membrane-request" }, onclick: () => openBody("membrane-request", c.membraneRequestRef) }, "Membrane Req"));
    if (c.membraneResponseRef) btns.appendChild(h("button", { type: "button", dataset: { testid: "open-membrane-response" }, onclick: () => openBody("membrane-response", c.membraneResponseRef) }, "Membrane Resp"));
    const u = c.tokenUsage || {};
    const statsLine = [
      text(c.model), fmtDuration(c.durationMs),
      u.inputTokens !== undefined ? `in ${u.inputTokens}` : "", u.outputTokens !== undefined ? `out ${u.outputTokens}` : "",
      u.cacheReadTokens ? `cache read ${u.cacheReadTokens}` : "", u.cacheCreationTokens ? `cache created ${u.cacheCreationTokens}` : "",
      c.response && c.response.stopReason ? `stop: ${c.response.stopReason}` : (c.stopReason ? `stop: ${c.stopReason}` : ""),
      c.response && c.response.toolUseCount ? `${c.response.toolUseCount} tool(s)` : "",
      typeof c.cost === "number" ? fmtCost(c.cost) : "",
    ].filter(Boolean).join(" · ");
    return h("div", { className: "call", dataset: { testid: "llm-call" } },
      h("div", { className: "call-head" }, h("strong", null, `Call #${c.depth ?? i}`), btns),
      h("div", { className: "meta" }, statsLine),
      c.error ? h("div", { className: "error" }, "Error: " + text(c.error.message || pretty(c.error))) : null);
  }));
}

function toolExecutions(trace) {
  return h("div", { className: "rows" }, trace.toolExecutions.map((t) => h("div", { className: "call", dataset: { testid: "tool" } },
    h("div", { className: "call-head" }, h("strong", null, text(t.toolName)), " ", fmtDuration(t.durationMs), t.error ? badge("error", "fail") : null, t.llmCallId ? h("span", { className: "meta" }, ` (call ${text(t.llmCallId)})`) : null),
    h("div", { className: "k" }, "Input"), h("pre", { className: "json" }, pretty(t.input)),
    h("div", { className: "k" }, "Output" + (t.outputTruncated ? " (truncated)" : "")), h("pre", { className: "text" }, typeof t.output === "string" ? t.output : pretty(t.output)),
    t.error ? h("div", { className: "error" }, text(typeof t.error === "string" ? t.error : t.error.message || pretty(t.error))) : null)));
}

function logsView(logs) {
  const filters = [["All", null], ["Errors", "error"], ["Warnings", "warn"], ["Info", "info"], ["Debug", "debug"], ["Trace", "trace"]];
  const list = h("div", { className: "logs", dataset: { testid: "log-list" } });
  const rows = logs.map((l) => {
    const lvl = LEVELS.includes(l.level) ? l.level : "info";
    return h("div", { className: "log log-" + lvl, dataset: { testid: "log-row", level: lvl } },
      h("span", { className: "log-t" }, "+" + ((Number(l.offsetMs) || 0) / 1000).toFixed(2) + "s"), " ",
      h("span", { className: "log-l" }, lvl.toUpperCase()), " ",
      h("span", { className: "log-m" }, text(l.message)),
      l.data !== undefined && l.data !== null ? h("span", { className: "log-d" }, " " + JSON.stringify(l.data)) : null);
  });
  rows.forEach((r) => list.appendChild(r));
  const bar = h("div", { className: "log-filters" });
  const apply = (min, btn) => {
    for (const b of bar.children) b.classList.toggle("active", b === btn);
    const minIdx = min ? LEVELS.indexOf(min) : -1;
    for (const r of rows) r.hidden = minIdx >= 0 && LEVELS.indexOf(r.dataset.level) < minIdx;
  };
  for (const [label, min] of filters) {
    const btn = h("button", { type: "button", className: "log-btn" + (min === null ? " active" : ""), dataset: { testid: "log-filter-" + label.toLowerCase() } }, min && min !== "trace" ? `≥ ${label}` : label);
    btn.addEventListener("click", () => apply(min, btn));
    bar.appendChild(btn);
  }
  return h("div", null, bar, list);
}

function outcomeView(trace) {
  const o = trace.outcome;
  if (!o) return h("p", { className: "warn", dataset: { testid: "outcome" } }, trace.status === "aborted" ? "Aborted: the process ended before the activation finished." : "No outcome recorded (deferred retry, aborted, or still running).");
  if (o.success) {
    const ids = o.sentMessageIds || [];
    return h("div", { dataset: { testid: "outcome" } },
      h("div", { className: "ok" }, `✓ Success — response (${text(o.responseText).length} chars)`),
      h("pre", { className: "text", dataset: { testid: "response-text" } }, text(o.responseText)),
      ids.length ? h("div", { className: "meta" }, `Sent ${ids.length} message(s): ${ids.join(", ")}`) : null,
      Array.isArray(o.sentMessages) && o.sentMessages.length ? h("div", { className: "meta" }, `Sent ${o.sentMessages.length} message(s)`) : null);
  }
  const err = o.error || {};
  return h("div", { dataset: { testid: "outcome" } },
    h("div", { className: "error" }, `✗ Failed${err.phase ? " in " + text(err.phase) : ""}: ${text(err.message)}`),
    err.stack ? h("pre", { className: "text" }, text(err.stack)) : null);
}

// ---------------------------------------------------------------------------------------- chapter2

function chapter2Sections(trace) {
  const c = trace.chapter2 || {};
  const box = h("div", { className: "ch2" });
  const calls = trace.llmCalls || [];
  box.appendChild(section("Prompt", c.prompt === null || c.prompt === undefined
    ? h("p", { className: "empty" }, "No prompt recorded in these spans.")
    : h("pre", { className: "text prompt", dataset: { testid: "ch2-prompt" } }, String(c.prompt)), { open: true, testid: "ch2-prompt-section" }));
  box.appendChild(section("Continuation", c.continuation === null || c.continuation === undefined
    ? h("p", { className: "empty" }, "No continuation recorded (e.g. fake-local vendor).")
    : h("pre", { className: "text", dataset: { testid: "ch2-continuation" } }, String(c.continuation)), { open: true }));
  if (calls.length > 1) {
    box.appendChild(section(`LLM Calls (${calls.length})`, h("div", { className: "rows" }, calls.map((call, i) => h("div", { className: "call" },
      h("div", { className: "call-head" }, h("strong", null, `Call #${i}`), " ", text(call.model), call.error ? badge("error", "fail") : null),
      h("div", { className: "k" }, "Prompt"), h("pre", { className: "text" }, text(call.prompt)),
      h("div", { className: "k" }, "Continuation"), h("pre", { className: "text" }, text(call.continuation)))))));
  }
  box.appendChild(section(`Span Tree (${text(c.spanCount)} spans)`, spanTree(c.spans || []), { open: true, testid: "span-tree" }));
  if (c.history) box.appendChild(section("History (arg.history, newest first)", h("pre", { className: "text" }, String(c.history))));
  return box;
}

function spanTree(nodes) {
  const ul = h("ul", { className: "span-tree" });
  for (const n of nodes) {
    const attrs = Object.entries(n.attributes || {});
    const head = [h("span", { className: "span-name" }, text(n.name)), " ",
      h("span", { className: "meta" }, `+${text(n.startOffsetMs)}ms · ${text(n.durationMs)}ms`),
      n.status === "error" ? badge("ERROR", "fail") : null,
      attrs.some(([k]) => k === "halt") ? badge("halt") : null,
      (n.links || []).length ? badge("link") : null];
    const body = h("div", null,
      n.statusMessage ? h("div", { className: "error" }, text(n.statusMessage)) : null,
      attrs.length ? h("table", { className: "attrs" }, attrs.map(([k, v]) => h("tr", null, h("td", { className: "k" }, k), h("td", null, h("pre", { className: "text" }, typeof v === "string" ? v : JSON.stringify(v)))))) : null,
      (n.events || []).map((e) => h("div", { className: "event" }, badge("event"), " ", text(e.name), " ", h("code", null, JSON.stringify(e.attributes)))),
      n.droppedAttributesCount ? h("div", { className: "meta" }, `${n.droppedAttributesCount} attributes dropped (128 limit)`) : null);
    const li = h("li", { dataset: { testid: "span" } }, h("details", null, h("summary", null, head), body));
    if ((n.children || []).length) li.appendChild(spanTree(n.children));
    ul.appendChild(li);
  }
  return ul;
}
