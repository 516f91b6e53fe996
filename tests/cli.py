"""Helpers for end-to-end tests: the real `ledger` process, and the store read directly.

``run`` starts the installed console script with LEDGER_DB set (and LEDGER_ACTOR when an
actor is given); nothing of the test process leaks into it. ``event_count`` and
``stored_events`` read the event table itself (sqlite3 or psycopg), not through the
ledger, so they see exactly what was written.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import psycopg
import pytest

from tests.pg import create_database, drop_database, fresh_database

LEDGER = str(Path(sys.executable).with_name("ledger"))
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120

# The standard cast of an archive office (setup_office registers them all).
DIRECTOR = "dir"
ARCHIVIST = "arch"
LIAISON = "liaison"
LEADER = "leader"
BORROWER = "borrower"
EXTERNAL = "ext"
APPRAISER_1 = "appr1"
APPRAISER_2 = "appr2"
WITNESS = "witness"
AUDITOR = "auditor"
CAST: list[tuple[str, str, list[str], str, dict[str, Any]]] = [
    (ARCHIVIST, "李档案员", ["archivist"], "secret", {}),
    (LIAISON, "张联络人", ["liaison"], "internal", {}),
    (LEADER, "赵领导", ["leader"], "top-secret", {}),
    (BORROWER, "钱借阅人", ["borrower"], "secret", {}),
    (EXTERNAL, "孙访客", ["borrower"], "internal", {"external": True, "unit": "市设计院"}),
    (APPRAISER_1, "周鉴定", ["appraiser"], "secret", {}),
    (APPRAISER_2, "吴鉴定", ["appraiser"], "secret", {}),
    (WITNESS, "郑监销", ["archivist"], "internal", {}),
    (AUDITOR, "审计员", ["auditor"], "top-secret", {}),
]


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return f"exit {self.code}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def environment(db_url: str, actor: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DB"] = db_url
    if actor is not None:
        env["LEDGER_ACTOR"] = actor
    return env


def run(db_url: str, *args: str, actor: str | None = None, input: str | None = None) -> Result:
    """Run `ledger ARGS...` as a real process and wait for it."""
    done = subprocess.run(
        [LEDGER, *args],
        env=environment(db_url, actor),
        input=input,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def start(
    db_url: str,
    *args: str,
    actor: str | None = None,
    stdin: Any = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start `ledger ARGS...` without waiting (for races and kills); ``env`` adds to its
    environment."""
    return subprocess.Popen(
        [LEDGER, *args],
        env={**environment(db_url, actor), **(env or {})},
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def following(db_url: str, name: str | None = None) -> Iterator[subprocess.Popen[str]]:
    """`ledger projections follow` running for the block (as PostgreSQL application
    ``name`` if given); killed at its end if ``stop`` did not end it."""
    env = {"PGAPPNAME": name} if name is not None else None
    follower = start(db_url, "projections", "follow", "--interval", "0.1", env=env)
    try:
        yield follower
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()


def stop(follower: subprocess.Popen[str]) -> str:
    """Stop a follower as its service manager does (SIGTERM); its stderr once it ended."""
    follower.send_signal(signal.SIGTERM)
    _, err = follower.communicate(timeout=TIMEOUT)
    return err


# Runs the ledger's own entry point (commands.main:cli, as the console script does) in a
# new process, but only once the file argv[1] exists: the imports are done before that,
# so processes released together really reach the database together.
BARRIER = """
import os, sys, time
from pathlib import Path
import commands.main, commands.post, commands.records, ledger.application, ledger.bulk
go = Path(sys.argv[1])
Path(f"{go}.ready.{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.001)
sys.argv = ["ledger", *sys.argv[2:]]
commands.main.cli()
"""


def start_at_barrier(
    db_url: str, go: Path, *args: str, actor: str | None = None
) -> subprocess.Popen[str]:
    """Start `ledger ARGS...`, held until ``go`` exists (see ``release``)."""
    return subprocess.Popen(
        [sys.executable, "-c", BARRIER, str(go), *args],
        env=environment(db_url, actor),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def release(go: Path, processes: list[subprocess.Popen[str]]) -> list[Result]:
    """Wait until every held process is ready, let them all go, collect their results."""
    while len(list(go.parent.glob(go.name + ".ready.*"))) < len(processes):
        assert all(p.poll() is None for p in processes), "a held process died early"
        time.sleep(0.01)
    go.touch()
    outputs = [p.communicate(timeout=TIMEOUT) for p in processes]
    return [
        Result(p.returncode, out, err) for p, (out, err) in zip(processes, outputs, strict=True)
    ]


def children(pid: int) -> list[int]:
    """The child processes of a running process (posting workers, helpers), or none."""
    try:
        return [int(n) for n in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def jsonl(lines: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def post(
    db_url: str, lines: Iterable[dict[str, Any]], *args: str, actor: str | None = None
) -> Result:
    """`ledger post -` with these lines on stdin."""
    return run(db_url, "post", "-", *args, actor=actor, input=jsonl(lines))


def setup_office(db_url: str) -> None:
    """Create the store, its director, and the standard cast: a copy of the office set up
    once per test process and backend (``ledger init`` and a bulk post: about a second
    of processes, which most tests began with)."""
    backend = "sqlite" if db_url.startswith("sqlite:") else "postgres"
    template = _OFFICES.get(backend)
    if template is None:
        template = _OFFICES[backend] = _office_template(backend)
    if backend == "sqlite":
        source = sqlite3.connect(template.removeprefix("sqlite:///"))
        target = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return
    name = urlsplit(db_url).path.lstrip("/")
    drop_database(name)
    create_database(name, template=urlsplit(template).path.lstrip("/"))


_OFFICES: dict[str, str] = {}  # backend -> the URL of the office copied by setup_office


def _office_template(backend: str) -> str:
    """The office, set up by the real processes in a store kept until the tests end."""
    stack = ExitStack()
    atexit.register(stack.close)
    if backend == "sqlite":
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="office-")))
        url = f"sqlite:///{folder}/ledger.db"
    else:
        url = stack.enter_context(fresh_database())
    _set_up_office(url)
    return url


def _set_up_office(db_url: str) -> None:
    done = run(db_url, "init", "--director", DIRECTOR, "--name", "王主任")
    assert done.code == 0, done
    lines = [
        {
            "command": "actor-add",
            "id": f"cast-{actor_id}",
            "actor_id": actor_id,
            "name": name,
            "role": roles,
            "clearance": clearance,
            **extra,
        }
        for actor_id, name, roles, clearance, extra in CAST
    ]
    done = post(db_url, lines, actor=DIRECTOR)
    assert done.code == 0, done
    assert done.stdout.startswith(f"posted {len(CAST)}, skipped 0"), done


@dataclass(frozen=True)
class Generated:
    """A file of scripts/generate, and what posting it must give."""

    path: Path
    lines: int
    refused: list[int]  # line numbers the generator means to be refused (R6)
    records: list[str]  # the ids of the records it receives

    @property
    def posted(self) -> int:
        return self.lines - len(self.refused)

    @property
    def events(self) -> int:
        """One event per posted line, one more per arrangement (its code claim), one per
        refused attempt."""
        return self.posted + len(self.records) + len(self.refused)


def generate(path: Path, records: int) -> Generated:
    with path.open("w") as out:
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "generate"), "--records", str(records)],
            stdout=out,
            check=True,
        )
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    refused = [n for n, line in enumerate(lines, 1) if line.get("reader") == "g.visitor"]
    received = [str(line["record"]) for line in lines if line["command"] == "receive"]
    assert refused and len(received) == records
    assert sum(1 for line in lines if line["command"] == "arrange") == records
    return Generated(path, len(lines), refused, received)


# -- reading the store directly ------------------------------------------------


def _sqlite(db_url: str) -> sqlite3.Connection:
    return sqlite3.connect(db_url.removeprefix("sqlite:///"))


def event_count(db_url: str) -> int:
    """How many events the store holds (every aggregate, refusals included)."""
    if db_url.startswith("sqlite:"):
        with _sqlite(db_url) as conn:
            return int(conn.execute("SELECT count(*) FROM stored_events").fetchone()[0])
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
        assert row is not None
        return int(row[0])


def posted_times(db_url: str) -> dict[str, str]:
    """Posted-line key -> its posted_at as text (SQLite stores text; PostgreSQL's
    timestamptz is shown in ISO 8601)."""
    if db_url.startswith("sqlite:"):
        with _sqlite(db_url) as conn:
            return dict(conn.execute("SELECT id, posted_at FROM ledger_posted").fetchall())
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT id, posted_at FROM ledger_posted").fetchall()
        return {key: at.isoformat() for key, at in rows}


def posted_outcomes(db_url: str) -> dict[str, str]:
    """Posted-line key -> its outcome as stored (``posted``, ``refused R6``...)."""
    if db_url.startswith("sqlite:"):
        with _sqlite(db_url) as conn:
            return dict(conn.execute("SELECT id, outcome FROM ledger_posted").fetchall())
    with psycopg.connect(db_url) as conn:
        return dict(conn.execute("SELECT id, outcome FROM ledger_posted").fetchall())


def stored_events(db_url: str) -> list[tuple[UUID, int, str]]:
    """(originator id, version, topic) of every stored event, in log order."""
    if db_url.startswith("sqlite:"):
        with _sqlite(db_url) as conn:
            rows = conn.execute(
                "SELECT originator_id, originator_version, topic FROM stored_events ORDER BY rowid"
            ).fetchall()
    else:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT originator_id, originator_version, topic FROM ledger_events "
                "ORDER BY notification_id"
            ).fetchall()
    return [(UUID(str(o)), int(v), str(t)) for o, v, t in rows]


def versions_by_originator(db_url: str) -> dict[UUID, list[int]]:
    found: dict[UUID, list[int]] = {}
    for originator, version, _ in stored_events(db_url):
        found.setdefault(originator, []).append(version)
    return {k: sorted(v) for k, v in found.items()}


def fingerprint(db_url: str) -> Counter[Any]:
    """What was written, independent of refusals' random ids: every non-refusal event's
    (originator, version, topic), and the number of refusals."""
    found: Counter[Any] = Counter()
    for originator, version, topic in stored_events(db_url):
        refusal = topic == "ledger/Refusal/AttemptRefused"
        found[(topic,) if refusal else (originator, version, topic)] += 1
    return found


def bodies(db_url: str, topic: str) -> list[dict[str, Any]]:
    """The bodies (all fields) of the stored events with this topic, in log order."""
    if db_url.startswith("sqlite:"):
        with _sqlite(db_url) as conn:
            rows = conn.execute(
                "SELECT state FROM stored_events WHERE topic = ? ORDER BY rowid", (topic,)
            ).fetchall()
    else:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT state FROM ledger_events WHERE topic = %s ORDER BY notification_id",
                (topic,),
            ).fetchall()
    return [json.loads(bytes(row[0]))["body"] for row in rows]


def last_event(db_url: str) -> tuple[str, dict[str, Any]]:
    """The topic and the body (all fields) of the newest stored event."""
    if db_url.startswith("sqlite:"):
        with _sqlite(db_url) as conn:
            row = conn.execute(
                "SELECT topic, state FROM stored_events ORDER BY rowid DESC LIMIT 1"
            ).fetchone()
    else:
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "SELECT topic, state FROM ledger_events ORDER BY notification_id DESC LIMIT 1"
            ).fetchone()
    assert row is not None
    body: dict[str, Any] = json.loads(bytes(row[1]))["body"]
    return str(row[0]), body


def refusal_count(db_url: str) -> int:
    return sum(1 for _, _, topic in stored_events(db_url) if topic.startswith("ledger/Refusal/"))


@contextmanager
def fresh_store(backend: str, folder: Path) -> Iterator[str]:
    """A URL for a new, empty store: a SQLite file in ``folder`` or a PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/ledger.db"
        return
    with fresh_database() as url:
        yield url


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def one_line(text: str) -> str:
    """The only line of ``text``; fails if there are more or none."""
    lines = text.splitlines()
    assert len(lines) == 1, f"expected exactly one line, got {len(lines)}: {text!r}"
    return lines[0]
