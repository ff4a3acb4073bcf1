"""Activation traces: model, collector, writer, SQLite index and the `TraceStore` reader.

Entry points for other areas: `chapterx.trace.collector` (record during an activation) and
`chapterx.trace.store.TraceStore` (read; the viewer and `chapterx traces` use it).
"""
