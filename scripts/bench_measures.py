"""The benchmark's measurements: each returns table rows, or raises NotAvailable.

Throughputs are compared as ledger rate / baseline rate (higher is better, 1.0x = as
fast as the raw driver); times as ledger time / baseline time (lower is better).
"""

from __future__ import annotations

import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_floor import view_writes
from bench_stores import (
    LEDGER,
    ROOT,
    Backend,
    NotAvailable,
    baseline_insert,
    baseline_read_aggregates,
    baseline_read_decode,
    baseline_read_hash,
    big_store_name,
    child_env,
    day_lines,
    ledger,
    post_file,
)

POST_CHUNK = 5000  # lines per transaction of `ledger post` (its --chunk-size default)
DAY_LINES = 10_000  # a day's lines on stored records (at most one per record)


@dataclass
class Config:
    records: int  # records posted in the bulk-posting measurement (7 commands each)
    events: int  # size of the store for rebuild, verify and custody
    runs: int  # repetitions; the median is reported
    workdir: Path
    reuse: bool = False
    post_file: Path | None = None
    store_file: Path | None = None  # JSON Lines of the big store (default: generated)


@dataclass
class Row:
    measure: str
    backend: str
    value: float | None = None
    unit: str = ""
    baseline: float | None = None
    baseline_what: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)
    cpu: float | None = None  # CPU seconds of the ledger's processes (median run)
    wall: float | None = None  # and the seconds that run took
    # The ratio of each run to the baseline run beside it; ``ratio`` is then their median
    spread: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median(values: list[float]) -> float:
    return statistics.median(values)


def per_run(above: list[float], below: list[float]) -> list[float]:
    """Each run's figure over the figure of the run beside it: a ledger run's rate over
    its baseline run's (or the baseline's seconds over the ledger's, for the same
    throughput ratio). The machine's speed drifts over minutes, so a run is compared with
    its neighbour, not with the median of all runs; the reported ratio is the median of
    these."""
    return [a / b for a, b in zip(above, below, strict=True)]


def at_least(ratio: float, goal: float) -> tuple[str, bool]:
    return f">= {goal}x", ratio >= goal


def settle() -> None:
    """Write out what earlier measurements left dirty in the page cache (a rebuild leaves
    about a gigabyte on SQLite), so that no measurement pays for an earlier one's writes."""
    os.sync()


def children_cpu() -> float:
    """CPU seconds (user and system) of every child process waited for so far: the
    ledger and its workers or helpers, not the database server."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_run(walls: list[float], cpus: list[float]) -> tuple[float, float]:
    """(CPU, wall) seconds of the run whose time is the median."""
    middle = sorted(range(len(walls)), key=walls.__getitem__)[(len(walls) - 1) // 2]
    return cpus[middle], walls[middle]


# -- bulk posting ------------------------------------------------------------


def measure_post(backend: Backend, cfg: Config) -> list[Row]:
    """`ledger post` as it runs by default (worker processes, one per core) and with
    --jobs 1 (one process), each into fresh stores, against the raw insert of the same
    rows (the baseline) and the floor (the same rows and their line keys in the post's
    transactions), one of each after every run."""
    assert cfg.post_file is not None
    rates: dict[str, list[float]] = {"default": [], "1": []}
    runs: dict[str, tuple[list[float], list[float]]] = {"default": ([], []), "1": ([], [])}
    lines, events, jobs, url = 0, 0, 1, ""
    base: list[float] = []
    floor: list[float] = []
    transactions = 0
    for run in range(cfg.runs):
        for mode, rate_list in rates.items():
            url = backend.create("ledger_bench_post")
            extra = [] if mode == "default" else ["--jobs", mode]
            settle()
            cpu = children_cpu()
            elapsed, summary = post_file(url, cfg.post_file, extra=extra)
            runs[mode][0].append(elapsed)
            runs[mode][1].append(children_cpu() - cpu)
            events = summary["events"]
            lines = summary["posted"] + summary["refused"]
            if mode == "default":
                jobs = summary.get("jobs", 1)
            rate_list.append(events / elapsed)
            print(
                f"  post run {run + 1} ({mode}): {events / elapsed:,.0f} events/s", file=sys.stderr
            )
        if run == 0:  # the rows of the baselines, read once from a store just posted
            rows, keys = backend.stored_rows(url), backend.posted_keys(url)
            transactions = math.ceil(lines / POST_CHUNK)
        settle()  # each run beside a baseline run: the machine drifts
        base.append(len(rows) / baseline_insert(backend, rows, url))
        settle()
        floor.append(len(rows) / baseline_insert(backend, rows, url, keys, transactions))
    again, summary = post_file(url, cfg.post_file)
    if summary["posted"] or summary["events"]:
        raise RuntimeError(f"re-posting the same file posted again: {summary}")
    backend.drop("ledger_bench_post")
    base_rate = median(base)
    raw = "COPY" if backend.name == "postgres" else "executemany"
    found = []
    processes = f"{jobs} worker processes" if jobs > 1 else "one process"
    for mode, label in (("default", f"default options: {processes}"), ("1", "--jobs 1")):
        rate = median(rates[mode])
        ratios = per_run(rates[mode], base)
        target, met = at_least(median(ratios), 0.3)
        cpu, wall = median_run(*runs[mode])
        found.append(
            Row(
                f"bulk post {lines:,} lines ({events:,} events), {label}",
                backend.name,
                rate,
                "events/s",
                base_rate,
                f"raw {raw}, rows/s",
                median(ratios),
                target,
                met,
                samples=rates[mode],
                cpu=cpu,
                wall=wall,
                spread=ratios,
            )
        )
    plural = "s" if transactions != 1 else ""
    floor_ratios = per_run(floor, base)
    found.append(
        Row(f"bulk post floor: its events and line keys written alone, in {transactions} "
            f"transaction{plural} ({raw})", backend.name, median(floor), "events/s",
            base_rate, f"raw {raw}, rows/s", median(floor_ratios), "(ceiling)",
            samples=floor, spread=floor_ratios)
    )  # fmt: skip
    found.append(
        Row(
            "re-post the same file (nothing written; its refused lines reported again)",
            backend.name,
            (summary["skipped"] + summary["refused"]) / again,
            "lines/s",
            note="idempotency: nothing posted twice",
        )
    )
    return found


# -- rebuild and verify: whole processes, with their peak memory ---------------


def run_measured(db: str, *args: str) -> tuple[float, float, float, bytes]:
    """Run the ledger; (seconds, peak resident MB of it and its helper processes together,
    their CPU seconds, stderr). The sum is sampled every 20 ms (pages the processes share
    count once each); the largest peak the kernel kept for any one of them (VmHWM) is taken
    too, the larger of both wins. Not the rusage of the child: its maximum resident size
    starts from this process's own, as the child is forked from it before it runs the
    ledger (a child of a 900 MB process reads 900 MB however small it stays)."""
    settle()
    started = time.perf_counter()
    peak_sum = peak_one = 0
    with open(os.devnull, "wb") as null, tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen(
            [LEDGER, "--db", db, *args], stdout=null, stderr=err_file, env=child_env()
        )
        while True:
            waited, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if waited:
                break
            resident, highest = tree_memory(proc.pid)
            peak_sum, peak_one = max(peak_sum, resident), max(peak_one, highest)
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read()
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0,):
        raise RuntimeError(f"ledger {' '.join(args)} exited {proc.returncode}: {err[-300:]!r}")
    cpu = usage.ru_utime + usage.ru_stime  # its helpers' too: it waits for them
    return elapsed, max(peak_sum, peak_one) / 1024, cpu, err


def tree_memory(pid: int) -> tuple[int, int]:
    """(resident KB of a process and its children now, the largest peak resident KB of
    any of them so far); zeros once they are gone."""
    resident = highest = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                resident = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                highest = int(line.split()[1])
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, ValueError):
        return resident, highest
    for child in children:
        more, peak = tree_memory(int(child))
        resident, highest = resident + more, max(highest, peak)
    return resident, highest


def require_command(db: str, *words: str) -> None:
    done = ledger(db, *words, "--help")
    if done.returncode:
        raise NotAvailable(f"`ledger {' '.join(words)}` does not exist yet")


def _whole_log(
    backend: Backend,
    cfg: Config,
    url: str,
    what: str,
    args: list[str],
    baseline: Any,
    variants: tuple[tuple[str, list[str]], ...] = (("", []),),
) -> list[Row]:
    """The command over the whole log, as it runs by default and in each other variant
    (a label and extra options), against one baseline; peak memory of every run."""
    require_command(url, *args[: 2 if args[0] == "projections" else 1])
    count = backend.event_count(url)
    times: dict[str, list[float]] = {label: [] for label, _ in variants}
    cpus: dict[str, list[float]] = {label: [] for label, _ in variants}
    peaks = []
    base = []
    for _ in range(cfg.runs):  # each run beside a baseline run: the machine drifts
        for label, extra in variants:
            elapsed, peak, cpu, _ = run_measured(url, *args, *extra)
            times[label].append(elapsed)
            cpus[label].append(cpu)
            peaks.append(peak)
        settle()
        base.append(baseline(backend, url)[0])
    base_rate = count / median(base)
    read = "read + " + ("JSON-decode" if what == "rebuild" else "sha256") + ", rows/s"
    rows = []
    for label, _ in variants:
        rate = count / median(times[label])
        ratios = per_run(base, times[label])  # seconds: the baseline's over the ledger's
        target, met = at_least(median(ratios), 0.4)
        cpu, wall = median_run(times[label], cpus[label])
        rows.append(
            Row(f"{what} {count:,} events{label}", backend.name, rate, "events/s", base_rate,
                read, median(ratios), target, met, samples=times[label], cpu=cpu, wall=wall,
                spread=ratios)
        )  # fmt: skip
    peak = max(peaks)
    rows.append(
        Row(
            f"{what} peak memory (all its processes)",
            backend.name,
            peak,
            "MB",
            target="< 300 MB" if what == "rebuild" else "",
            met=peak < 300 if what == "rebuild" else None,
        )
    )
    return rows


def measure_rebuild(backend: Backend, cfg: Config, url: str) -> list[Row]:
    """By default (helper processes, one per core), and all in one process (--jobs 1);
    then the floor: the rebuilt views' rows written again by the driver alone."""
    variants = ((", default options", []), (", --jobs 1", ["--jobs", "1"]))
    rows = _whole_log(
        backend, cfg, url, "rebuild", ["projections", "rebuild"], baseline_read_decode, variants
    )
    count, base_rate = backend.event_count(url), rows[0].baseline or 0.0
    floors = []
    for _ in range(cfg.runs):
        settle()
        floors.append(view_writes(backend, url, count))
    rate = count / median(floors)
    how = "executemany" if backend.name == "sqlite" else "COPY, one connection"
    rows.insert(
        len(variants),
        Row(f"rebuild floor: its views' rows and indexes written alone ({how})", backend.name,
            rate, "events/s", base_rate, "read + JSON-decode, rows/s", rate / base_rate,
            "(ceiling)", samples=floors),
    )  # fmt: skip
    return rows


def measure_verify(backend: Backend, cfg: Config, url: str) -> list[Row]:
    return _whole_log(backend, cfg, url, "verify", ["verify"], baseline_read_hash)


# -- custody queries -------------------------------------------------------------


def custody_in_process(url: str, ids: list[str]) -> list[float]:
    """Milliseconds per custody query, as `ledger custody` computes it (the record's events
    and the database role of each, read together; the chain), in this process."""
    sys.path.insert(0, str(ROOT))
    from ledger.application import open_ledger
    from ledger.custody import custody_chain

    app = open_ledger(url)
    times = []
    for ref in ids:
        started = time.perf_counter()
        custody_chain(*app.record_history(ref))
        times.append((time.perf_counter() - started) * 1000)
    app.close()
    return times


def measure_custody(backend: Backend, cfg: Config, url: str) -> list[Row]:
    ids = backend.record_ids(url, 1_000_000)
    rng = random.Random(11)
    sample = rng.sample(ids, min(len(ids), 1000))
    custody_in_process(url, sample[:50])  # warm-up: imports, connections, caches
    times = sorted(custody_in_process(url, sample))
    p50 = times[len(times) // 2]
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    count = backend.event_count(url)
    processes, version = [], []
    for ref in sample[: max(3, cfg.runs * 2)]:  # each beside its baseline run
        processes.append(process_seconds([LEDGER, "--db", url, "custody", ref, "--json"]))
        version.append(process_seconds([LEDGER, "--version"]))
    proc, base = median(processes) * 1000, median(version) * 1000
    ratios = per_run(processes, version)
    return [
        Row(f"custody query p50, {count:,} events", backend.name, p50, "ms",
            note=f"in-process, {len(times)} records"),
        Row(f"custody query p99, {count:,} events", backend.name, p99, "ms",
            target="<= 5 ms", met=p99 <= 5, note=f"in-process, {len(times)} records"),
        Row("`ledger custody` process", backend.name, proc, "ms", base,
            "`ledger --version`, ms", median(ratios), spread=ratios),
    ]  # fmt: skip


# -- a day's lines on stored records ----------------------------------------------


def measure_day(backend: Backend, cfg: Config, url: str) -> list[Row]:
    """`ledger post` (default options) of a day's lines on records of the big store, each
    naming a different record by its archival code, into a fresh copy of that store each
    run; against reading and JSON-decoding the stored events those lines load (the
    records' and their codes' claims)."""
    if cfg.store_file is not None:
        raise NotAvailable("the day's lines are written for the generated store's actors")
    from aggregates.code_claim import code_uuid

    everything = backend.claims(url)
    claims = random.Random(13).sample(everything, min(DAY_LINES, len(everything)))
    path = day_lines(cfg.workdir / "day.jsonl", claims, run="d")
    ids = [uuid.UUID(record) for _, record in claims] + [code_uuid(code) for code, _ in claims]
    rates, base, walls, cpus = [], [], [], []
    for _ in range(cfg.runs):
        copy = backend.copy(big_store_name(cfg.events), "ledger_bench_day")
        settle()
        cpu = children_cpu()
        elapsed, summary = post_file(copy, path)
        cpus.append(children_cpu() - cpu)
        walls.append(elapsed)
        if summary["posted"] != len(claims):
            raise RuntimeError(f"not every line of the day was posted: {summary}")
        rates.append(len(claims) / elapsed)
        settle()  # each run beside a baseline run
        base.append(len(claims) / baseline_read_aggregates(backend, copy, ids))
    backend.drop("ledger_bench_day")
    ratios = per_run(rates, base)
    cpu, wall = median_run(walls, cpus)
    return [
        Row(f"a day's lines on stored records: {len(claims):,} uses and relocations by "
            "archival code, default options", backend.name, median(rates), "lines/s",
            median(base), "read + JSON-decode what they load, lines/s", median(ratios),
            samples=rates, cpu=cpu, wall=wall, spread=ratios),
    ]  # fmt: skip


# -- start-up ----------------------------------------------------------------------


def process_seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=child_env())
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-300:]!r}")
    return elapsed


def measure_startup(cfg: Config) -> list[Row]:
    runs = max(5, cfg.runs * 3)
    process_seconds([LEDGER, "--help"])  # warm the file cache
    helps, clicks = [], []
    for _ in range(runs):  # each beside its baseline run
        helps.append(process_seconds([LEDGER, "--help"]))
        clicks.append(process_seconds([sys.executable, "-c", "import click"]))
    ms, base = median(helps) * 1000, median(clicks) * 1000
    ratios = per_run(helps, clicks)
    ratio = median(ratios)
    return [
        Row("`ledger --help` start-up", "-", ms, "ms", base, '`python -c "import click"`, ms',
            ratio, "<= 2x", ratio <= 2, samples=helps, spread=ratios),
    ]  # fmt: skip
