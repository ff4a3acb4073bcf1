"""Tests for chapterx."""
