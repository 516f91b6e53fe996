"""Writing the pages a runner applies: a one-deep pipeline, inline, or batched.

PostgreSQL does its part of a write in its server process, so overlapping it with
decoding the next page uses the second core (``Writer``: page N is written while page
N+1 is read and applied; jobs run in order; after a failure the later ones are skipped
and the error is raised in the submitting thread at its next ``submit()`` or
``drain()``). SQLite writes inline (``Inline``), several pages a transaction when they
go to scratch tables (``Batched``).
"""

from __future__ import annotations

from collections.abc import Callable
from queue import Queue
from threading import Thread
from types import TracebackType
from typing import Any

Job = Callable[[], None]


class PageWrite:
    """The rows a page changes in each view, with the views' new position: written in a
    transaction of its own when called, or into one shared with other pages."""

    def __init__(self, writes: list[tuple[Any, Any, int | None]], tracking: Any) -> None:
        self.writes = writes  # (view, changes, the position the page starts from)
        self.tracking = tracking

    def __call__(self) -> None:
        commit([self])

    def write_into(self, curs: Any) -> None:
        for view, changes, expected in self.writes:
            view.write_into(curs, changes, self.tracking, expected)


def commit(pages: list[PageWrite]) -> None:
    """Write the pages in one transaction (of their first view's database)."""
    writes = [page for page in pages if page.writes]
    if writes:
        with writes[0].writes[0][0].transaction() as curs:
            for page in writes:
                page.write_into(curs)


class Inline:
    """The same interface without a thread: each job runs when submitted.

    For SQLite: its driver takes the GIL back after every row it steps, so a writer
    thread beside a busy reader hands the GIL back and forth per row and burns more CPU
    than the overlap saves (measured: a third more CPU, slower overall)."""

    def submit(self, job: Job) -> None:
        job()

    def drain(self) -> None:
        """Nothing is pending."""

    def __enter__(self) -> Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to wait for."""


class Batched:
    """Inline, but up to ``size`` pages in one transaction; ``drain()`` commits what is
    pending (before stored rows are read, and at the end)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pending: list[PageWrite] = []

    def submit(self, job: PageWrite) -> None:
        self.pending.append(job)
        if len(self.pending) >= self.size:
            self.drain()

    def drain(self) -> None:
        pending, self.pending = self.pending, []
        commit(pending)

    def __enter__(self) -> Batched:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self.drain()


class Writer:
    def __init__(self) -> None:
        self._jobs: Queue[Job | None] = Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = Thread(target=self._loop, name="projection-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self.check()
        self._jobs.put(job)

    def drain(self) -> None:
        """Wait until every submitted job has run; raise the first failure."""
        self._jobs.join()
        self.check()

    def check(self) -> None:
        """Raise the failure of an earlier job (it stays: the writer is done for)."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
        if error is None:
            self.check()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    job()
            except BaseException as error:  # handed to the submitting thread
                self._error = error
            finally:
                self._jobs.task_done()
