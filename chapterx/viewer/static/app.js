// chapterx trace viewer: URL-driven views (list, search, trace detail), filters kept in the URL.
import { AuthError, getJSON, login, logout, qs, enc } from "./api.js";
import { h, clear, badge, fmtTime, fmtTokens, fmtCost, fmtDuration } from "./dom.js";
import { renderTrace } from "./detail.js";
import { closeModal, initModal } from "./modal.js";
import { showFleet } from "./fleet.js";

const PAGE_SIZE = 50;
const FILTER_KEYS = ["bot", "channel", "framework", "since", "text", "failed"];
const TRACE_PATH = /^\/trace\/([A-Za-z0-9_-]{1,128})\/?$/;
const FLEET_PATH = /^\/fleet\/?$/;

const $ = (id) => document.getElementById(id);
let filtersLoaded = false;

function params() {
  return new URLSearchParams(location.search);
}

/** The list/search query (filters, page, q) to carry across views. */
function listQuery(p = params()) {
  const out = {};
  for (const k of [...FILTER_KEYS, "page", "q"]) if (p.get(k)) out[k] = p.get(k);
  return out;
}

export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

function syncFilterInputs() {
  const p = params();
  // values from a shared URL that the dropdowns do not list yet (e.g. an ISO `since`) stay visible
  ensureOption($("f-bot"), p.get("bot"));
  ensureOption($("f-channel"), p.get("channel"));
  ensureOption($("f-since"), p.get("since"), "since " + (p.get("since") || ""));
  $("f-bot").value = p.get("bot") || "";
  $("f-channel").value = p.get("channel") || "";
  $("f-framework").value = p.get("framework") || "";
  $("f-since").value = p.get("since") || "";
  $("f-text").value = p.get("text") || "";
  $("f-failed").checked = p.get("failed") === "true";
  $("search-q").value = p.get("q") || "";
}

function filtersFromInputs() {
  return {
    bot: $("f-bot").value,
    channel: $("f-channel").value,
    framework: $("f-framework").value,
    since: $("f-since").value,
    text: $("f-text").value.trim(),
    failed: $("f-failed").checked ? "true" : "",
  };
}

function ensureOption(select, value, label) {
  if (!value) return;
  for (const o of select.options) if (o.value === value) return;
  select.appendChild(h("option", { value }, label || value));
}

async function loadFilters() {
  if (filtersLoaded) return;
  const [bots, channels] = await Promise.all([getJSON("/api/bots"), getJSON("/api/channels")]);
  const botSel = $("f-bot");
  for (const b of bots.bots || []) botSel.appendChild(h("option", { value: b }, b));
  const chSel = $("f-channel");
  for (const c of channels.channels || []) {
    chSel.appendChild(h("option", { value: c.id }, `${c.name || c.id} (${c.count})`));
  }
  filtersLoaded = true;
}

function showError(container, err) {
  container.appendChild(h("div", { className: "error", dataset: { testid: "error" } }, "Error: " + err.message));
}

export async function route() {
  closeModal();
  const main = $("main");
  try {
    await loadFilters();
  } catch (err) {
    if (err instanceof AuthError) return showLogin();
    clear(main);
    return showError(main, err);
  }
  const p = params();
  syncFilterInputs();
  const m = TRACE_PATH.exec(location.pathname);
  try {
    if (m) await showTrace(main, m[1]);
    else if (FLEET_PATH.test(location.pathname)) await showFleet(main, p, navigate);
    else if (p.get("q")) await showSearch(main, p);
    else await showList(main, p);
  } catch (err) {
    if (err instanceof AuthError) return showLogin();
    clear(main);
    showError(main, err);
  }
}

function page(p) {
  const n = parseInt(p.get("page") || "0", 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function traceLink(id, label) {
  const q = qs(listQuery());
  return h("a", {
    href: "/trace/" + enc(id) + q,
    className: "trace-link",
    dataset: { testid: "trace-link", traceId: id },
    onclick: (ev) => {
      if (ev.button !== 0 || ev.metaKey || ev.ctrlKey) return;
      ev.preventDefault();
      navigate("/trace/" + enc(id) + q);
    },
  }, label || id);
}

function statusBadge(success) {
  return success ? badge("✓", "ok") : badge("✗", "fail");
}

function frameworkBadge(fw) {
  return badge(fw === "chapter2" ? "chapter2" : "ChapterX", fw === "chapter2" ? "ch2" : "cx");
}

function channelLabel(t) {
  const name = t.channelName && t.channelName !== t.channelId ? "#" + t.channelName
    : (t.channelId ? "…" + String(t.channelId).slice(-8) : "");
  return h("span", { className: "channel" }, name, t.isThread ? badge("thread", "thread") : null);
}

async function showList(main, p) {
  const pg = page(p);
  const query = { ...Object.fromEntries(FILTER_KEYS.map((k) => [k, p.get(k)])), limit: PAGE_SIZE, offset: pg * PAGE_SIZE };
  const data = await getJSON("/api/traces" + qs(query));
  clear(main);
  if (data.indexing && data.indexing.building) {
    // a first build is still running: what is listed is what is indexed so far
    main.appendChild(h("p", { className: "empty", dataset: { testid: "index-building" } },
      `building index: ${Number(data.indexing.percent) || 0}% (showing what is indexed so far)`));
  }
  if (data.hiddenByRetention > 0) {
    main.appendChild(h("p", { className: "retention-hint", dataset: { testid: "retention-hint" } },
      `${data.hiddenByRetention} older trace${data.hiddenByRetention === 1 ? "" : "s"} hidden by retention (INDEX_RETENTION_DAYS=${data.retentionDays})`));
  }
  const list = h("div", { className: "trace-list", dataset: { testid: "trace-list" } });
  for (const t of data.traces || []) list.appendChild(traceCard(t));
  if (!(data.traces || []).length) list.appendChild(h("p", { className: "empty" }, "No traces match these filters."));
  main.appendChild(list);
  main.appendChild(pager(data.total || 0, pg, data.limit || PAGE_SIZE));
}

function traceCard(t) {
  const tokens = typeof t.totalTokens === "number" ? t.totalTokens : 0;
  const cost = fmtCost(t.cost);
  return h("article", { className: "card" + (t.success ? "" : " card-fail"), dataset: { testid: "trace-card", traceId: t.traceId } },
    h("div", { className: "card-head" },
      traceLink(t.traceId),
      h("span", { className: "time" }, fmtTime(t.timestamp)),
      frameworkBadge(t.framework),
      t.botName ? badge(t.botName, "bot") : null,
      channelLabel(t),
      t.activationReason ? badge(t.activationReason, "reason") : null,
      statusBadge(t.success),
      t.status && t.status !== "success" && t.status !== "failed" ? badge(t.status.replace(/_/g, " "), "warn") : null,
      h("span", { className: "stats" },
        `${t.llmCallCount || 0} LLM calls` + (t.framework === "chapter2" ? "" : ` · ${fmtTokens(tokens)} tokens`) + (cost ? " · " + cost : "") +
        (t.durationMs ? " · " + fmtDuration(t.durationMs) : "")),
    ),
    t.triggerPreview ? h("div", { className: "preview trigger", dataset: { testid: "trigger-preview" } }, h("span", { className: "label" }, "Trigger: "), t.triggerPreview) : null,
    t.responsePreview ? h("div", { className: "preview response", dataset: { testid: "response-preview" } }, h("span", { className: "label" }, "Response: "), t.responsePreview) : null,
  );
}

function pager(total, pg, limit) {
  const from = total ? pg * limit + 1 : 0;
  const to = Math.min(total, (pg + 1) * limit);
  const box = h("nav", { className: "pager", dataset: { testid: "pager" } });
  const go = (n) => {
    const q = listQuery();
    if (n > 0) q.page = String(n); else delete q.page;
    navigate("/" + qs(q));
  };
  box.appendChild(h("button", { type: "button", disabled: pg === 0, onclick: () => go(pg - 1), dataset: { testid: "prev" } }, "← Previous"));
  box.appendChild(h("span", { className: "count", dataset: { testid: "count" } },
    total > limit ? `Showing ${from}–${to} of ${total}` : `${total} result${total === 1 ? "" : "s"}`));
  box.appendChild(h("button", { type: "button", disabled: to >= total, onclick: () => go(pg + 1), dataset: { testid: "next" } }, "Next →"));
  return box;
}

async function showSearch(main, p) {
  const pg = page(p);
  const q = p.get("q");
  const data = await getJSON("/api/search" + qs({ q, bot: p.get("bot"), limit: PAGE_SIZE, offset: pg * PAGE_SIZE }));
  clear(main);
  const head = h("div", { className: "search-head" },
    h("a", { href: "/", onclick: (ev) => { ev.preventDefault(); const lq = listQuery(); delete lq.q; delete lq.page; navigate("/" + qs(lq)); } }, "← Back to list"),
    h("span", null, " Traces for message "), h("code", { dataset: { testid: "search-id" } }, data.messageId || q));
  main.appendChild(head);
  const list = h("div", { className: "trace-list", dataset: { testid: "search-results" } });
  for (const r of data.results || []) {
    list.appendChild(h("article", { className: "card" + (r.success ? "" : " card-fail"), dataset: { testid: "search-result", traceId: r.traceId, role: r.role } },
      h("div", { className: "card-head" },
        badge(r.role, "role-" + r.role),
        traceLink(r.traceId),
        frameworkBadge(r.framework),
        r.botName ? badge(r.botName, "bot") : null,
        statusBadge(r.success),
        h("span", { className: "time" }, fmtTime(r.timestamp)),
        r.channelName ? h("span", { className: "channel" }, "#" + r.channelName) : null,
      ),
      r.role === "trigger" && r.responsePreview ? h("div", { className: "preview response" }, h("span", { className: "label" }, "Response: "), r.responsePreview) : null,
      r.role === "context" && r.position !== undefined && r.position !== null ? h("div", { className: "preview" }, `Position in context: #${r.position}`) : null,
    ));
  }
  if (!(data.results || []).length) {
    list.appendChild(h("p", { className: "empty", dataset: { testid: "no-results" } },
      "No traces found for ", h("code", null, data.messageId || q),
      ". The message may not have been processed, or its traces were cleaned up."));
  }
  main.appendChild(list);
  if (typeof data.total === "number") main.appendChild(pager(data.total, pg, data.limit || PAGE_SIZE));
}

async function showTrace(main, id) {
  const trace = await getJSON("/api/trace/" + enc(id));
  clear(main);
  const back = h("a", {
    href: "/" + qs(listQuery()), className: "back", dataset: { testid: "back" },
    onclick: (ev) => { ev.preventDefault(); navigate("/" + qs(listQuery())); },
  }, "← Back");
  main.appendChild(back);
  main.appendChild(renderTrace(trace));
}

function showLogin() {
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-token").focus();
}

function onFiltersChange() {
  const q = { ...filtersFromInputs() };
  navigate("/" + qs(q));
}

function init() {
  initModal();
  for (const id of ["f-bot", "f-channel", "f-framework", "f-since", "f-failed"]) $(id).addEventListener("change", onFiltersChange);
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); onFiltersChange(); });
  $("f-text").addEventListener("change", onFiltersChange);
  $("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("search-q").value.trim();
    if (!q) return onFiltersChange();
    const bot = $("f-bot").value;
    navigate("/" + qs({ q, bot }));
  });
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = $("login-error");
    err.textContent = "";
    try {
      await login($("login-token").value);
      $("login-token").value = "";
      $("login").hidden = true;
      $("main").hidden = false;
      $("logout").hidden = false;
      route();
    } catch (e) {
      err.textContent = e.message;
    }
  });
  $("logout").addEventListener("click", async () => { await logout(); location.assign("/"); });
  $("home-link").addEventListener("click", (ev) => { ev.preventDefault(); navigate("/"); });
  $("fleet-link").addEventListener("click", (ev) => { ev.preventDefault(); navigate("/fleet"); });
  window.addEventListener("popstate", route);
  getJSON("/health").then((hlt) => { if (hlt && hlt.authRequired) $("logout").hidden = false; }).catch(() => {});
  route();
}

init();
