"""chapter2's name rule on messages anyone can post: the same answers as chapter2's own regexes, without
their backtracking (an 800-character "a-a-a-..." message took 2.8 s there, stalling the bot)."""

from __future__ import annotations

import random
import re
import threading

from chapterx_compat.chapter2.runtime.activation import name_matches


def _chapter2_rule(content: str, names: list[str]) -> bool:
    """chapter2's patterns, verbatim in shape (the reference this rule must agree with)."""
    for name in names:
        n = re.escape(name)
        if re.match(r"^([^\s]+\b){0,3}" + n, content, re.IGNORECASE):
            return True
        if re.search(n + r"([^\s]+\b){0,3}$", content, re.IGNORECASE):
            return True
    return False


def test_same_answers_as_chapter2_on_short_messages() -> None:
    rng = random.Random(7)
    alphabet = ["wren", "WREN", "a", "b", "-", ",", ".", " ", "\n", "!", "é", "_", "1", "?"]
    hits = 0
    for _ in range(20_000):
        content = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        expected = _chapter2_rule(content, ["wren"])
        hits += expected
        assert name_matches(content, ["wren"]) is expected, repr(content)
    assert 1_000 < hits < 19_000  # both answers were exercised


def test_a_long_unbroken_message_is_answered_at_once() -> None:
    """Discord allows 4000 characters; the check must not stall the event loop on any of them."""
    done = threading.Event()
    result: list[bool] = []

    def check() -> None:
        result.append(name_matches("a-" * 2000, ["wren"]))
        result.append(name_matches("a-" * 1999 + "wren", ["wren"]))
        done.set()

    threading.Thread(target=check, daemon=True).start()
    assert done.wait(5.0), "name rule still backtracking after 5 s"
    assert result == [False, True]
