"""Reading commands and queries through the real `ledger` process, on SQLite and
PostgreSQL: how they name records and actors, and what they answer at the edges."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli import (
    ARCHIVIST,
    AUDITOR,
    BACKENDS,
    BORROWER,
    LEADER,
    LIAISON,
    event_count,
    fresh_store,
    one_line,
    post,
    run,
    setup_office,
)

RECORD = "00000000-0000-4000-8000-00000000000a"
CODE = "R-READ-0001"
SEAL_ID = "2615ddc5-ffe5-5ba9-bd7a-bccb5beabb46"  # aggregates.seal.SEAL_ID


def world_lines() -> list[dict[str, object]]:
    """One record: a refused attempt before it is arranged (no code yet), then
    arranged, shelved, lent and returned."""
    lines: list[dict[str, object]] = []

    def add(command: str, occurred: str, actor: str = ARCHIVIST, **fields: object) -> None:
        lines.append(
            {"command": command, "id": f"r{len(lines)}", "actor": actor,
             "occurred_at": occurred, **fields}
        )  # fmt: skip

    receipt = {"title": "文件", "department": "办公室", "year": 2019, "carrier": "paper",
               "pages": 10, "secrecy": "internal", "transferred_by": LIAISON}  # fmt: skip
    add("receive", "2020-01-06T09:00:00+00:00", record=RECORD, **receipt)
    # R19 (a liaison does not post): a refused attempt on the record before it has a code
    add(
        "consult", "2020-01-07T09:00:00+00:00", LIAISON, record=RECORD, reader=BORROWER, purpose="p"
    )
    add("arrange", "2020-01-08T09:00:00+00:00", record=RECORD, code=CODE,
        category="administration", retention="30y")  # fmt: skip
    add("shelve", "2020-01-09T09:00:00+00:00", record=CODE, location="A1-01-1-1")
    return lines


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_store(request.param, tmp_path_factory.mktemp("reading")) as url:
        setup_office(url)
        done = post(url, world_lines())
        assert done.code == 3 and done.stdout.startswith("posted 3, skipped 0, refused 1"), done
        sealed = run(url, "seal", actor=AUDITOR)
        assert sealed.code == 0, sealed
        yield url


@pytest.mark.parametrize(
    "args",
    [
        ("show", SEAL_ID),
        ("custody", SEAL_ID),
        ("custody", SEAL_ID, "--csv"),
        ("consult", SEAL_ID, "--reader", BORROWER, "--purpose", "p"),
        (
            "lend",
            SEAL_ID,
            "--to",
            BORROWER,
            "--due",
            "2030-01-01",
            "--purpose",
            "p",
            "--approved-by",
            LEADER,
        ),
    ],
)
def test_the_seal_chains_id_is_no_record(world: str, args: tuple[str, ...]) -> None:
    """Loading the seal chain as a record failed with a TopicError (exit 1): its topics
    were unknown to the reading commands. It is not found, as an actor's id is."""
    before = event_count(world)
    done = run(world, *args, actor=ARCHIVIST)
    assert (done.code, done.stdout) == (4, ""), done
    assert one_line(done.stderr) == f"error: record {SEAL_ID!r} not found", done
    assert event_count(world) == before
