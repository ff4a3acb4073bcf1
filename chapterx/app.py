"""App wiring for one bot process (reference §0): config, token, vendors, Discord, runtime, API, shutdown.

The Discord adapter (`chapterx.discord`) only adapts discord.py; this module decides what runs.

`prepare_bot(...)` does every check that can fail on operator input (config, token file, vendor
for the model) and returns a `BotPlan`; `serve(plan)` connects and runs until SIGTERM/SIGINT.
Each failure is one `UserError` line; the token itself never reaches a log, trace or message.

Testing hooks (environment): `CHAPTERX_DISCORD_API` points discord.py at another Discord-compatible
REST base (its `/gateway/bot` answer gives the gateway), `CHAPTERX_LLM_BASE_URL` sends every vendor
request to one base URL (a local fake LLM server).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chapterx.agent.plugins import PluginHost
from chapterx.agent.runtime import BotRuntime, RuntimeOptions
from chapterx.config.env import Settings
from chapterx.config.load import resolve_bot_config
from chapterx.config.secrets import register_secrets
from chapterx.discord.connector import ConnectorApiBackend, DiscordConnector, connection_failure_message
from chapterx.errors import UserError
from chapterx.fleet.sdnotify import Notifier, run_notifier
from chapterx.llm.routing import Router
from chapterx.trace.paths import check_trace_dir
from chapterx.trace.redact import Redactor, secrets_in
from chapterx.trace.writer import TraceWriter, set_writer

log = logging.getLogger("chapterx.run")


@dataclass
class BotPlan:
    """Everything `serve` needs, resolved and checked."""

    bot_file: Path | None
    ems_path: Path | None
    bot_name: str | None
    settings: Settings
    env: Mapping[str, str]
    token: str = field(repr=False)
    bot_id: str | None
    model: str
    vendors: list[Any]
    base_dir: Path
    cleanup: tempfile.TemporaryDirectory[str] | None = None
    chapter2: bool = False
    source: str = ""  # what the operator pointed at (bot file, EMS folder or chapter2 em)


_MAX_TOKEN_BYTES = 4096  # Discord tokens are ~70 characters


def _read_token(path: Path) -> str:
    """The token, stripped; a path that is not a small regular text file is a one-line error."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UserError(f"Discord token file not found: {path}", 2) from None
    except OSError as exc:
        raise UserError(f"Discord token file unreadable: {path} ({exc.strerror})", 2) from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"Discord token file is a directory: {path}", 2)
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise UserError(f"Discord token file is not a regular file: {path}", 2)
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise UserError(f"Discord token file unreadable: {path} ({exc.strerror})", 2) from None
    if len(raw) > _MAX_TOKEN_BYTES:
        raise UserError(f"Discord token file is too large to be a token: {path}", 1)
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UserError(f"Discord token file is not UTF-8 text: {path}", 1) from None
    if not token:
        raise UserError(f"Discord token file is empty: {path}", 1)
    return token


def _chapter2_in_place(ems: Path, name: str, home: bool) -> tuple[Path, Path | None, tempfile.TemporaryDirectory[str]]:
    """Translate a chapter2 em into a private temporary ChapterX tree (the em folder is not touched)."""
    from chapterx_compat.chapter2.migrate import (  # chapter2 ems only (compat imports chapterx)
        plan_migration,
        write_plan,
    )

    plan = plan_migration(ems, bots=[name], home=home, bots_option="--bot")
    tmp = tempfile.TemporaryDirectory(prefix="chapterx-run-")
    os.chmod(tmp.name, 0o700)
    out = Path(tmp.name) / "tree"
    write_plan(plan, out)
    token = out / "config" / "bots" / f"{name}_discord_token"
    return out / "config" / "bots" / f"{name}.yaml", token if token.exists() else None, tmp


def prepare_bot(*, bot_file: Path | None = None, ems: Path | None = None, bot: str | None = None,
                env: Mapping[str, str] | None = None, chapter2_home: bool = False) -> BotPlan:
    """Resolve config, token and vendors; raise one-line UserErrors for anything missing."""
    environ: Mapping[str, str] = dict(os.environ if env is None else env)
    settings = Settings.from_env(environ)
    check_trace_dir(settings.logs_dir, settings.trace_dir if environ.get("TRACE_DIR") else None)
    bot_name = bot or settings.bot_name
    if bot_file is None and ems is None:
        bot_file = settings.bot_config
        if bot_file is None and settings.ems_path is not None and bot_name:
            ems = settings.ems_path
    cleanup = None
    chapter2 = False
    source = ""
    token_file: Path | None = settings.discord_token_file
    if ems is not None:
        from chapterx_compat.chapter2.api import looks_like_chapter2

        if not bot_name:
            raise UserError("--ems needs a bot name (--bot or BOT_NAME)", 2)
        if not Path(ems).is_dir():
            raise UserError(f"EMS folder not found: {ems}", 2)
        if looks_like_chapter2(Path(ems)):
            chapter2 = True
            source = str(Path(ems) / bot_name)
            em_token = Path(ems) / bot_name / "discord_token"
            bot_file, translated_token, cleanup = _chapter2_in_place(Path(ems), bot_name, chapter2_home)
            ems = None
            if token_file is None:
                token_file = em_token if em_token.exists() else translated_token or em_token
        elif token_file is None:
            token_file = Path(ems) / bot_name / "discord_token"
    if token_file is None and bot_file is not None:
        sibling = Path(bot_file).parent / f"{Path(bot_file).stem}_discord_token"
        token_file = sibling if sibling.exists() else None
    resolved = resolve_bot_config(bot_file=bot_file, ems_path=ems, bot_name=bot_name, env=environ)
    if token_file is None:
        token_path = dataclasses.replace(settings, bot_name=resolved.bot_id if bot_name else None).token_file()
    else:
        token_path = token_file if token_file.is_absolute() else Path.cwd() / token_file
    token = _read_token(token_path)
    register_secrets([token])  # scrubbed from every Discord post and provider request
    model = str(resolved.config.get("continuation_model") or "")
    router = Router(resolved.vendors, env=environ)
    # NoVendorError (a UserError) names the model and the vendors tried. Only the adapter is resolved:
    # the vendor SDK is imported once Discord is ready (see `serve`), not on the start-up path.
    router.adapter_for(model)
    for w in resolved.warnings:
        log.warning("config: %s", w.message)
    base_dir = Path(bot_file).parent if bot_file is not None else Path(ems or ".") / (bot_name or "")
    return BotPlan(bot_file=Path(bot_file) if bot_file else None, ems_path=Path(ems) if ems else None,
                   bot_name=bot_name, settings=settings, env=environ, token=token,
                   bot_id=bot_name or (resolved.bot_id if bot_file is None else None), model=model,
                   vendors=resolved.vendors, base_dir=base_dir, cleanup=cleanup, chapter2=chapter2,
                   source=source or str(bot_file or Path(ems or ".") / (bot_name or "")))


class CachedConfigLoader:
    """Resolved configs cached per (guild, pinned texts) until a file they came from changes.

    Decisions and activations resolve the config for every batch; re-reading and re-validating the
    YAML layers each time costs milliseconds, so results are reused while the files that were read
    (and the folders where new guild files could appear) keep their modification times.
    """

    def __init__(self, plan: BotPlan) -> None:
        self.plan = plan
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[tuple[float, ...], Mapping[str, Any]]] = {}
        self._paths: dict[tuple[str, tuple[str, ...]], list[Path]] = {}
        self.secrets: list[str] = []
        self._logged: set[str] = set()  # warnings already logged (start-up ones included)

    def _log_new_warnings(self, guild_id: str, texts: list[str], warnings: list[Any]) -> None:
        """Log what a pinned `.config` got refused or ignored for, once per message: a pin whose
        `system_prompt_file` is refused used to leave no line anywhere (issue 9, item 1)."""
        if len(self._logged) > 1000:
            self._logged.clear()
        for w in warnings:
            if w.message in self._logged:
                continue
            self._logged.add(w.message)
            if texts:  # warnings without pins were logged at start-up
                log.warning("config (pinned .config, guild %s): %s", guild_id or "-", w.message)

    def _watched(self, resolved: Any) -> list[Path]:
        paths = [Path(p) for p in resolved.paths]
        root = Path(resolved.config_root)
        return [*paths, root, root / "guilds", root / "bots"] + ([self.plan.bot_file.parent] if self.plan.bot_file else [])

    @staticmethod
    def _stamp(paths: list[Path]) -> tuple[float, ...]:
        out = []
        for p in paths:
            try:
                out.append(p.stat().st_mtime)
            except OSError:
                out.append(-1.0)
        return tuple(out)

    def __call__(self, guild_id: str, texts: list[str]) -> Mapping[str, Any]:
        key = (guild_id, tuple(texts))
        hit = self._cache.get(key)
        if hit is not None and self._stamp(list(self._paths[key])) == hit[0]:
            return hit[1]
        if texts and (guild_id, ()) not in self._cache:
            self(guild_id, [])  # the pin-less warnings were logged at start-up: mark them as seen
        plan = self.plan
        resolved = resolve_bot_config(bot_file=plan.bot_file, ems_path=plan.ems_path, bot_name=plan.bot_name,
                                      guild_id=guild_id or None, channel_configs=texts, env=plan.env)
        self.secrets = secrets_in(resolved.config)
        self._log_new_warnings(guild_id, texts, resolved.warnings)
        watched = self._watched(resolved)
        self._paths[key] = watched
        if len(self._cache) > 512:
            self._cache.clear()
            self._paths = {key: watched}
        self._cache[key] = (self._stamp(watched), resolved.config)
        return resolved.config


def _tool_system(plan: BotPlan, runtime_for: Callable[[str], Any]) -> Any:
    """The process's ToolSystem; a due timer becomes a `self_activation` in its guild's runtime."""
    from chapterx.agent.queue import Event
    from chapterx.tools.system import ToolSystem

    def fire(timer: Any) -> None:
        runtime_for(timer.guildId).queue.push(Event("self_activation", timer.channelId, timer.guildId, data={
            "type": "timer", "timer_id": timer.id, "context_note": timer.contextNote}))

    return ToolSystem(plan.settings.cache_path, on_timer=fire, base_dir=Path.cwd(), bot_id=plan.bot_id or None)


async def serve(plan: BotPlan, *, stop: asyncio.Event | None = None, handle_signals: bool = True,
                on_ready: Callable[[], None] | None = None) -> int:
    """Connect to Discord and run the batch loop until SIGTERM/SIGINT (or `stop` is set).

    `on_ready` is called once the gateway session is ready (service managers, tests, benchmarks);
    `handle_signals=False` leaves the process's signal handlers alone (a bot served inside tests)."""
    env = plan.env
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    redactor = Redactor([plan.token], env=env)
    writer = TraceWriter(plan.settings.logs_dir, plan.settings.trace_dir, redactor=redactor, env=env)
    set_writer(writer)
    router = Router(plan.vendors, env=env, base_url_override=env.get("CHAPTERX_LLM_BASE_URL") or None)

    cached_loader = CachedConfigLoader(plan)

    def load_config(guild_id: str, texts: list[str]) -> Mapping[str, Any]:
        config = cached_loader(guild_id, texts)
        redactor.add_secrets(cached_loader.secrets)
        return config

    runtimes: dict[str, BotRuntime] = {}
    connector: DiscordConnector
    tools = _tool_system(plan, lambda guild_id: runtime_for(guild_id))  # plugins, timers, MCP, Soma, TTS

    def runtime_for(guild_id: str) -> BotRuntime:
        rt = runtimes.get(guild_id)
        if rt is None:
            bot_id = plan.bot_id or connector.bot_username or "bot"
            rt = BotRuntime(connector.port_for(guild_id), RuntimeOptions(
                bot_id=bot_id, provider_factory=router.route,
                load_config=lambda texts: load_config(guild_id, texts), guild_config_loader=load_config,
                base_dir=plan.base_dir, trace_writer=writer,
                tool_log_dir=plan.settings.tools_path,
                thinking_dir=plan.settings.cache_path / "thinking", tools=tools,
                plugin_factory=lambda cfg, _channel: PluginHost(cfg, tools),
            ))
            runtimes[guild_id] = rt
            tasks.append(asyncio.create_task(rt.run()))
        return rt

    def on_event(event: Any) -> None:
        runtime_for(event.guild_id).queue.push(event)

    def on_pin(guild_id: str, channel_id: str, pin: Any, message_id: str) -> None:
        runtime_for(guild_id).port.set_pin(channel_id, pin, message_id)

    tasks: list[asyncio.Task[Any]] = []
    log.info("starting bot %s from %s%s: model %s, traces in %s", plan.bot_id or "(Discord username)", plan.source,
             " (chapter2 em, translated in place, with ChapterX activation rules)" if plan.chapter2 else "", plan.model, plan.settings.trace_dir)
    try:
        allow_dms = load_config("", []).get("allow_dms") is True
    except Exception as config_error:  # noqa: BLE001 - checked by prepare_bot; later edits show per activation
        log.warning("config: %s", config_error)
        allow_dms = False
    connector = DiscordConnector(on_event=on_event, on_pin=on_pin, api_base=env.get("CHAPTERX_DISCORD_API") or None,
                                 allow_dms=allow_dms)
    tasks.append(asyncio.create_task(run_notifier(connector.ready, stop, notifier=Notifier.from_env(env))))
    api_runner = None
    if plan.settings.api_bearer_token:
        from chapterx.api.server import start_api  # only with API_BEARER_TOKEN (aiohttp web app)

        redactor.add_secrets([plan.settings.api_bearer_token])
        api_runner = await start_api(ConnectorApiBackend(connector, lambda g: load_config(g, [])),
                                     plan.settings.api_bearer_token,
                                     plan.settings.api_port, host=env.get("API_HOST") or "127.0.0.1",
                                     cors_origin=env.get("API_CORS_ORIGIN") or None,
                                     trusted_proxies=(env.get("TRUSTED_PROXIES") or "").split(","))
        log.info("REST API listening on port %s", plan.settings.api_port)
    discord_task = asyncio.create_task(connector.start(plan.token))
    tasks.append(asyncio.create_task(tools.run_timers(stop)))

    async def after_ready() -> None:
        await connector.ready.wait()
        if on_ready is not None:
            on_ready()
        # Import the vendor SDK (a second or more) off the event loop now, so neither start-up nor
        # the first reply waits for it.
        try:
            await asyncio.to_thread(router.route, plan.model)
        except Exception as exc:  # noqa: BLE001 - the first activation reports it in context
            log.warning("provider for %s not ready: %s", plan.model, exc)

    tasks.append(asyncio.create_task(after_ready()))
    stop_task = asyncio.create_task(stop.wait())
    code = 0
    try:
        done, _ = await asyncio.wait({discord_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        exc = discord_task.exception() if discord_task in done else None
        if exc is not None:
            raise UserError(connection_failure_message(exc) or
                            f"Discord connection failed: {redactor.text(str(exc))}", 1)
        if discord_task in done and not stop.is_set():
            raise UserError("the Discord connection closed unexpectedly", 1)
        log.info("stopping")
    finally:
        for rt in runtimes.values():
            rt.stop()
        for rt in runtimes.values():
            await rt.drain(timeout=10)
        for t in tasks:
            t.cancel()
        if api_runner is not None:
            await api_runner.cleanup()
        await tools.aclose()  # MCP servers stop with the bot
        await connector.close()
        discord_task.cancel()
        stop_task.cancel()
        for t in [*tasks, discord_task, stop_task]:
            with contextlib.suppress(BaseException):
                await t
        await router.aclose()
        writer.close()
        set_writer(None)
        if plan.cleanup is not None:
            plan.cleanup.cleanup()
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return code
