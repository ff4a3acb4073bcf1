"""chapter2 prompt behaviour for chapterx: message formats, prompt assembly, completion parsing.

- `formats`: the six chapter2 message formats (render / name_prefix / parse / merge) and `load_format`.
- `prompt`: `assemble_prompt(chapter2_prompt, history, em_name=..., now=..., base_dir=...)`, the value of
  the bot config key `chapter2_prompt` (chapter2's prompt keys verbatim) turned into the exact prompt.
- `generation`: stop sequences, completion → reply messages, mufflers, trim_final_incomplete_sentence.
"""

from chapterx_compat.chapter2.formats.formats import (
    ChatMessageFormat,
    ColonMessageFormat,
    InfrastructMessageFormat,
    IRCMessageFormat,
    MessageFormat,
    PythonREPLMessageFormat,
    WebDocumentMessageFormat,
    load_format,
)
from chapterx_compat.chapter2.formats.messages import Author, Message

__all__ = [
    "Author",
    "ChatMessageFormat",
    "ColonMessageFormat",
    "IRCMessageFormat",
    "InfrastructMessageFormat",
    "Message",
    "MessageFormat",
    "PythonREPLMessageFormat",
    "WebDocumentMessageFormat",
    "load_format",
]
