"""chapter2's Discord runtime on chapterx's Discord port, providers and trace store.

Stages, one module each: `port` (what it needs from Discord), `convert` (Discord ↔ chapter2 messages),
`channel_config` (topic and pinned `.config`), `activation` (`should_reply`), `history` (the window),
`llm` (requests on our providers), `interface` (the `on_message` flow), `traces` (trace files),
`memory` (an in-memory Discord for vectors and replay), `rules` (the `activation_rules` bot key) and
`app` (wiring for `chapterx run`). See docs/chapter2.md.
"""
