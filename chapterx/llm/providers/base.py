"""What every provider shares: retries with backoff, stall detection, stop cutting, tracing.

A concrete provider implements `_attempt` (one HTTP exchange through its vendor's official SDK)
and `_classify` (SDK exception -> ProviderError). `complete` wraps attempts in our retry policy:

- attempts = max(1, llm_retries), at least 5 for HTTP 429 (as upstream's complete path);
- retryable: 408, 409, 429, 5xx (529 included), connection resets, timeouts, stalled streams,
  malformed streams; `retry-after` honoured, otherwise 1 s * 2^(n-1) capped at 30 s;
- never retried once any text reached `on_text`, so a caller never receives partial text twice
  (without `on_text` nothing is delivered before the call returns, so mid-stream failures retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from chapterx.config.secrets import scrub_outbound
from chapterx.llm.errors import ProviderError, scrub
from chapterx.llm.types import ProviderRequest, ProviderResponse

TextCallback = Callable[[str], None]
T = TypeVar("T")
log = logging.getLogger("chapterx.llm")
MAX_ERROR_BODY = 1000  # characters of an error body kept in the one-line error


@dataclass
class ProviderOptions:
    """Transport knobs (tests shrink the delays; production keeps the defaults)."""

    timeout: float = 600.0  # whole request (non-streaming) / connect+first byte
    stall_timeout: float = 120.0  # seconds without a stream event before the attempt is abandoned
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0
    sdk_max_retries: int | None = None  # None: the per-provider default (Anthropic SDK: 2, others 0)
    default_llm_retries: int = 0
    now: Callable[[], float] | None = None  # clock for request signing (Bedrock); None = time.time


class StreamStalled(Exception):
    """No stream event arrived within `stall_timeout`."""


async def with_stall_timeout(stream: AsyncIterator[T], timeout: float) -> AsyncIterator[T]:
    """Yield from an async iterator, raising StreamStalled if one item takes longer than `timeout`."""
    it = stream.__aiter__()
    while True:
        try:
            item = await asyncio.wait_for(it.__anext__(), timeout)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise StreamStalled(f"stream stalled: no data for {timeout:g} s") from exc
        yield item


class StopCutter:
    """Cuts streamed text at the first stop sequence, holding back what could start one.

    Upstream's LLM library also checks the stop list itself (OpenAI-style vendors only receive
    the first 4), so a hallucinated `\\nName:` turn is removed even when the vendor ends normally.
    """

    def __init__(self, stops: list[str], on_text: TextCallback | None) -> None:
        self.stops = [s for s in stops if s]
        self.on_text = on_text
        self.text = ""
        self.emitted = 0
        self.hit: str | None = None
        self.hold = max((len(s) for s in self.stops), default=1) - 1

    def feed(self, delta: str) -> None:
        if self.hit is not None or not delta:
            return
        self.text += delta
        cut = self._find()
        if cut is not None:
            pos, stop = cut
            self.hit = stop
            self.text = self.text[:pos]
            self._emit(len(self.text))
            return
        self._emit(max(self.emitted, len(self.text) - self.hold))

    def _find(self) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for stop in self.stops:
            pos = self.text.find(stop, max(0, self.emitted - len(stop)))
            if pos >= 0 and (best is None or pos < best[0]):
                best = (pos, stop)
        return best

    def _emit(self, upto: int) -> None:
        if upto > self.emitted:
            piece = self.text[self.emitted : upto]
            self.emitted = upto
            if self.on_text is not None and piece:
                self.on_text(piece)

    def finish(self) -> str:
        self._emit(len(self.text))
        return self.text


async def close_quietly(stream: Any) -> None:
    """Close a stream we stopped reading (or that broke); a failing close must not hide the answer or
    the original error."""
    close = getattr(stream, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


def connection_cause(exc: BaseException) -> str:
    """What broke under an SDK connection error (the wrapped exception's type), for a one-line message."""
    inner = exc.__cause__ or exc.__context__
    return type(inner).__name__ if inner is not None else str(exc)


def transport_error(exc: BaseException, prefix: str) -> ProviderError | None:
    """The failures every SDK lets through unwrapped (our stall detector, a broken or malformed body),
    as retryable errors; None for anything else. Providers check their SDK's own errors first."""
    import httpx2  # the SDKs' HTTP layer; only needed once something failed

    if isinstance(exc, StreamStalled):
        return ProviderError(f"{prefix}{exc}", retryable=True)
    if isinstance(exc, (httpx2.HTTPError, ValueError, KeyError)):
        return ProviderError(f"{prefix}malformed or interrupted response: {type(exc).__name__}", retryable=True)
    return None


def json_object(data: Any, prefix: str, what: str = "response") -> dict[str, Any]:
    """A response or stream event as the SDK decoded it. Requests pass `cast_to=object` (the SDKs'
    generic-request form): the JSON is read as dicts anyway, and typed SDK models would build
    their pydantic validators on first use and keep them for the life of the bot (bench/README.md)."""
    if not isinstance(data, dict):
        raise ProviderError(f"{prefix}{what} is not a JSON object", retryable=True)
    return data


def stream_finish(cutter: StopCutter, finish: str | None, prefix: str, cut_reason: str = "stop") -> str:
    """The finish reason of a stream: one we cut at a stop ends as `cut_reason` (the vendor's "stop");
    one that just ended without a reason was truncated (retryable)."""
    if cutter.hit is not None:
        finish = finish or cut_reason
    if finish is None:
        raise ProviderError(f"{prefix}stream ended without a finish reason", retryable=True)
    return finish


def _trace_collector() -> Any:
    try:
        from chapterx.trace.collector import current
    except ImportError:  # trace area absent
        return None
    return current()


class Provider:
    """Base class: subclasses set `kind` and implement `_attempt`, `_classify`, `build_body`."""

    kind = "base"
    error_prefix = ""
    default_sdk_retries = 0
    stop_cap: int | None = None

    def __init__(self, settings: dict[str, Any], *, base_url: str, options: ProviderOptions | None = None,
                 vendor_name: str = "", real_base_url: str | None = None) -> None:
        self.settings = settings
        self.base_url = base_url
        self.real_base_url = real_base_url or base_url
        self.options = options or ProviderOptions()
        self.vendor_name = vendor_name

    # -- to implement ----------------------------------------------------------------------
    def build_body(self, request: ProviderRequest) -> dict[str, Any]:
        raise NotImplementedError

    async def _attempt(self, request: ProviderRequest, body: dict[str, Any], cutter: StopCutter) -> ProviderResponse:
        raise NotImplementedError

    def _classify(self, exc: BaseException) -> ProviderError:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close the SDK client(s) so no connection outlives the event loop."""
        for name in ("_client", "_http", "_chat_provider"):
            obj = getattr(self, name, None)
            if obj is None:
                continue
            closer = getattr(obj, "aclose", None) or getattr(obj, "close", None)
            if closer is None:
                continue
            with contextlib.suppress(Exception):
                result = closer()
                if hasattr(result, "__await__"):
                    await result
            setattr(self, name, None)

    # -- shared ------------------------------------------------------------------------------
    @property
    def sdk_max_retries(self) -> int:
        if self.options.sdk_max_retries is not None:
            return self.options.sdk_max_retries
        return self.default_sdk_retries

    def secrets(self) -> list[str]:
        return [str(v) for k, v in self.settings.items() if v and ("key" in k or "token" in k or "secret" in k)]

    def trace_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request body as it goes over the wire (what the trace stores)."""
        return body

    def capped_stops(self, stops: list[str]) -> list[str]:
        return list(stops[: self.stop_cap]) if self.stop_cap is not None else list(stops)

    def cut_stops_for(self, request: ProviderRequest) -> list[str]:
        """Stop sequences we enforce on the returned text (none on the native tool path)."""
        return [] if request.tools else list(request.stop_sequences)

    async def complete(self, request: ProviderRequest, *, on_text: TextCallback | None = None) -> ProviderResponse:
        """Run the request with retries; deliver text once through `on_text`; record a trace."""
        body = scrub_outbound(self.build_body(request))  # no known secret reaches a provider
        llm_retries = request.llm_retries
        if llm_retries is None:
            llm_retries = self.options.default_llm_retries
        attempts = max(1, int(llm_retries))
        attempt = 0
        while True:
            attempt += 1
            cutter = StopCutter(self.cut_stops_for(request), on_text)
            started = time.monotonic()
            try:
                response = await self._attempt(request, body, cutter)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - classified below
                err = exc if isinstance(exc, ProviderError) else self._classify(exc)
                err.message = scrub(err.message, self.secrets())
                err.args = (err.message,)
                err.partial_text = cutter.text
                err.attempts = attempt
                self._record(request, body, None, started, error=err)
                limit = max(attempts, 5) if err.status == 429 else attempts
                delivered = on_text is not None and cutter.emitted > 0
                if not err.retryable or delivered or attempt >= limit:
                    log.error("LLM call to %s (%s) failed after %d attempt(s): %s", self.vendor_name or self.kind,
                              request.model, attempt, err.message)
                    raise err from (exc if exc is not err else None)
                delay = err.retry_after
                if delay is None:
                    delay = min(self.options.retry_base_delay * 2 ** (attempt - 1), self.options.retry_max_delay)
                log.warning("LLM call to %s (%s) failed (attempt %d of %d), retrying in %.1f s: %s",
                            self.vendor_name or self.kind, request.model, attempt, limit, delay, err.message)
                await asyncio.sleep(max(0.0, delay))
                continue
            self._record(request, body, response, started)
            return response

    def _record(self, request: ProviderRequest, body: dict[str, Any], response: ProviderResponse | None,
                started: float, error: ProviderError | None = None) -> None:
        """Hand one round trip (or failed attempt) to the trace collector, if one is active.

        The collector normalises usage and prices the call; tracing never breaks a call.
        """
        collector = _trace_collector()
        if collector is None:
            return
        err: dict[str, Any] | None = None
        if error is not None:
            err = {"message": error.message, "retryCount": max(0, error.attempts - 1)}
            if error.status is not None:
                err["code"] = str(error.status)
        with contextlib.suppress(Exception):
            collector.record_llm_call(
                self.trace_body(body),
                response.raw if response else None,
                model=request.model,
                usage=dict(response.usage) if response else None,
                stop_reason=response.stop_reason if response else None,
                duration_ms=(time.monotonic() - started) * 1000.0,
                error=err,
            )


def status_error(prefix: str, status: int, body_text: str, headers: Any) -> ProviderError:
    """ProviderError for an HTTP error answer, with retry classification and retry-after."""
    retry_after: float | None = None
    if headers is not None:
        ms = headers.get("retry-after-ms")
        raw = headers.get("retry-after")
        try:
            if ms is not None:
                retry_after = float(ms) / 1000.0
            elif raw is not None:
                retry_after = float(raw)
        except ValueError:
            retry_after = None
        if retry_after is not None:
            retry_after = min(max(retry_after, 0.0), 60.0)
    retryable = status in (408, 409, 429) or status >= 500
    text = " ".join(body_text.split()) if ("\n" in body_text or "\r" in body_text) else body_text
    if len(text) > MAX_ERROR_BODY:
        text = text[:MAX_ERROR_BODY] + "…"
    return ProviderError(f"{prefix}{status} {text}", status=status, retryable=retryable, retry_after=retry_after)
