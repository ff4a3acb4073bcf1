"""A migrate-shaped bot file (tests/fixtures/postprocess/migrated/wren.yaml) through the runtime entry
points: bot-level fallbacks, the `folder` of carried `.chr` texts, templating, stops and reply parsing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ruamel.yaml import YAML

from chapterx_compat.chapter2.formats.generation import parse_replies, prepare_request
from chapterx_compat.chapter2.formats.prompt import chapter2_prompt_from_bot_config, messages_from_turns
from tests.conftest import FIXTURES_DIR

BOT_DIR = FIXTURES_DIR / "postprocess" / "migrated"


@dataclass
class Turn:
    participant: str
    body: str
    message_id: str | None = None
    timestamp: str | None = None

    def text(self) -> str:
        return self.body


def _config() -> dict:
    return dict(YAML(typ="safe").load((BOT_DIR / "wren.yaml").read_text()))


def test_migrated_bot_prompt_and_request() -> None:
    config = _config()
    prompt_keys = chapter2_prompt_from_bot_config(config)
    assert prompt_keys["recency_window"] == 2 and prompt_keys["continuation_max_tokens"] == 50
    history = messages_from_turns([
        Turn("tobin", "morning", "1", "2025-03-14T08:00:00Z"),
        Turn("wren", "morning tobin"),
        Turn("marigold", "is the fog coming?\nat dusk?"),
    ])
    req = prepare_request(prompt_keys, history, em_name="wren", now=datetime(2025, 3, 14, 9), base_dir=BOT_DIR)
    # query = last message only (attention 1): "marigold: is the fog coming? at dusk? " shares fog/at/dusk
    # with the second saying, so it ranks best and (prepend) sits last, next to the history.
    assert req.prompt == (
        "<wren> the lamp is lit\n###\n<wren> fog rolls in at dusk\n###\n"
        "Log of 2025-03-14\n"
        "wren: morning tobin\nmarigold: is the fog coming?\nat dusk?\n"
        "wren:"
    )
    assert req.stop_sequences == ["###", "\nmarigold:"]
    assert req.max_tokens == 50
    replies = parse_replies(req.settings, " yes, by six\nthe boats are in\nmarigold: thanks", "wren")
    assert [(m.author.name if m.author else None, m.content) for m in replies] == [
        ("wren", "yes, by six"), ("wren", "the boats are in"), ("wren", "thanks"),
    ]


def test_missing_corpus_is_a_warning_not_a_crash(tmp_path) -> None:
    req = prepare_request(chapter2_prompt_from_bot_config(_config()), [], em_name="wren",
                          now=datetime(2025, 3, 14), base_dir=tmp_path)
    assert req.prompt == "Log of 2025-03-14\nwren:"
    assert any("no chunks" in w for w in req.warnings)


def test_json_dumped_infinities_are_accepted() -> None:
    from chapterx_compat.chapter2.formats import Author, Message
    from chapterx_compat.chapter2.formats.generation import build_stop_sequences
    from chapterx_compat.chapter2.formats.prompt import PromptSettings, assemble_prompt

    keys = {"recency_window": "Infinity", "message_history_max_tokens": "Infinity",
            "ensembles": [{"faculty": "character", "recent_message_attention": "Infinity",
                           "ensemble_format": [{"format": {"name": "irc"}, "max_tokens": "Infinity"}]}]}
    history = [Message(Author("a"), "one"), Message(Author("b"), "two")]
    settings = PromptSettings.from_dict(keys)
    assert build_stop_sequences(settings, history, "wren") == ["\n<b>", "\n<a>"]
    assert assemble_prompt(keys, history, em_name="wren", now=datetime(2025, 1, 1), base_dir=BOT_DIR) == (
        "<a> one\n<b> two\n<wren>"
    )
