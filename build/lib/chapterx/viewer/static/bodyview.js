// Formatters for request/response bodies: Anthropic, OpenAI, Gemini and membrane shapes.
import { h, badge, pretty, text } from "./dom.js";

function field(label, value) {
  if (value === undefined || value === null || value === "") return null;
  return h("div", { className: "kv" }, h("span", { className: "k" }, label), h("span", { className: "v" }, typeof value === "object" ? pretty(value) : String(value)));
}

function block(title, ...children) {
  return h("div", { className: "fmt-block" }, h("h3", null, title), ...children);
}

function pre(value, cls) {
  return h("pre", { className: "text " + (cls || "") }, typeof value === "string" ? value : pretty(value));
}

function others(obj, known) {
  const rest = {};
  for (const [k, v] of Object.entries(obj || {})) if (!known.includes(k)) rest[k] = v;
  return Object.keys(rest).length ? block("Other fields", pre(rest, "json")) : null;
}

export function detectShape(data, kind) {
  if (!data || typeof data !== "object") return "json";
  if (kind === "config") return "json";
  if (kind === "membrane-request" || (Array.isArray(data.messages) && data.messages.some((m) => m && "participant" in m))) return "membrane-request";
  if (kind === "membrane-response" || ("stopReason" in data && Array.isArray(data.content))) return "membrane-response";
  if (Array.isArray(data.contents) || data.systemInstruction) return "gemini-request";
  if (Array.isArray(data.candidates)) return "gemini-response";
  if (Array.isArray(data.choices)) return "openai-response";
  if (Array.isArray(data.content) && ("stop_reason" in data || data.type === "message")) return "anthropic-response";
  if (Array.isArray(data.messages)) {
    const openai = data.messages.some((m) => m && (m.role === "system" || m.role === "tool" || m.role === "developer" || m.tool_calls));
    if (openai || "max_completion_tokens" in data || "n" in data) return "openai-request";
    return "anthropic-request";
  }
  if (typeof data.prompt === "string") return "completion-request";
  return "json";
}

export function formatBody(data, kind) {
  const shape = detectShape(data, kind);
  const f = FORMATTERS[shape] || formatJson;
  const out = h("div", { className: "fmt", dataset: { shape } });
  out.appendChild(h("p", { className: "shape" }, "Shape: ", badge(shape)));
  out.appendChild(f(data));
  return out;
}

function formatJson(data) {
  return pre(data, "json");
}

function cacheBadge(obj) {
  return obj && obj.cache_control ? badge("📍 cache " + text(obj.cache_control.type), "cache") : null;
}

function anthropicBlock(b) {
  if (!b || typeof b !== "object") return pre(b);
  switch (b.type) {
    case "text": return h("div", { className: "cblock" }, cacheBadge(b), pre(b.text));
    case "image": return h("div", { className: "cblock" }, badge("IMAGE " + text(b.source && b.source.media_type)), cacheBadge(b));
    case "tool_use": return h("div", { className: "cblock" }, badge("tool_use"), " ", h("strong", null, text(b.name)), " ", h("code", null, text(b.id)), pre(b.input, "json"));
    case "tool_result": return h("div", { className: "cblock" }, badge("tool_result"), " ", h("code", null, text(b.tool_use_id)), b.is_error ? badge("error", "fail") : null,
      Array.isArray(b.content) ? b.content.map(anthropicBlock) : pre(b.content));
    case "thinking": return h("div", { className: "cblock" }, badge("thinking"), pre(b.thinking));
    default: return h("div", { className: "cblock" }, badge(text(b.type || "block")), pre(b, "json"));
  }
}

function contentOf(content, blockFn) {
  if (typeof content === "string") return pre(content);
  if (Array.isArray(content)) return content.map(blockFn);
  return pre(content, "json");
}

function message(role, ...body) {
  return h("div", { className: "msg role-" + String(role).replace(/[^a-z]/gi, "") , dataset: { testid: "fmt-message" } }, h("div", { className: "msg-role" }, text(role)), ...body);
}

function tools(list, nameOf) {
  if (!Array.isArray(list) || !list.length) return null;
  return block(`Tools (${list.length})`, h("ul", null, list.map((t) => h("li", null, h("strong", null, text(nameOf(t))), t && t.description ? " — " + String(t.description) : ""))));
}

function anthropicRequest(d) {
  const sys = d.system;
  return h("div", null,
    block("Parameters", field("model", d.model), field("max_tokens", d.max_tokens), field("temperature", d.temperature), field("stop_sequences", d.stop_sequences)),
    sys ? block("System", typeof sys === "string" ? pre(sys) : (Array.isArray(sys) ? sys.map(anthropicBlock) : pre(sys, "json"))) : null,
    block(`Messages (${(d.messages || []).length})`, (d.messages || []).map((m) => message(m.role, contentOf(m.content, anthropicBlock)))),
    tools(d.tools, (t) => t.name),
    others(d, ["model", "max_tokens", "temperature", "stop_sequences", "system", "messages", "tools"]),
  );
}

function usageBlock(u) {
  if (!u || typeof u !== "object") return null;
  return block("Usage", Object.entries(u).map(([k, v]) => field(k, v)));
}

function anthropicResponse(d) {
  return h("div", null,
    block("Content", (d.content || []).map(anthropicBlock)),
    block("Result", field("stop_reason", d.stop_reason), field("model", d.model), field("id", d.id), field("type", d.type)),
    usageBlock(d.usage),
    others(d, ["content", "stop_reason", "model", "id", "type", "usage"]),
  );
}

function openaiPart(p) {
  if (typeof p === "string") return pre(p);
  if (!p || typeof p !== "object") return pre(p);
  if (p.type === "text") return pre(p.text);
  if (p.type === "image_url") return badge("IMAGE");
  return pre(p, "json");
}

function openaiToolCalls(calls) {
  if (!Array.isArray(calls)) return null;
  return calls.map((c) => h("div", { className: "cblock" }, badge("tool_call"), " ", h("strong", null, text(c.function && c.function.name)), " ", h("code", null, text(c.id)), pre(c.function ? c.function.arguments : c, "json")));
}

function openaiRequest(d) {
  return h("div", null,
    block("Parameters", field("model", d.model), field("max_tokens", d.max_tokens ?? d.max_completion_tokens), field("temperature", d.temperature), field("stop", d.stop)),
    block(`Messages (${(d.messages || []).length})`, (d.messages || []).map((m) => message(m.name ? `${m.role} (${m.name})` : m.role, contentOf(m.content, openaiPart), openaiToolCalls(m.tool_calls)))),
    tools(d.tools, (t) => (t.function ? t.function.name : t.name)),
    others(d, ["model", "max_tokens", "max_completion_tokens", "temperature", "stop", "messages", "tools"]),
  );
}

function openaiResponse(d) {
  return h("div", null,
    block(`Choices (${d.choices.length})`, d.choices.map((c) => h("div", { className: "msg" },
      h("div", { className: "msg-role" }, `#${text(c.index)} ${text(c.message ? c.message.role : "")}`, c.finish_reason ? badge(String(c.finish_reason)) : null),
      c.message ? contentOf(c.message.content, openaiPart) : (typeof c.text === "string" ? pre(c.text) : null),
      c.message ? openaiToolCalls(c.message.tool_calls) : null))),
    block("Result", field("model", d.model), field("id", d.id), field("object", d.object)),
    usageBlock(d.usage),
    others(d, ["choices", "model", "id", "object", "usage"]),
  );
}

function geminiPart(p) {
  if (!p || typeof p !== "object") return pre(p);
  if (typeof p.text === "string") return h("div", { className: "cblock" }, p.thought ? badge("thought") : null, pre(p.text));
  if (p.inlineData || p.inline_data) return badge("IMAGE " + text((p.inlineData || p.inline_data).mimeType));
  if (p.functionCall) return h("div", { className: "cblock" }, badge("functionCall"), " ", h("strong", null, text(p.functionCall.name)), pre(p.functionCall.args, "json"));
  if (p.functionResponse) return h("div", { className: "cblock" }, badge("functionResponse"), " ", h("strong", null, text(p.functionResponse.name)), pre(p.functionResponse.response, "json"));
  return pre(p, "json");
}

function geminiRequest(d) {
  const sys = d.systemInstruction || d.system_instruction;
  return h("div", null,
    d.generationConfig ? block("Generation config", Object.entries(d.generationConfig).map(([k, v]) => field(k, v))) : null,
    sys ? block("System instruction", (sys.parts || []).map(geminiPart)) : null,
    block(`Contents (${(d.contents || []).length})`, (d.contents || []).map((c) => message(c.role || "user", (c.parts || []).map(geminiPart)))),
    Array.isArray(d.tools) ? block("Tools", pre(d.tools, "json")) : null,
    others(d, ["contents", "systemInstruction", "system_instruction", "generationConfig", "tools"]),
  );
}

function geminiResponse(d) {
  return h("div", null,
    block(`Candidates (${d.candidates.length})`, d.candidates.map((c) => h("div", { className: "msg" },
      h("div", { className: "msg-role" }, text(c.content && c.content.role), c.finishReason ? badge(String(c.finishReason)) : null),
      ((c.content && c.content.parts) || []).map(geminiPart)))),
    block("Result", field("modelVersion", d.modelVersion), field("responseId", d.responseId)),
    usageBlock(d.usageMetadata),
    others(d, ["candidates", "modelVersion", "responseId", "usageMetadata"]),
  );
}

function membraneRequest(d) {
  const cfg = d.config || {};
  return h("div", null,
    block("Config", field("model", cfg.model), field("maxTokens", cfg.maxTokens), field("temperature", cfg.temperature), field("thinking", cfg.thinking)),
    d.system ? block(`System (${String(typeof d.system === "string" ? d.system : pretty(d.system)).length} chars)`, pre(d.system)) : null,
    block(`Messages (${(d.messages || []).length})`, (d.messages || []).map((m) => message(m.participant,
      m.metadata && m.metadata.cacheControl ? badge("📍 CACHED", "cache") : null, contentOf(m.content, anthropicBlock)))),
    tools(d.tools, (t) => t.name),
    others(d, ["config", "system", "messages", "tools"]),
  );
}

function membraneResponse(d) {
  const det = d.details || {};
  return h("div", null,
    block("Content", (d.content || []).map(anthropicBlock)),
    block("Details", field("stopReason", d.stopReason), field("stop.reason", det.stop && det.stop.reason), field("model.actual", det.model && det.model.actual),
      field("duration (ms)", det.timing && det.timing.totalDurationMs), field("attempts", det.timing && det.timing.attempts)),
    usageBlock(d.usage),
    others(d, ["content", "stopReason", "details", "usage"]),
  );
}

function completionRequest(d) {
  return h("div", null,
    block("Parameters", field("model", d.model), field("max_tokens", d.max_tokens), field("temperature", d.temperature), field("stop", d.stop)),
    block("Prompt", pre(d.prompt)),
    others(d, ["model", "max_tokens", "temperature", "stop", "prompt"]),
  );
}

const FORMATTERS = {
  "anthropic-request": anthropicRequest,
  "anthropic-response": anthropicResponse,
  "openai-request": openaiRequest,
  "openai-response": openaiResponse,
  "gemini-request": geminiRequest,
  "gemini-response": geminiResponse,
  "membrane-request": membraneRequest,
  "membrane-response": membraneResponse,
  "completion-request": completionRequest,
  json: formatJson,
};
