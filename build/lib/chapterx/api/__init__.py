"""The bot process's optional REST API (reference §6)."""
