// The JSON modal: a formatted view (by body shape) and the raw JSON, both as text.
import { h, clear, pretty } from "./dom.js";
import { formatBody } from "./bodyview.js";

let current = null;
const $ = (id) => document.getElementById(id);

export function initModal() {
  $("modal-close").addEventListener("click", closeModal);
  $("modal").addEventListener("click", (ev) => { if (ev.target === $("modal")) closeModal(); });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeModal(); });
  $("tab-formatted").addEventListener("click", () => draw("formatted"));
  $("tab-raw").addEventListener("click", () => draw("raw"));
}

/** kind: request | response | membrane-request | membrane-response | config | json */
export function openModal(title, data, kind) {
  current = { title, data, kind };
  $("modal-title").textContent = title;
  $("modal").hidden = false;
  draw("formatted");
}

export function openModalLoading(title) {
  current = null;
  $("modal-title").textContent = title;
  clear($("modal-body")).appendChild(h("p", null, "Loading…"));
  $("modal").hidden = false;
}

export function openModalError(title, message) {
  current = null;
  $("modal-title").textContent = title;
  clear($("modal-body")).appendChild(h("p", { className: "error", dataset: { testid: "modal-error" } }, message));
  $("modal").hidden = false;
}

export function closeModal() {
  const m = $("modal");
  if (m) m.hidden = true;
  current = null;
}

function draw(tab) {
  if (!current) return;
  $("tab-formatted").classList.toggle("active", tab === "formatted");
  $("tab-raw").classList.toggle("active", tab === "raw");
  const body = clear($("modal-body"));
  if (tab === "raw") {
    body.appendChild(h("pre", { className: "json", dataset: { testid: "modal-raw" } }, pretty(current.data)));
  } else {
    body.appendChild(h("div", { dataset: { testid: "modal-formatted" } }, formatBody(current.data, current.kind)));
  }
}
