"""Anthropic Messages API and AWS Bedrock (Claude), both through the official `anthropic` SDK.

The request body is built here in the order upstream sent it and handed to the SDK's generic
`post` (so the SDK still does auth, retries with `x-stainless-retry-count`, SSE / event-stream
decoding and error mapping). Vendor rules applied here (runtime reference 4.2, golden README 5):
`top_p` dropped when `temperature` is set; thinking `enabled` budget clamped to
`max_tokens - 1024` (omitted below 1024) and temperature forced to 1 when thinking is sent; on the native tool path
(tools present) no stop sequences, `top_p` or `top_k`; `extra` (provider_params) merged in.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.parse
from typing import Any

import anthropic
import httpx2
from anthropic import AsyncStream

from chapterx.llm.errors import ProviderError
from chapterx.llm.providers.base import (
    Provider,
    StopCutter,
    close_quietly,
    connection_cause,
    json_object,
    status_error,
    transport_error,
    with_stall_timeout,
)
from chapterx.llm.types import ContentBlock, ProviderRequest, ProviderResponse

THINKING_MIN_BUDGET = 1024
BEDROCK_VERSION = "bedrock-2023-05-31"
ANTHROPIC_VERSION = "2023-06-01"
CACHE_TTL_BETA = "extended-cache-ttl-2025-04-11"

STEERING_BETA = "steering-2024-06-04"
CLI_SYSTEM = ("The assistant is in CLI simulation mode, and responds to the user's CLI commands only with the "
              "output of the command.")
CLI_COMMAND = "<cmd>cat untitled.txt</cmd>"
_IMG_MARKER = re.compile(r"<\|begin_of_img_url\|>(.*?)<\|end_of_img_url\|>", re.S)
MAX_PROMPT_IMAGES = 10


def _prompt_images(prompt: str) -> list[ContentBlock]:
    """chapter2 inline image markers -> text and URL image blocks (at most 10 images); [] if none."""
    if "<|begin_of_img_url|>" not in prompt:
        return []
    blocks: list[ContentBlock] = []
    pos = 0
    count = 0
    for m in _IMG_MARKER.finditer(prompt):
        if m.start() > pos:
            blocks.append({"type": "text", "text": prompt[pos : m.start()]})
        if count < MAX_PROMPT_IMAGES:
            blocks.append({"type": "image", "source": {"type": "url", "url": m.group(1).strip()}})
            count += 1
        pos = m.end()
    if pos < len(prompt):
        blocks.append({"type": "text", "text": prompt[pos:]})
    return blocks


# Bedrock ids for Anthropic names that do not map to `anthropic.<id>-v1:0` (aliases, version 2), as in
# the reference's table. `claude-haiku-4-5-*` is deliberately absent: the reference maps it to a 3.5
# Haiku id by mistake; the fallback gives Bedrock's real id (docs/differences.md).
BEDROCK_MODEL_MAP = {
    "claude-3-5-sonnet-20241022": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "claude-3-5-sonnet-latest": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "claude-3-5-haiku-latest": "anthropic.claude-3-5-haiku-20241022-v1:0",
}


def anthropic_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Accept Anthropic (`input_schema`) or membrane (`inputSchema`) tool shapes."""
    out: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description") is not None:
        out["description"] = tool["description"]
    out["input_schema"] = tool.get("input_schema") or tool.get("inputSchema") or {"type": "object", "properties": {}}
    return out


def thinking_param(request: ProviderRequest) -> dict[str, Any] | None:
    """The `thinking` field as sent: enabled budgets clamped, adaptive passed through."""
    th = request.thinking
    if not th:
        return None
    kind = th.get("type") or ("enabled" if th.get("enabled") else None)
    if kind == "adaptive":
        out: dict[str, Any] = {"type": "adaptive"}
        if th.get("display"):
            out["display"] = th["display"]
        return out
    if kind != "enabled":
        return None
    budget = th.get("budget_tokens", th.get("budgetTokens"))
    if budget is None:
        budget = THINKING_MIN_BUDGET
    budget = min(int(budget), request.max_tokens - 1024)
    if budget < THINKING_MIN_BUDGET:
        return None
    return {"type": "enabled", "budget_tokens": budget}


def _has_ttl(obj: Any) -> bool:
    if isinstance(obj, dict):
        cc = obj.get("cache_control")
        if isinstance(cc, dict) and cc.get("ttl"):
            return True
        return any(_has_ttl(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_ttl(v) for v in obj)
    return False


def _usage(raw: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    if not raw:
        return out
    for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        value = raw.get(key) if isinstance(raw, dict) else getattr(raw, key, None)
        if isinstance(value, int):
            out[key] = value
    return out


class AnthropicProvider(Provider):
    kind = "anthropic"
    status_prefix = ""  # upstream reported HTTP errors as "529 {body}"
    error_prefix = "Anthropic API error: "
    default_sdk_retries = 2  # the SDK's own retries, as upstream (x-stainless-retry-count 0,1,2)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: anthropic.AsyncAnthropic | anthropic.AsyncAnthropicBedrock | None = None
        if self.settings.get("chapter2"):
            self.stop_cap = 3  # chapter2 passes stop_sequences[:3]

    def client(self) -> Any:
        if self._client is None:
            # upstream authenticated with `x-api-key` and API version 2023-06-01; this SDK
            # would send a Bearer token and its own (newer) version, so both are set explicitly
            # (an Omit value removes the SDK's Authorization header, e.g. from ANTHROPIC_API_KEY)
            headers: dict[str, Any] = {
                "anthropic-version": ANTHROPIC_VERSION,
                "x-api-key": str(self.settings["api_key"]),
                "Authorization": anthropic.omit,
            }
            # The SDK's aiohttp transport (its public `DefaultAioHttpClient`): the bot already holds
            # aiohttp for discord.py, so the SDK's default stack (httpcore, h11, anyio streams,
            # truststore) is not loaded on top of it (bench/README.md, bot runtime)
            self._client = anthropic.AsyncAnthropic(
                api_key=None,
                auth_token=None,
                default_headers=headers,
                base_url=self.base_url,
                max_retries=self.sdk_max_retries,
                timeout=self.options.timeout,
                http_client=anthropic.DefaultAioHttpClient(),
            )
        return self._client

    # -- request -------------------------------------------------------------------------------
    def model_id(self, model: str) -> str:
        return model

    def body_prefix(self, request: ProviderRequest) -> dict[str, Any]:
        return {"model": self.model_id(request.model)}

    def prompt_messages(self, request: ProviderRequest) -> tuple[Any, list[dict[str, Any]]]:
        """A base-model prompt on the Messages API, as chapter2's intermodel sent it: the CLI
        simulation (system + `cat untitled.txt` command) with the prompt as assistant prefill;
        a `system` from the request or the vendor config replaces both."""
        extra = self.settings.get("extra_body") or {}
        system = request.system or extra.get("system")
        prompt = request.prompt or ""
        images = _prompt_images(prompt)
        content: Any = images or prompt
        if system:
            return system, [{"role": "assistant", "content": content}]
        return CLI_SYSTEM, [{"role": "user", "content": CLI_COMMAND}, {"role": "assistant", "content": content}]

    def build_body(self, request: ProviderRequest) -> dict[str, Any]:
        native_tools = bool(request.tools)
        body = self.body_prefix(request)
        body["max_tokens"] = request.max_tokens
        if request.prompt is not None and not request.messages:
            system, messages = self.prompt_messages(request)
            body["messages"] = messages
            body["system"] = system
        else:
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages
                                if m.role != "system"]
            if request.system is not None and request.system != "" and request.system != []:
                body["system"] = request.system
        thinking = thinking_param(request)
        # temperature is forced to 1 only when a thinking parameter is actually sent: a budget that does
        # not fit omits thinking and keeps the configured temperature (the reference does the same)
        temperature = 1 if thinking else request.temperature
        if temperature is not None:
            body["temperature"] = temperature
        elif request.top_p is not None and not native_tools:
            body["top_p"] = request.top_p
        if request.top_k is not None and not native_tools:
            body["top_k"] = request.top_k
        if request.stop_sequences and not native_tools:
            body["stop_sequences"] = self.capped_stops(request.stop_sequences)
        if native_tools:
            body["tools"] = [anthropic_tool(t) for t in request.tools or []]
        if thinking:
            body["thinking"] = thinking
        if self.settings.get("chapter2"):
            # chapter2 vendor config keys go into the request (intermodel: {**vendor.config, **kwargs})
            extra = {k: v for k, v in (self.settings.get("extra_body") or {}).items() if k != "system"}
            if self.settings.get("steering") and "steering" in extra:
                extra["steering"] = extra.pop("steering")
            body.update(extra)
        body.update(request.extra)
        body["stream"] = bool(request.stream)
        return body

    def extra_headers(self, body: dict[str, Any]) -> dict[str, str]:
        if self.settings.get("steering"):
            return {"anthropic-beta": STEERING_BETA}
        return {"anthropic-beta": CACHE_TTL_BETA} if _has_ttl(body.get("messages")) or _has_ttl(body.get("system")) else {}

    # -- one attempt ---------------------------------------------------------------------------
    async def _attempt(self, request: ProviderRequest, body: dict[str, Any], cutter: StopCutter) -> ProviderResponse:
        client = self.client()
        options: dict[str, Any] = {}
        headers = self.extra_headers(body)
        if headers:
            options["headers"] = headers
        send = dict(body)
        if not request.stream:  # cast_to=object: plain JSON (see `json_object`)
            msg = await client.post("/v1/messages", body=send, cast_to=object, options=options)
            return self._from_message(json_object(msg, self.error_prefix), cutter, request)
        stream = await client.post(
            "/v1/messages", body=send, cast_to=object, options=options, stream=True,
            stream_cls=AsyncStream[object],
        )
        return await self._consume(stream, cutter, request)

    async def _consume(self, stream: Any, cutter: StopCutter, request: ProviderRequest) -> ProviderResponse:
        blocks: dict[int, dict[str, Any]] = {}
        json_parts: dict[int, str] = {}
        usage: dict[str, int] = {}
        model: str | None = None
        stop_reason: str | None = None
        stop_sequence: str | None = None
        stop_details: Any = None
        try:
            async for event in with_stall_timeout(stream, self.options.stall_timeout):
                ev = json_object(event, self.error_prefix, "stream event")
                et = ev.get("type")
                if et == "message_start":
                    message = ev.get("message") or {}
                    model = message.get("model")
                    usage.update(_usage(message.get("usage")))
                elif et == "content_block_start":
                    block = dict(ev.get("content_block") or {})
                    if block.get("type") == "text":
                        block["text"] = ""
                    elif block.get("type") == "thinking":
                        block["thinking"] = ""
                        block["signature"] = block.get("signature") or ""
                    blocks[int(ev.get("index", len(blocks)))] = block
                elif et == "content_block_delta":
                    idx = int(ev.get("index", 0))
                    block = blocks.setdefault(idx, {"type": "text", "text": ""})
                    delta = ev.get("delta") or {}
                    dt_ = delta.get("type")
                    if dt_ == "text_delta":
                        block["text"] = block.get("text", "") + delta.get("text", "")
                        cutter.feed(delta.get("text", ""))
                    elif dt_ == "thinking_delta":
                        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
                    elif dt_ == "signature_delta":
                        block["signature"] = delta.get("signature", "")
                    elif dt_ == "input_json_delta":
                        json_parts[idx] = json_parts.get(idx, "") + delta.get("partial_json", "")
                elif et == "message_delta":
                    delta = ev.get("delta") or {}
                    stop_reason = delta.get("stop_reason") or stop_reason
                    stop_sequence = delta.get("stop_sequence")
                    stop_details = delta.get("stop_details") or stop_details
                    usage.update(_usage(ev.get("usage")))
                elif et == "error":
                    err = ev.get("error") or {}
                    raise ProviderError(f"{self.error_prefix}stream error: {json.dumps(err)}", retryable=True)
        finally:
            await close_quietly(stream)
        if stop_reason is None:
            raise ProviderError(f"{self.error_prefix}stream ended before message_stop", retryable=True)
        for idx, raw in json_parts.items():
            try:
                blocks[idx]["input"] = json.loads(raw) if raw else {}
            except ValueError as exc:
                raise ProviderError(f"{self.error_prefix}malformed tool input in stream", retryable=True) from exc
        content = [blocks[i] for i in sorted(blocks)]
        return self._finish(content, stop_reason, stop_sequence, usage, model or request.model, cutter, stop_details)

    def _from_message(self, msg: dict[str, Any], cutter: StopCutter, request: ProviderRequest) -> ProviderResponse:
        content = [dict(b) for b in msg.get("content") or []]
        for b in content:
            if b.get("type") == "text":
                cutter.feed(b.get("text", ""))
        return self._finish(content, msg.get("stop_reason"), msg.get("stop_sequence"), _usage(msg.get("usage")),
                            msg.get("model") or request.model, cutter, msg.get("stop_details"))

    @staticmethod
    def _finish(content: list[ContentBlock], stop_reason: str | None, stop_sequence: str | None,
                usage: dict[str, int], model: str, cutter: StopCutter, stop_details: Any = None) -> ProviderResponse:
        text = cutter.finish()
        if cutter.hit is not None:
            # keep only what precedes the stop: drop later text blocks, shorten the one holding it
            kept: list[ContentBlock] = []
            remaining = len(text)
            for b in content:
                if b.get("type") != "text":
                    if b.get("type") == "thinking" or remaining > 0:
                        kept.append(b)
                    continue
                piece = b.get("text", "")[: max(remaining, 0)]
                remaining -= len(piece)
                if piece:
                    kept.append({**b, "text": piece})
            content = kept
            if stop_reason in (None, "end_turn"):
                stop_reason, stop_sequence = "stop_sequence", cutter.hit
        content = [{k: v for k, v in b.items() if v is not None} for b in content]
        raw = {"content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence, "model": model,
               "usage": usage}
        if stop_details:
            raw["stop_details"] = stop_details  # refusals carry a category here
        return ProviderResponse(text=text, content=content, stop_reason=_map_stop(stop_reason),
                                stop_sequence=stop_sequence, usage=usage, model=model, raw=raw)

    def _classify(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, anthropic.APIStatusError):
            try:
                text = exc.response.text
            except Exception:  # noqa: BLE001 - a streamed error body may be unreadable
                text = str(exc.body)
            return status_error(self.status_prefix, exc.status_code, text, exc.response.headers)
        if isinstance(exc, anthropic.APITimeoutError):
            return ProviderError(f"{self.error_prefix}request timed out", retryable=True)
        if isinstance(exc, anthropic.APIConnectionError):
            return ProviderError(f"{self.error_prefix}connection error: {connection_cause(exc)}", retryable=True)
        transport = transport_error(exc, self.error_prefix)
        if transport is not None:
            return transport
        if "eventstream" in type(exc).__module__ or type(exc).__name__ == "ChecksumMismatch":
            return ProviderError(f"{self.error_prefix}malformed event stream", retryable=True)
        return ProviderError(f"{self.error_prefix}{type(exc).__name__}: {exc}", retryable=False)


def _map_stop(reason: str | None) -> str:
    if reason in ("end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"):
        return reason
    return "end_turn"


# -- Bedrock -----------------------------------------------------------------------------------

def bedrock_model_id(model: str) -> str:
    """Map a model name to a Bedrock model id (runtime reference 4.1)."""
    if model.startswith("bedrock:"):
        model = model[len("bedrock:") :]
    if model.startswith("anthropic.") or re.match(r"^[a-z]{2,4}\.anthropic\.", model) or model.startswith("arn:"):
        return model
    return BEDROCK_MODEL_MAP.get(model, f"anthropic.{model}-v1:0")


class _ClockedSigV4:
    """SigV4 over exactly the headers upstream signed (accept, content-type, host, x-amz-date[,
    x-amz-security-token]) with an injectable clock, so signatures are reproducible.

    Built from botocore's public `SigV4Auth` methods (canonical request, string to sign, signature,
    scope, signed headers); `add_auth` itself reads the wall clock, which replays cannot freeze."""

    def __init__(self, access: str, secret: str, token: str | None, region: str, now: Any) -> None:
        from botocore.auth import SigV4Auth
        from botocore.credentials import Credentials

        self._auth = SigV4Auth(Credentials(access, secret, token), "bedrock", region)
        self._token = token
        self._now = now

    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        from botocore.auth import SIGV4_TIMESTAMP
        from botocore.awsrequest import AWSRequest

        auth = self._auth
        stamp = dt.datetime.fromtimestamp(self._now(), dt.UTC).strftime(SIGV4_TIMESTAMP)
        signed = {**headers, "x-amz-date": stamp}
        if self._token:
            signed["x-amz-security-token"] = self._token
        request = AWSRequest(method=method, url=url, headers=signed, data=body)
        request.context["timestamp"] = stamp
        signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        signed["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, "
            f"SignedHeaders={auth.signed_headers(auth.headers_to_sign(request))}, Signature={signature}"
        )
        return signed


def _bedrock_request_hook(signer: _ClockedSigV4, real_base: str) -> Any:
    """An httpx2 request event hook (public API of the SDK's `http_client`) that gives a Bedrock
    request upstream's shape: the model id in the path percent-encoded as one segment (`:` -> %3A),
    and upstream's SigV4 headers in place of the SDK's own signature."""
    real = urllib.parse.urlsplit(real_base)

    async def hook(request: httpx2.Request) -> None:
        path = request.url.raw_path.decode()
        if path.startswith("/model/"):
            head, _, rest = path[len("/model/") :].rpartition("/")
            path = "/model/" + urllib.parse.quote(urllib.parse.unquote(head), safe="") + "/" + rest
            request.url = request.url.copy_with(raw_path=path.encode())
        data = await request.aread()
        accept = "application/vnd.amazon.eventstream" if "invoke-with-response-stream" in path else "application/json"
        to_sign = {"accept": accept, "content-type": "application/json", "host": real.netloc}
        signed = signer.sign("POST", f"{real.scheme}://{real.netloc}{path}", to_sign, data)
        for name in list(request.headers.keys()):
            if name.lower() in ("authorization", "x-amz-date", "x-amz-security-token", "accept", "host"):
                del request.headers[name]
        for name, value in signed.items():
            request.headers[name] = value

    return hook


class BedrockProvider(AnthropicProvider):
    kind = "bedrock"
    error_prefix = "Bedrock API error: "

    def client(self) -> Any:
        if self._client is None:
            s = self.settings
            signer = _ClockedSigV4(s["aws_access_key"], s["aws_secret_key"], s.get("aws_session_token"),
                                   s["aws_region"], self.options.now or time.time)
            hook = _bedrock_request_hook(signer, self.real_base_url)
            self._client = anthropic.AsyncAnthropicBedrock(
                aws_access_key=s["aws_access_key"],
                aws_secret_key=s["aws_secret_key"],
                aws_session_token=s.get("aws_session_token"),
                aws_region=s["aws_region"],
                base_url=self.base_url,
                max_retries=self.sdk_max_retries,
                timeout=self.options.timeout,
                http_client=anthropic.DefaultAsyncHttpxClient(event_hooks={"request": [hook]}),
            )
        return self._client

    def model_id(self, model: str) -> str:
        return bedrock_model_id(model)

    def body_prefix(self, request: ProviderRequest) -> dict[str, Any]:
        # the SDK pops `model` (into the URL) and `stream` (into the path); anthropic_version leads
        return {"anthropic_version": BEDROCK_VERSION, "model": self.model_id(request.model)}

    def secrets(self) -> list[str]:
        return [str(v) for k, v in self.settings.items() if v and k in ("aws_secret_key", "aws_session_token")]

    def trace_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k not in ("model", "stream")}
