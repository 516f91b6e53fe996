"""Counts in messages: one event, 2 events."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """``number`` (with thousands separators) and ``noun``, plural unless it is one."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
