"""Facts about the machine the ledger runs on."""

from __future__ import annotations

import os


def cores() -> int:
    """Cores this process may run on (its CPU affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
