"""A tiny run of scripts/compare, so that the interleaved comparison keeps working (no
timing asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPARE = [sys.executable, str(ROOT / "scripts" / "compare")]


@pytest.mark.slow
def test_compare_posts_both_sides_alternately() -> None:
    done = subprocess.run(
        [*COMPARE, "HEAD", "--records", "5", "--runs", "2", "--jobs", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    pairs = re.findall(r"^pair \d: HEAD [\d.]+ s .* ratio [\d.]+$", done.stdout, re.M)
    assert len(pairs) == 2, done.stdout
    assert "the working tree faster in" in done.stdout, done.stdout
    worktrees = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True
    )
    assert "ledger-compare-" not in worktrees.stdout  # the revision's worktree is removed


def test_compare_refuses_an_unknown_revision() -> None:
    done = subprocess.run(
        [*COMPARE, "no-such-revision", "--runs", "1"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done
    assert done.stderr.startswith("error: no revision 'no-such-revision'"), done.stderr
    assert "Traceback" not in done.stderr
