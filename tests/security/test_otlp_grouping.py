"""Issue 9 item 2: chapter2 reply grouping is incremental and by id (no rescans per ingest).

The figures (32 MB ingest vs concurrent reads) are in bench/bench_otlp_ingest.py; here: the
incremental grouper gives exactly the batch answer, whatever order and chunking the spans arrive
in, and an ingest only regroups what it touched.
"""

from __future__ import annotations

import random

from chapterx_compat.chapter2 import otlp
from tests.security.otlpgen import linked_spans, request


def _key(replies: list[otlp.Reply]) -> list[tuple[str, tuple[str, ...], int]]:
    return sorted((r.trace_id, tuple(sorted(r.traces)), len(r.spans)) for r in replies)


def test_incremental_grouping_equals_batch_grouping() -> None:
    spans = otlp.parse_request(request(linked_spans(300)))
    batch = otlp.group_replies(spans)
    assert len(batch) >= 250 and any(len(r.traces) > 1 for r in batch)
    for seed in (1, 2, 3):
        shuffled = list(spans)
        random.Random(seed).shuffle(shuffled)
        g = otlp.ReplyGrouper()
        step = 37 * seed
        for i in range(0, len(shuffled), step):
            g.add(shuffled[i:i + step])
        assert _key(g.replies()) == _key(batch)


def test_an_ingest_regroups_only_what_it_touched() -> None:
    g = otlp.ReplyGrouper()
    big = otlp.parse_request(request(linked_spans(2000, seed=1)))
    changed, removed = g.add(big)
    assert len(changed) == len(g.replies()) and not removed
    small = otlp.parse_request(request(linked_spans(3, seed=9)))
    changed, removed = g.add(small)
    assert {r.trace_id for r in changed} <= {s.trace_id for s in small}
    assert g.last_work <= 3 * len(small)  # traces visited, not the whole history
    # a late fragment joins an existing reply: that reply is replaced, nothing else moves
    creation = next(r for r in g.replies() if len(r.traces) > 1)
    root = creation.root
    assert root is not None
    late = otlp.Span(trace_id="f" * 32, span_id="e" * 16, parent_span_id="", name="generate_response.iteration",
                     kind=1, start_ns=root.start_ns + 5, end_ns=root.start_ns + 6, attributes={},
                     links=[(root.trace_id, root.span_id)])
    changed, removed = g.add([late])
    assert [r.trace_id for r in changed] == [creation.trace_id] and "f" * 32 in changed[0].traces
    assert removed == []
    assert g.last_work <= len(creation.traces) + 2


def test_worker_prepared_entries_and_details_match_the_ones_built_here() -> None:
    import json

    from chapterx.viewer.chapter2 import decode_and_prepare, reply_key

    body = json.dumps(request(linked_spans(700, seed=5))).encode()
    decoded = decode_and_prepare(body, "application/json", "")
    prepared = decoded.prepared()
    replies = otlp.group_replies(decoded.spans())
    assert len(prepared.entries) == len(replies) and len(decoded.detail_chunks) > 1
    for r in replies[::37]:
        assert prepared.entries[reply_key(r)] == otlp.reply_entry(r)
        text = prepared.detail(reply_key(r))
        assert text is not None and json.loads(text) == json.loads(json.dumps(otlp.reply_detail(r), default=str))
