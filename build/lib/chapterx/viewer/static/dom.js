// Element builders. Every piece of data becomes a text node or a property: never HTML.

/**
 * h("div", {className: "x", dataset: {id: "1"}, onclick: fn}, "text", child, ...)
 * Strings and numbers become text nodes; null/undefined/false children are skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "dataset") {
        for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
      } else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "href") {
        el.setAttribute("href", safeHref(value));
      } else if (key === "className" || key === "textContent" || key === "title" || key === "type" ||
                 key === "value" || key === "checked" || key === "disabled" || key === "hidden" || key === "open") {
        el[key] = value;
      } else {
        el.setAttribute(key, String(value));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Only same-origin paths we build ourselves; anything else (javascript:, //host) becomes "#". */
export function safeHref(value) {
  const s = String(value);
  return /^\/(?!\/)[A-Za-z0-9/_\-.?=&%+]*$/.test(s) ? s : "#";
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function text(value) {
  return value === undefined || value === null ? "" : String(value);
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function fmtTokens(n) {
  if (typeof n !== "number" || !isFinite(n)) return "0";
  return n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(n);
}

export function fmtCost(c) {
  if (typeof c !== "number" || !isFinite(c)) return "";
  if (c === 0) return "$0";
  return c < 0.01 ? "$" + c.toFixed(4) : "$" + c.toFixed(2);
}

export function fmtDuration(ms) {
  if (typeof ms !== "number" || !isFinite(ms)) return "";
  return ms >= 1000 ? (ms / 1000).toFixed(1) + "s" : Math.round(ms) + "ms";
}

export function pretty(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch (e) {
    return String(value);
  }
}

/** A collapsible section built on <details>. */
export function section(title, body, { open = false, testid } = {}) {
  return h("details", { className: "section", open, dataset: testid ? { testid } : undefined },
    h("summary", null, title), h("div", { className: "section-body" }, body));
}

export function badge(label, kind) {
  return h("span", { className: "badge" + (kind ? " badge-" + kind : "") }, label);
}
