"""Local fake LLM provider (used by tests and by `chapterx replay`)."""

from chapterx.llm.fake.server import FakeLLMServer

__all__ = ["FakeLLMServer"]
