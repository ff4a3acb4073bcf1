"""Google Gemini through the official `google-genai` SDK.

Translation (golden README 5): roles user/model with one part per content block (consecutive
same-role turns merged), images as `inlineData`, the system prompt as `systemInstruction`,
sampling in `generationConfig` with the stop list cut to 5, and `responseModalities` from the
request (`generate_images`) or, when unset, ["TEXT", "IMAGE"] for image-capable model names.
Upstream sent the API key as the `key` query parameter; a request hook on the SDK's httpx client
moves it there from the SDK's `x-goog-api-key` header so requests are identical.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gt

from chapterx.llm.errors import ProviderError
from chapterx.llm.providers.base import (
    Provider,
    StopCutter,
    status_error,
    stream_finish,
    transport_error,
    with_stall_timeout,
)
from chapterx.llm.types import ContentBlock, ProviderRequest, ProviderResponse

_FINISH = {"STOP": "end_turn", "MAX_TOKENS": "max_tokens", "SAFETY": "refusal", "RECITATION": "refusal",
           "PROHIBITED_CONTENT": "refusal", "BLOCKLIST": "refusal", "SPII": "refusal"}


def _key_to_query(request: httpx2.Request) -> None:
    """httpx request hook: send the API key as `?key=` (upstream's form), not as a header."""
    key = request.headers.pop("x-goog-api-key", None)
    if key:
        request.url = request.url.copy_merge_params({"key": key})


_PLACEHOLDER = [gt.Content(role="user", parts=[gt.Part(text="")])]


def _system_text(system: str | list[ContentBlock]) -> str:
    if isinstance(system, str):
        return system
    return "\n".join(b.get("text", "") for b in system if b.get("type") == "text")


class GeminiProvider(Provider):
    kind = "gemini"
    stop_cap = 5
    error_prefix = "Gemini API error: "

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: genai.Client | None = None
        self._http: httpx2.AsyncClient | None = None

    def client(self) -> genai.Client:
        if self._client is None:
            parts = urlsplit(self.base_url)
            version = parts.path.strip("/") or "v1beta"
            self._http = httpx2.AsyncClient(
                event_hooks={"request": [self._hook]}, timeout=self.options.timeout
            )
            self._client = genai.Client(
                vertexai=False,  # the environment must not switch a gemini vendor to Vertex AI
                api_key=str(self.settings["api_key"]),
                http_options=gt.HttpOptions(
                    base_url=f"{parts.scheme}://{parts.netloc}/",
                    api_version=version,
                    httpx_async_client=self._http,
                    retry_options=gt.HttpRetryOptions(attempts=1),
                ),
            )
        return self._client

    @staticmethod
    async def _hook(request: httpx2.Request) -> None:
        _key_to_query(request)

    # -- request -----------------------------------------------------------------------------
    @staticmethod
    def _parts(content: str | list[ContentBlock]) -> list[dict[str, Any]]:
        """Content blocks as Gemini JSON parts (camelCase, as upstream and the API docs spell them)."""
        if isinstance(content, str):
            return [{"text": content}]
        parts: list[dict[str, Any]] = []
        for block in content:
            btype = block.get("type")
            if btype == "text":
                parts.append({"text": block.get("text", "")})
            elif btype == "image":
                src = block.get("source") or {}
                parts.append({"inlineData": {"mimeType": src.get("media_type") or src.get("mediaType") or "image/png",
                                             "data": src.get("data", "")}})
            elif btype == "tool_use":
                parts.append({"functionCall": {"name": block.get("name"), "args": block.get("input") or {}}})
            elif btype == "tool_result":
                value = block.get("content", "")
                if isinstance(value, list):
                    value = "\n".join(b.get("text", "") for b in value if b.get("type") == "text")
                parts.append({"functionResponse": {"name": block.get("name") or block.get("tool_use_id") or "tool",
                                                   "response": {"output": value}}})
        return parts

    def contents_json(self, request: ProviderRequest) -> list[dict[str, Any]]:
        """`contents`: roles user/model, one part per block, consecutive same-role turns merged."""
        out: list[dict[str, Any]] = []
        for msg in request.messages:
            if msg.role == "system":
                continue
            role = "model" if msg.role == "assistant" else "user"
            parts = self._parts(msg.content)
            if out and out[-1]["role"] == role:
                out[-1]["parts"].extend(parts)
            else:
                out.append({"role": role, "parts": parts})
        return out

    def modalities(self, request: ProviderRequest) -> list[str] | None:
        if request.response_modalities is not None:
            return list(request.response_modalities)
        return ["TEXT", "IMAGE"] if "image" in request.model.lower() else None

    def config(self, request: ProviderRequest,
               contents: list[dict[str, Any]] | None = None) -> gt.GenerateContentConfig:
        """The SDK config; `contents` when the caller already translated them (else done here)."""
        kwargs: dict[str, Any] = {"max_output_tokens": request.max_tokens}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.top_k is not None:
            kwargs["top_k"] = request.top_k
        if request.stop_sequences and not request.tools:
            kwargs["stop_sequences"] = self.capped_stops(request.stop_sequences)
        modalities = self.modalities(request)
        if modalities:
            kwargs["response_modalities"] = modalities
        if request.system:
            kwargs["system_instruction"] = gt.Content(parts=[gt.Part(text=_system_text(request.system))])
        if request.tools:
            kwargs["tools"] = [gt.Tool(function_declarations=[
                gt.FunctionDeclaration(name=t["name"], description=t.get("description"),
                                       parameters_json_schema=t.get("input_schema") or t.get("inputSchema"))
                for t in request.tools
            ])]
        # The exact JSON `contents` go through `extra_body`, which the SDK merges over the body it
        # built: its own serialisation spells inline images `inline_data.mime_type` (upstream and
        # the API docs use `inlineData.mimeType`) and converting hundreds of parts through its typed
        # models costs ~0.4 s per call, so the typed `contents` argument is only a placeholder.
        extra: dict[str, Any] = {"contents": self.contents_json(request) if contents is None else contents}
        extra.update(request.extra)
        kwargs["http_options"] = gt.HttpOptions(extra_body=extra)
        return gt.GenerateContentConfig(**kwargs)

    def build_body(self, request: ProviderRequest) -> dict[str, Any]:
        """The body as sent (for the trace): what the SDK serialises from contents and config."""
        contents = self.contents_json(request)
        cfg = self.config(request, contents)
        body: dict[str, Any] = {"contents": contents}
        if isinstance(cfg.system_instruction, gt.Content):
            body["systemInstruction"] = cfg.system_instruction.model_dump(mode="json", exclude_none=True, by_alias=True)
        gen = cfg.model_dump(mode="json", exclude_none=True, by_alias=True,
                             exclude={"system_instruction", "http_options", "tools"})
        body["generationConfig"] = gen
        for key, value in request.extra.items():
            if isinstance(value, dict) and isinstance(body.get(key), dict):
                body[key] = {**body[key], **value}
            else:
                body[key] = value
        return body

    # -- one attempt -------------------------------------------------------------------------
    async def _attempt(self, request: ProviderRequest, body: dict[str, Any], cutter: StopCutter) -> ProviderResponse:
        aio = self.client().aio
        contents: Any = _PLACEHOLDER  # replaced by config.http_options.extra_body["contents"]
        config = self.config(request)
        images: list[ContentBlock] = []
        calls: list[ContentBlock] = []
        thoughts: list[str] = []
        finish: str | None = None
        usage: dict[str, int] = {}
        model = request.model

        def take(resp: gt.GenerateContentResponse) -> None:
            nonlocal finish, usage, model
            if resp.model_version:
                model = resp.model_version
            if resp.usage_metadata is not None:
                um = resp.usage_metadata
                usage = {"input_tokens": int(um.prompt_token_count or 0),
                         "output_tokens": int(um.candidates_token_count or 0)}
                if um.cached_content_token_count:
                    usage["cache_read_input_tokens"] = int(um.cached_content_token_count)
            for cand in resp.candidates or []:
                if cand.finish_reason is not None:
                    finish = str(getattr(cand.finish_reason, "value", cand.finish_reason))
                for part in (cand.content.parts if cand.content else None) or []:
                    if part.text and part.thought:
                        thoughts.append(part.text)
                    elif part.text:
                        cutter.feed(part.text)
                    if part.function_call is not None:
                        fc = part.function_call
                        calls.append({"type": "tool_use", "id": fc.id or f"call_{len(calls) + 1}",
                                      "name": fc.name or "", "input": dict(fc.args or {})})
                    if part.inline_data is not None and part.inline_data.data is not None:
                        images.append({"type": "image", "source": {
                            "type": "base64", "media_type": part.inline_data.mime_type or "image/png",
                            "data": base64.b64encode(part.inline_data.data).decode()}})

        if request.stream:
            stream = await aio.models.generate_content_stream(model=request.model, contents=contents, config=config)
            async for chunk in with_stall_timeout(stream, self.options.stall_timeout):
                take(chunk)
                if cutter.hit is not None:
                    break  # Gemini only knew 5 stops
            finish = stream_finish(cutter, finish, self.error_prefix, "STOP")
        else:
            take(await aio.models.generate_content(model=request.model, contents=contents, config=config))
        text = cutter.finish()
        content: list[ContentBlock] = [{"type": "thinking", "thinking": "".join(thoughts)}] if thoughts else []
        content += ([{"type": "text", "text": text}] if text else []) + images + calls
        stop_reason = "tool_use" if calls else _FINISH.get(finish or "STOP", "end_turn")
        stop_sequence = None
        if cutter.hit is not None and stop_reason == "end_turn":
            stop_reason, stop_sequence = "stop_sequence", cutter.hit
        raw = {"content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence, "model": model,
               "usage": usage, "finish_reason": finish}
        return ProviderResponse(text=text, content=content, stop_reason=stop_reason, stop_sequence=stop_sequence,
                                usage=usage, model=model, raw=raw)

    def _classify(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, genai_errors.APIError):
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            text = ""
            try:
                text = response.text if response is not None and hasattr(response, "text") else ""
            except Exception:  # noqa: BLE001
                text = ""
            if not isinstance(text, str) or not text:
                text = str(exc.details) if getattr(exc, "details", None) else str(exc.message)
            return status_error(self.error_prefix, int(exc.code or 0), text, headers)
        if isinstance(exc, httpx2.TimeoutException):
            return ProviderError(f"{self.error_prefix}request timed out", retryable=True)
        fallback = ProviderError(f"{self.error_prefix}{type(exc).__name__}", retryable=False)
        return transport_error(exc, self.error_prefix) or fallback
