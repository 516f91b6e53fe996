"""Counts in messages: one event, 2 events."""

from __future__ import annotations


def counted(number: int, noun: str, *, grouped: bool = True) -> str:
    """``number`` (with thousands separators unless not ``grouped``) and ``noun``, plural
    unless it is one."""
    figure = f"{number:,}" if grouped else str(number)
    return f"{figure} {noun}{'' if number == 1 else 's'}"
