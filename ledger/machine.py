"""Facts about the machine the ledger runs on."""

from __future__ import annotations

import ctypes
import os
import signal
import sys


def cores() -> int:
    """Cores this process may run on (its CPU affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def die_with(parent: int) -> None:
    """Have the kernel kill this (forked) process when ``parent`` dies (Linux); if it
    died already, end now. Elsewhere the process goes on until its pipe to the parent
    breaks."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


PR_SET_PDEATHSIG = 1  # linux/prctl.h
