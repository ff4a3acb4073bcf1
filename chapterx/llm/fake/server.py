"""A local LLM provider that answers scripted responses in each vendor's own wire format.

Why: `chapterx replay` and the tests run the real vendor SDKs over real HTTP, so the fake has to
speak every protocol the SDKs expect (Anthropic SSE, OpenAI chat/completions SSE, Gemini SSE,
Bedrock AWS event stream) exactly as the golden vectors describe `llm_responses`: text and thinking
deltas of 16 characters, one scripted response consumed per HTTP request (retries included).

Response entries (all optional): `text`, `stop_reason` (end_turn | stop_sequence | max_tokens |
refusal | tool_use), `stop_sequence`, `thinking` (Anthropic thinking block, OpenAI
`reasoning_content`, Gemini thought part), `thinking_signature`, `tool_use` {id, name, input},
`http_status` + `error_body`, `image_base64` + `image_mime` (Gemini), `gate` (hold the answer until
`release(gate)`), and fault knobs for tests: `retry_after` (seconds, sent as a header with an error status), `fault` = "reset" (drop the
connection before answering), "reset_mid_stream", "stall" (send part of the stream, then go
silent), "malformed" (a broken SSE/event frame after the first delta); `fault_after_deltas` (how
many deltas before a mid-stream fault, default 1); `delay` (seconds before answering); `usage`
{input_tokens, output_tokens, ...}; `stream_usage` (a streamed completion's last chunk carries `usage`
even unasked, as OpenRouter and several OpenAI-compatible servers do); `headers` (extra response headers).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from chapterx.llm.fake.eventstream import encode_chunk_event

DELTA = 16
DEFAULT_ERROR_BODY: dict[str, Any] = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
}


def _json(value: Any) -> str:
    """Compact JSON, as the vendors send it."""
    return json.dumps(value, separators=(",", ":"))


def _sse(event: Any, end: str = "\n\n") -> bytes:
    """One `data:` server-sent event frame."""
    return f"data: {_json(event)}{end}".encode()


def chunks(text: str, size: int = DELTA) -> list[str]:
    """Split text into the 16-character deltas the vectors were streamed with."""
    return [text[i : i + size] for i in range(0, len(text), size)]


class FakeLLMServer:
    """aiohttp server on 127.0.0.1:<free port>; use as `async with FakeLLMServer([...]) as s:`."""

    def __init__(self, responses: list[dict[str, Any]] | None = None, *, host: str = "127.0.0.1") -> None:
        self.responses: list[dict[str, Any]] = list(responses or [])
        self.requests: list[dict[str, Any]] = []
        self._host = host
        self._next = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._ids = itertools.count(1)
        self._gates: dict[str, asyncio.Event] = {}
        self.base_url = ""
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> FakeLLMServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if not sockets:
            raise RuntimeError("fake server did not bind")
        self.port = int(sockets[0].getsockname()[1])
        self.base_url = f"http://{self._host}:{self.port}"
        return self

    async def close(self) -> None:
        self._closing.set()
        for gate in self._gates.values():
            gate.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLMServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _gate(self, name: str) -> asyncio.Event:
        if name not in self._gates:
            self._gates[name] = asyncio.Event()
        return self._gates[name]

    def release(self, name: str) -> None:
        """Let the request(s) held by a `gate: name` response be answered."""
        self._gate(name).set()

    # -- dispatch --------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        raw_path = request.raw_path.split("?", 1)[0]
        self.requests.append(
            {
                "method": request.method,
                "path": raw_path,
                "query": request.query_string,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
                "raw": raw,
            }
        )
        if self._next >= len(self.responses):
            return web.json_response(
                {"type": "error", "error": {"type": "api_error", "message": "fake server: no scripted response left"}},
                status=500,
                headers={"x-should-retry": "false"},
            )
        spec = self.responses[self._next]
        self._next += 1
        if spec.get("gate"):
            await self._gate(str(spec["gate"])).wait()
        if spec.get("delay"):
            await asyncio.sleep(float(spec["delay"]))
        if spec.get("fault") == "reset":
            self._abort(request)
            return web.Response(status=500)
        if spec.get("http_status"):
            headers = {"content-type": "application/json", **spec.get("headers", {})}
            if spec.get("retry_after") is not None:
                headers["retry-after"] = str(spec["retry_after"])
            text = _json(spec.get("error_body", DEFAULT_ERROR_BODY))
            return web.Response(status=int(spec["http_status"]), text=text, headers=headers)

        path = raw_path
        if "/model/" in path and (path.endswith("/invoke") or path.endswith("/invoke-with-response-stream")):
            return await self._bedrock(request, spec, body or {}, path)
        if ":streamGenerateContent" in path or ":generateContent" in path:
            return await self._gemini(request, spec, path)
        if path.endswith("/messages"):
            return await self._anthropic(request, spec, body or {})
        if path.endswith("/chat/completions"):
            return await self._openai_chat(request, spec, body or {})
        if path.endswith("/completions"):
            return await self._openai_completions(request, spec, body or {})
        return web.json_response({"error": {"message": f"fake server: unknown path {path}"}}, status=404)

    @staticmethod
    def _abort(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    async def _stream(
        self, request: web.Request, spec: dict[str, Any], frames: list[bytes], content_type: str
    ) -> web.StreamResponse:
        """Write frames, applying mid-stream faults (stall, reset, malformed) after N deltas."""
        resp = web.StreamResponse(
            status=200, headers={"content-type": content_type, "cache-control": "no-cache", **spec.get("headers", {})}
        )
        await resp.prepare(request)
        fault = spec.get("fault")
        after = int(spec.get("fault_after_deltas", 1))
        # frame 0 is the stream start; fault after `after` delta frames
        cut = min(len(frames), 1 + after)
        for i, frame in enumerate(frames):
            if fault in ("stall", "reset_mid_stream", "malformed") and i == cut:
                if fault == "stall":
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), timeout=3600)
                    return resp
                if fault == "reset_mid_stream":
                    self._abort(request)
                    return resp
                await resp.write(b"data: {not json\n\n" if content_type.startswith("text/") else b"\x00\x00\x00\x10garbage-frame!!")
                await resp.write_eof()
                return resp
            await resp.write(frame)
        await resp.write_eof()
        return resp

    # -- Anthropic ---------------------------------------------------------------------------
    @staticmethod
    def _usage(spec: dict[str, Any], text: str) -> dict[str, int]:
        usage = {"input_tokens": 10, "output_tokens": max(1, len(text) // 4)}
        usage.update(spec.get("usage", {}))
        return usage

    def _anthropic_events(self, spec: dict[str, Any], model: str) -> Iterator[dict[str, Any]]:
        text = spec.get("text", "")
        usage = self._usage(spec, text)
        msg_id = f"msg_fake_{next(self._ids):04d}"
        yield {
            "type": "message_start",
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {k: v for k, v in usage.items() if k != "output_tokens"} | {"output_tokens": 1},
            },
        }
        index = 0
        if spec.get("thinking"):
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
            for part in chunks(spec["thinking"]):
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": part}}
            yield {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "signature_delta", "signature": spec.get("thinking_signature", "sig-invented")},
            }
            yield {"type": "content_block_stop", "index": index}
            index += 1
        if text or not spec.get("tool_use"):
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            for part in chunks(text):
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": part}}
            yield {"type": "content_block_stop", "index": index}
            index += 1
        for tool in _tool_uses(spec):
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": tool["id"], "name": tool["name"], "input": {}},
            }
            yield {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": _json(tool.get("input", {}))},
            }
            yield {"type": "content_block_stop", "index": index}
            index += 1
        yield {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason(spec), "stop_sequence": spec.get("stop_sequence")},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
        yield {"type": "message_stop"}

    @staticmethod
    def _stop_reason(spec: dict[str, Any]) -> str:
        if spec.get("stop_reason"):
            return str(spec["stop_reason"])
        return "tool_use" if spec.get("tool_use") else "end_turn"

    def _anthropic_message(self, spec: dict[str, Any], model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if spec.get("thinking"):
            content.append({"type": "thinking", "thinking": spec["thinking"], "signature": spec.get("thinking_signature", "sig-invented")})
        text = spec.get("text", "")
        if text or not spec.get("tool_use"):
            content.append({"type": "text", "text": text})
        for tool in _tool_uses(spec):
            content.append({"type": "tool_use", "id": tool["id"], "name": tool["name"], "input": tool.get("input", {})})
        return {
            "id": f"msg_fake_{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": self._stop_reason(spec),
            "stop_sequence": spec.get("stop_sequence"),
            "usage": self._usage(spec, text),
        }

    async def _anthropic(self, request: web.Request, spec: dict[str, Any], body: dict[str, Any]) -> web.StreamResponse:
        model = str(body.get("model", "claude-fake"))
        if not body.get("stream"):
            return web.json_response(self._anthropic_message(spec, model), headers=spec.get("headers"))
        frames = [
            f"event: {ev['type']}\n".encode() + _sse(ev)
            for ev in self._anthropic_events(spec, model)
        ]
        return await self._stream(request, spec, frames, "text/event-stream")

    # -- Bedrock -----------------------------------------------------------------------------
    async def _bedrock(self, request: web.Request, spec: dict[str, Any], body: dict[str, Any], path: str) -> web.StreamResponse:
        from urllib.parse import unquote

        model = unquote(path.split("/model/", 1)[1].rsplit("/", 1)[0])
        if path.endswith("/invoke"):
            return web.json_response(self._anthropic_message(spec, model), headers=spec.get("headers"))
        frames = [
            encode_chunk_event(_json({"bytes": base64.b64encode(_json(ev).encode()).decode()}).encode())
            for ev in self._anthropic_events(spec, model)
        ]
        return await self._stream(request, spec, frames, "application/vnd.amazon.eventstream")

    # -- OpenAI chat ---------------------------------------------------------------------------
    @staticmethod
    def _finish_reason(spec: dict[str, Any]) -> str:
        reason = FakeLLMServer._stop_reason(spec)
        return {"max_tokens": "length", "refusal": "content_filter", "tool_use": "tool_calls"}.get(reason, "stop")

    def _openai_usage(self, spec: dict[str, Any], text: str) -> dict[str, int]:
        u = self._usage(spec, text)
        return {
            "prompt_tokens": u["input_tokens"],
            "completion_tokens": u["output_tokens"],
            "total_tokens": u["input_tokens"] + u["output_tokens"],
        }

    async def _openai_chat(self, request: web.Request, spec: dict[str, Any], body: dict[str, Any]) -> web.StreamResponse:
        model = str(body.get("model", "gpt-fake"))
        text = spec.get("text", "")
        cid = f"chatcmpl-fake{next(self._ids):04d}"
        created = int(time.time())
        tool = spec.get("tool_use")
        tool_calls = (
            [
                {
                    "id": tool["id"],
                    "type": "function",
                    "function": {"name": tool["name"], "arguments": _json(tool.get("input", {}))},
                }
            ]
            if tool
            else None
        )
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text if (text or not tool) else None}
            if spec.get("thinking"):
                message["reasoning_content"] = spec["thinking"]
            if tool_calls:
                message["tool_calls"] = tool_calls
            return web.json_response(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": self._finish_reason(spec), "logprobs": None}],
                    "usage": self._openai_usage(spec, text),
                },
                headers=spec.get("headers"),
            )

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            }

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"reasoning_content": part}, None) for part in chunks(spec.get("thinking") or "")]
        events += [chunk({"content": part}, None) for part in chunks(text)]
        if tool_calls:
            events.append(chunk({"tool_calls": [{"index": 0, **tool_calls[0]}]}, None))
        events.append(chunk({}, self._finish_reason(spec)))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": self._openai_usage(spec, text)})
        frames = [_sse(ev) for ev in events]
        frames.append(b"data: [DONE]\n\n")
        return await self._stream(request, spec, frames, "text/event-stream")

    async def _openai_completions(self, request: web.Request, spec: dict[str, Any], body: dict[str, Any]) -> web.StreamResponse:
        model = str(body.get("model", "base-fake"))
        text = spec.get("text", "")
        cid = f"cmpl-fake{next(self._ids):04d}"
        created = int(time.time())
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": cid,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "text": text, "finish_reason": self._finish_reason(spec), "logprobs": None}],
                    "usage": self._openai_usage(spec, text),
                },
                headers=spec.get("headers"),
            )

        def chunk(part: str, finish: str | None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "text": part, "finish_reason": finish, "logprobs": None}],
            }

        events = [chunk(part, None) for part in chunks(text)] or [chunk("", None)]
        events.insert(0, chunk("", None))
        events.append(chunk("", self._finish_reason(spec)))
        if spec.get("stream_usage"):
            events[-1]["usage"] = self._openai_usage(spec, text)
        frames = [_sse(ev) for ev in events]
        frames.append(b"data: [DONE]\n\n")
        return await self._stream(request, spec, frames, "text/event-stream")

    # -- Gemini --------------------------------------------------------------------------------
    async def _gemini(self, request: web.Request, spec: dict[str, Any], path: str) -> web.StreamResponse:
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        text = spec.get("text", "")
        finish = {"max_tokens": "MAX_TOKENS", "refusal": "SAFETY"}.get(self._stop_reason(spec), "STOP")
        u = self._usage(spec, text)
        usage = {
            "promptTokenCount": u["input_tokens"],
            "candidatesTokenCount": u["output_tokens"],
            "totalTokenCount": u["input_tokens"] + u["output_tokens"],
        }
        image_part = (
            {"inlineData": {"mimeType": spec.get("image_mime", "image/png"), "data": spec["image_base64"]}}
            if spec.get("image_base64")
            else None
        )
        tool = spec.get("tool_use")
        if tool and not image_part:
            image_part = {"functionCall": {"name": tool["name"], "args": tool.get("input", {})}}
        thought = [{"text": spec["thinking"], "thought": True}] if spec.get("thinking") else []

        def resp(parts: list[dict[str, Any]], finish_reason: str | None) -> dict[str, Any]:
            cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            if finish_reason:
                cand["finishReason"] = finish_reason
            return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model}

        if ":generateContent" in path:
            parts: list[dict[str, Any]] = thought + ([{"text": text}] if text else [])
            if image_part:
                parts.append(image_part)
            return web.json_response(resp(parts, finish), headers=spec.get("headers"))
        pieces = chunks(text)
        events = [resp(thought, None)] if thought else []
        for i, part in enumerate(pieces):
            last = i == len(pieces) - 1 and not image_part
            events.append(resp([{"text": part}], finish if last else None))
        if image_part or not pieces:
            events.append(resp([image_part] if image_part else [{"text": ""}], finish))
        # a leading no-op frame keeps the fault index semantics identical to the other protocols
        frames = [b""] + [_sse(ev, "\r\n\r\n") for ev in events]
        return await self._stream(request, spec, frames, "text/event-stream")


def _tool_uses(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """`tool_use` may be one block or a list of blocks (several calls in one response)."""
    tool = spec.get("tool_use")
    if not tool:
        return []
    return list(tool) if isinstance(tool, list) else [tool]
