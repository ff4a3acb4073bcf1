"""Compatibility layers for other bot frameworks."""
