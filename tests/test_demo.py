"""scripts/demo_life.py (run by ./scripts/demo) does what README's "Quick start" says."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.cli import ROOT, TIMEOUT

DEMO = ROOT / "scripts" / "demo_life.py"


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_help_says_what_the_demo_shows_and_runs_nothing() -> None:
    """`scripts/demo --help` used to run the whole demo: the script took no options and
    ignored every argument."""
    done = demo("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: scripts/demo [-h]")
    assert "$ ledger" not in done.stdout
    refused = demo("--records", "5")
    assert refused.returncode == 2
    assert "unrecognized arguments: --records 5" in refused.stderr
    assert "$ ledger" not in refused.stdout


def test_the_demo_lives_one_record_through_and_shows_its_chain() -> None:
    done = demo()
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.findall(r"^refused \((R\d+)\)", done.stdout, re.M) == ["R6", "R8", "R12"]
    chain = done.stdout.split("$ ledger custody ")[-1]
    events = re.findall(r"^\d+ +\S+ +(\w+)", chain, re.M)
    assert events == [
        "received",
        "arranged",
        "shelved",
        "consulted",
        "lent",
        "returned",
        "repaired",
        "appraised",
        "destroyed",
    ]
    assert "23 pages returned, catalogue says 24" in chain  # one page short
