"""chapter2's message formats: render a message, the completion name prefix, parse a completion, merge lines.

The formats are pydantic models so that a `message_history_format` mapping is validated the way chapter2
validates it (a smart union: `{}` is IRC, `{suffix: ...}` without a name is colon, unknown names and
missing chat fields fail with one error per union member). Behaviour follows chapter2.md §3.3 and §5.4;
the crash-on-missing-author quirks of python_repl and infrastruct are not reproduced (see
docs/differences.md#postprocess).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import pydantic

from chapterx_compat.chapter2.formats.messages import Author, Message

MERGE_MAX_LENGTH = 1900

_IRC_LINE_RE = re.compile(r"^(?:<([^\n]+)> ?)?([^<].*?)\s?(?:\[id:[0-9a-f]+])?$", re.MULTILINE)
_COLON_LINE_RE = re.compile(r"^(?:(?:([^\n]+?):)? ?)?([^:].*)$")
_COLON_LIST_ITEM_RE = re.compile(r"^\s*\d*\.|^-|^•")
_INFRA_HEADER_RE = re.compile(r"^\[([\w:/.-]+)]\(#([\w-]*)\)")
_CHAT_NAME_CHAR_RE = re.compile(r"[a-zA-Z0-9_-]")


def _lines(content: str) -> list[str]:
    return content.splitlines()


class _Format(pydantic.BaseModel):
    """Shared behaviour; each subclass fixes `name` to a literal."""

    def render(self, message: Message) -> str:
        raise NotImplementedError

    def name_prefix(self, name: str) -> str | None:
        return None

    def parse(self, continuation: str) -> list[Message]:
        raise NotImplementedError

    def merge(self, messages: Sequence[Message], max_length: int | None = MERGE_MAX_LENGTH) -> Iterator[Message]:
        """Join consecutive parsed messages with `\\n` (used when `split_message` is false).

        A new message starts when the joined text would exceed `max_length`, when the next message has an
        author object different from the current one (`Author(None)` counts), or when the next message
        opens a code block and the current one has none open.
        """
        if not messages:
            return
        current = messages[0]
        for message in messages[1:]:
            if (
                (max_length and len(current.content) + len(message.content) > max_length)
                or (message.author is not None and current.author != message.author)
                or (_has_open_code_block(message.content) and not _has_open_code_block(current.content))
            ):
                yield current
                current = Message(message.author, message.content)
            else:
                current = Message(current.author, current.content + "\n" + message.content)
        yield current


def _has_open_code_block(text: str) -> bool:
    return text.count("```") % 2 == 1


class IRCMessageFormat(_Format):
    name: Literal["irc"] = "irc"
    include_id: bool = False
    separate_lines: bool = True

    def render(self, message: Message) -> str:
        if message.author is None:
            return message.content + "\n"
        tag = f"<{message.author.name}> "
        out = tag
        if self.include_id and message.reply_to is not None:
            out += f"[reply:{message.reply_to[:5]}] "
        lines = _lines(message.content)
        if lines:
            out += lines[0]
            for line in lines[1:]:
                if line.isspace():
                    continue  # "" is not whitespace-only in Python, so empty lines stay
                out += "\n" + (tag if self.separate_lines else "") + line
        if self.include_id and message.id is not None:
            out += f" [id:{message.id[:5]}]"
        return out + "\n"

    def name_prefix(self, name: str) -> str:
        return f"<{name}>"

    def parse(self, continuation: str) -> list[Message]:
        return [Message(Author(m.group(1)), m.group(2)) for m in _IRC_LINE_RE.finditer(continuation)]


class ColonMessageFormat(_Format):
    name: Literal["colon"] = "colon"
    suffix: str = "\n"
    separate_lines: bool = False
    strip: bool = False

    def render(self, message: Message) -> str:
        if message.author is None:
            return message.content + self.suffix
        name = message.author.name
        kept = [line for line in _lines(message.content) if line.strip() != ""]
        if name is not None and self.separate_lines:
            kept = [f"{name}: {line}" for line in kept]
        head = f"{name}: " if name is not None and not self.separate_lines else ""
        return head + self.suffix.join(kept) + self.suffix

    def name_prefix(self, name: str) -> str:
        return f"{name}:"

    def parse(self, continuation: str) -> list[Message]:
        out: list[Message] = []
        for line in continuation.splitlines():
            m = _COLON_LINE_RE.match(line)
            if m is None:
                continue
            name, content = m.group(1), m.group(2)
            author: Author | None
            if name is None or name.strip() == "":
                author = None
            elif _COLON_LIST_ITEM_RE.match(line):
                author, content = None, f"{name}: {content}"  # "1. item: x", "- a: b", "• c: d"
            else:
                author = Author(name.strip())
            out.append(Message(author, content.strip() if self.strip else content))
        return out


class WebDocumentMessageFormat(_Format):
    name: Literal["web_document"] = "web_document"

    def render(self, message: Message) -> str:
        author = message.author.name if message.author is not None else None
        date = ""
        if message.timestamp is not None:
            date = datetime.fromtimestamp(message.timestamp, UTC).strftime(" @ %Y-%m-%d")
        return f"from {author}{date}\n{message.content}\n"


class PythonREPLMessageFormat(_Format):
    name: Literal["python_repl"] = "python_repl"

    def render(self, message: Message) -> str:
        if message.author is None or message.author.name == "interpreter":
            return message.content + "\n"
        lines = _lines(message.content)
        body = "\n".join((">>> " if i == 0 else "... ") + line for i, line in enumerate(lines))
        return body + ("\n..." if len(lines) > 1 else "") + "\n"

    def name_prefix(self, name: str) -> str:
        return "" if name == "interpreter" else ">>>"

    def parse(self, continuation: str) -> list[Message]:
        sections: list[tuple[str, str]] = []
        user: list[str] = []
        interp: list[str] = []
        for line in continuation.split("\n"):
            if line.startswith(">>> ") or line.startswith("... "):
                if interp:
                    text = "\n".join(interp)
                    if text.strip():
                        sections.append(("interpreter", text))
                    interp = []
                user.append(line[4:])
            else:
                if user:
                    sections.append(("user", "\n".join(user)))
                    user = []
                interp.append(line)
        if user:
            sections.append(("user", "\n".join(user)))
        if interp and "\n".join(interp).strip():
            sections.append(("interpreter", "\n".join(interp)))
        return [Message(Author(name), content) for name, content in sections]


class InfrastructMessageFormat(_Format):
    name: Literal["infrastruct"] = "infrastruct"
    type: str = "message"

    def render(self, message: Message) -> str:
        name = message.author.name if message.author is not None else None
        if message.type is not None:
            kind = message.type
        elif name == "system":
            kind = "instructions"
        else:
            kind = self.type
        content = message.content
        if "\n\n" not in content:
            content = re.sub(r"(?<!\n)\n(?!\n)", "\n\n", content)
        if name in ("", None):
            return content.rstrip()
        return f"[{name}](#{kind})\n{content.rstrip()}\n"

    def name_prefix(self, name: str) -> str:
        return f"[{name}](#{'instructions' if name == 'system' else self.type})"

    def parse(self, continuation: str) -> list[Message]:
        out: list[Message] = []
        content = ""
        name: str | None = None
        kind: str | None = None
        started = False
        for line in continuation.splitlines(keepends=True):
            m = _INFRA_HEADER_RE.match(line)
            if m:
                if started:
                    out.append(Message(Author(name), content.rstrip(), type=kind))
                started = True
                name, kind = m.group(1), m.group(2)
                if (name == "system" and kind == "instructions") or (name != "system" and kind == "message"):
                    kind = None
                content = ""
            elif line.strip() == "":
                if not content.endswith("\n"):
                    content += "\n"
            else:
                content += line
        if content != "" or name is not None:
            out.append(Message(Author(name), content.rstrip(), type=kind))
        return out


class ChatMessageFormat(_Format):
    name: Literal["chat"] = "chat"
    assistant_name: str | None
    name_format: str = "<{}>"
    role_start: str
    role_end: str
    turn_end: str

    def render(self, message: Message) -> str:
        name = message.author.name if message.author is not None and message.author.name else ""
        return self.name_prefix(name) + message.content + self.turn_end

    def name_prefix(self, name: str | None) -> str:
        cleaned = "".join(c if _CHAT_NAME_CHAR_RE.match(c) else "-" for c in (name or ""))
        role = "assistant" if cleaned and cleaned == self.assistant_name else "user"
        tag = self.name_format.format(cleaned) if cleaned else ""
        return self.role_start + role + self.role_end + tag

    def parse(self, continuation: str) -> list[Message]:
        rest = continuation.removeprefix(self.name_prefix(self.assistant_name))
        return [Message(Author(self.assistant_name), line) for line in rest.splitlines()]


MessageFormat = (
    IRCMessageFormat
    | ColonMessageFormat
    | WebDocumentMessageFormat
    | PythonREPLMessageFormat
    | InfrastructMessageFormat
    | ChatMessageFormat
)
_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(MessageFormat)


def load_format(value: Any) -> MessageFormat:
    """Validate a `message_history_format` / `format` mapping; raises `pydantic.ValidationError`."""
    if isinstance(value, _Format):
        return value  # type: ignore[return-value]
    result: MessageFormat = _ADAPTER.validate_python(value)
    return result
