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


def test_reply_on_regex_agrees_with_re_on_ordinary_patterns() -> None:
    """The pinned pattern is run by `regex` (it has a time limit); on what chapter2 users write, the
    answers are `re.fullmatch`'s."""
    from chapterx_compat.chapter2.runtime.activation import regex_matches

    patterns = [r".*\bwren\b.*", r"(?i)hello.*", r"[A-Z][a-z]+!", r"\d{3}-\d{4}", r".*\?$", r"(foo|bar)+",
                r"(?s).*tide.*", r"\w+", r"[^aeiou ]+", r"a{2,3}b?", r"(?P<x>ab)(?P=x)", r"\s*", "[unclosed"]
    rng = random.Random(11)
    alphabet = ["wren", "Hello", "a", "b", "foo", "bar", "?", "!", " ", "\n", "1", "-", "tide", "ab", "é"]
    for _ in range(3_000):
        content = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        for p in patterns:
            try:
                expected = re.fullmatch(p, content) is not None
            except re.error:
                expected = False
            assert regex_matches(p, content) is expected, (p, content)


def test_a_backtracking_pinned_regex_cannot_stall_the_bot(caplog: object) -> None:
    """Someone who may pin sets `(a|aa)+b`; someone who may post sends 4000 a's. `re` would run for
    longer than the universe; the check gives up at its time limit and says so once."""
    import logging
    import time

    from chapterx_compat.chapter2.runtime.activation import REGEX_TIMEOUT_S, regex_matches

    assert re.fullmatch(r"(a|aa)+b", "aaab") and regex_matches(r"(a|aa)+b", "aaab")  # it still matches
    with caplog.at_level(logging.WARNING):  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for _ in range(3):
            assert regex_matches(r"(a|aa)+b", "a" * 4000) is False
        elapsed = time.perf_counter() - t0
    assert elapsed < 3 * REGEX_TIMEOUT_S + 1.0
    warnings = [r for r in caplog.records if "reply_on_regex" in r.getMessage()]  # type: ignore[attr-defined]
    assert len(warnings) == 1
