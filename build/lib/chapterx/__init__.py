"""chapterx: a Python runtime for ChapterX and Chapter II bots on Discord."""

__version__ = "0.1.0"
