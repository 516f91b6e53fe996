"""A posting worker: a process of ``ledger post`` that posts the shares it is sent.

ledger.parallel starts the workers (forked, so they share its imports), sends each its
shares of the file and takes their answers. A worker posts each share as one chunk
(ledger.bulk). It answers "ready" once it has opened the store; for each share,
"committing" with the share's refused lines just before the commit, and "done" with the
counts once it is committed; "error" with what failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from aggregates.errors import Conflict, sendable
from ledger.bulk import BulkPoster
from ledger.lines import few_collections
from ledger.machine import die_with


def worker_stopped() -> Conflict:
    return Conflict("a posting worker stopped; run the file again (posted lines are skipped)")


def work(
    conn: Connection,
    parent: int,
    parents_ends: list[Connection],
    open_ledger: Callable[[], Any],
    actor: str | None,
    size: int,
) -> None:
    """A worker: open the store, then post each share it is sent as one chunk."""
    for end in parents_ends:  # forked copies: closed, so the parent's death reads as EOF
        end.close()
    # Killed with the posting process: a worker whose parent was killed would go on
    # committing the shares it holds, whose refused lines nobody is left to report;
    # killed, it leaves its transaction uncommitted, for the re-run.
    die_with(parent)
    try:
        poster = BulkPoster(
            open_ledger(),
            actor,
            chunk_size=size,
            before_commit=lambda problems: conn.send(
                ("committing", [p for p in problems if p.outcome == "refused" and p.id])
            ),
            on_settled=lambda summary, taken: conn.send(("done", (summary, taken))),
        )
        conn.send(("ready", None))
        with few_collections():
            try:
                while (sent := conn.recv()) is not None:
                    share, taken = sent
                    poster.seen.update(taken)  # taken up by lines posted elsewhere
                    poster.submit(share)  # commits (and answers for) the share before
                    if not conn.poll():  # no next share at hand: commit this one, answer
                        poster.settle()
                poster.settle()  # told to stop with a share committing: finish it, answer
            except BaseException:
                poster.abandon()
                raise
    except (EOFError, BrokenPipeError):  # the parent is gone: what was committed stays
        return
    except BaseException as error:  # every other failure goes back as the answer
        with contextlib.suppress(OSError):
            conn.send(("error", sendable(error)))
