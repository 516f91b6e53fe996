"""A tiny run of scripts/bench, so that the benchmark keeps working (no timing asserted)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg import require_pg

ROOT = Path(__file__).resolve().parent.parent


def run_bench(
    tmp_path: Path, backend: str, pg_url: str | None = None, extra: tuple[str, ...] = ()
) -> list[dict[str, object]]:
    out = tmp_path / "bench.json"
    argv = [sys.executable, str(ROOT / "scripts" / "bench"), "--records", "12", "--events",
            "300", "--runs", "1", "--backend", backend, "--workdir", str(tmp_path / "work"),
            "--json", str(out), "--tag", f"_t{secrets.token_hex(4)}"]  # fmt: skip
    if pg_url:
        argv += ["--pg-url", pg_url]
    argv += extra
    env = {k: v for k, v in os.environ.items() if k != "BENCH_DEBUG"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| measurement" in done.stdout
    # The machine line names the interpreter that ran it (the bench runs in .venv's).
    venv_python = ROOT / ".venv" / "bin" / "python"
    runs_in = (venv_python if venv_python.exists() else Path(sys.executable)).resolve()
    assert f"at {runs_in} (" in done.stdout, done.stdout[:500]
    rows: list[dict[str, object]] = json.loads(out.read_text())
    return rows


def row(rows: list[dict[str, object]], prefix: str, backend: str) -> dict[str, object]:
    found = [r for r in rows if str(r["measure"]).startswith(prefix) and r["backend"] == backend]
    assert found, f"no row {prefix!r} for {backend}: {rows}"
    return found[0]


def check_rows(rows: list[dict[str, object]], backend: str) -> None:
    post = row(rows, "bulk post", backend)
    lines = int(str(post["measure"]).split()[2].replace(",", ""))
    assert lines >= 12 * 7 + 5, post  # 12 records of 7 commands, 5 actors, refused attempts
    assert isinstance(post["value"], float) and post["value"] > 0, post
    assert isinstance(post["baseline"], float) and post["baseline"] > 0, post
    # The CPU of the ledger's processes, beside the wall time of the same run.
    assert isinstance(post["cpu"], float) and post["cpu"] > 0, post
    assert isinstance(post["wall"], float) and post["wall"] > 0, post
    # The ratio is the median of each run's ratio to the baseline run beside it.
    assert post["spread"] == [post["ratio"]], post  # one run
    assert post["ratio"] == pytest.approx(post["value"] / post["baseline"]), post
    assert row(rows, "re-post", backend)["value"], "re-posting skipped nothing"
    assert isinstance(row(rows, "custody query p99", backend)["value"], float)
    assert isinstance(row(rows, "`ledger custody` process", backend)["ratio"], float)
    day = row(rows, "a day's lines on stored records", backend)  # each posted, or it fails
    assert isinstance(day["value"], float) and day["value"] > 0, day
    assert isinstance(day["ratio"], float) and isinstance(day["cpu"], float), day
    for floor_row in ("bulk post floor", "rebuild floor"):  # what the driver alone writes
        floor = row(rows, floor_row, backend)
        assert isinstance(floor["value"], float) and floor["value"] > 0, floor
        assert isinstance(floor["ratio"], float), floor
    for name in ("rebuild", "verify"):
        found = row(rows, name, backend)
        # Either measured, or an explicit n/a naming the missing feature.
        assert found["value"] is not None or "n/a (not available" in str(found["note"]), found
    start_up = row(rows, "`ledger --help`", "-")
    assert isinstance(start_up["ratio"], float), start_up
    assert len(start_up["spread"]) >= 5, start_up  # a ratio per pair of runs
    assert min(start_up["spread"]) <= start_up["ratio"] <= max(start_up["spread"]), start_up


@pytest.mark.slow
def test_bench_smoke_sqlite(tmp_path: Path) -> None:
    check_rows(run_bench(tmp_path, "sqlite"), "sqlite")


@pytest.mark.slow
@pytest.mark.postgres
def test_bench_smoke_postgres(tmp_path: Path) -> None:
    check_rows(run_bench(tmp_path, "postgres", require_pg()), "postgres")


@pytest.mark.slow
def test_bench_takes_your_own_files(tmp_path: Path) -> None:
    """--post-file and --store-file replace the generated workloads."""
    files = {}
    for name, records in (("post", 9), ("store", 100)):
        files[name] = tmp_path / f"{name}.jsonl"
        with open(files[name], "wb") as out:
            argv = [sys.executable, str(ROOT / "scripts" / "generate"), "--records",
                    str(records), "--run", name[0]]  # fmt: skip
            subprocess.run(argv, stdout=out, check=True)
    extra = ("--post-file", str(files["post"]), "--store-file", str(files["store"]))
    rows = run_bench(tmp_path, "sqlite", extra=extra)
    post = row(rows, "bulk post", "sqlite")
    lines = int(str(post["measure"]).split()[2].replace(",", ""))
    assert lines == len(files["post"].read_bytes().splitlines()), post  # each posted or refused
    rebuilt = row(rows, "rebuild", "sqlite")
    events = int(str(rebuilt["measure"]).split()[1].replace(",", ""))
    assert events > 100 * 7, rebuilt  # the store file's 100 records, not --events 300
