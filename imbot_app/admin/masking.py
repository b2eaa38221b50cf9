"""Secrets as the admin shows them: a hint to tell two tokens apart, never the value."""

from __future__ import annotations

__all__ = ["mask"]


def mask(value: str) -> str:
    """``abcd…wxyz`` for long secrets, a fixed placeholder for short ones, "" for none."""
    if not value:
        return ""
    if len(value) < 16:
        return "•" * 8
    return f"{value[:4]}…{value[-4:]}"
