"""A person of an external unit reads the office's records only as R7 allows: it
approves no use of them (R5-R7: 经单位领导批准, a leader of the office), and transfers none
of the office's records (R1: a department's liaison). Through the real `ledger` process on
SQLite and PostgreSQL; a refused use is kept as a refused attempt (R18), a refused receipt
is reported only, and neither changes a record."""

from __future__ import annotations

import pytest

from tests.cli import (
    ARCHIVIST,
    BORROWER,
    DIRECTOR,
    EXTERNAL,
    LEADER,
    LIAISON,
    event_count,
    last_event,
    one_line,
    post,
    run,
    setup_office,
)

CONFIDENTIAL = "R-USE-0001"
INTERNAL = "R-USE-0002"
LEND = ("lend", INTERNAL, "--due", "2099-01-01")
OUTSIDER = "ext.lead"  # a leader of the external unit EXTERNAL comes from


@pytest.fixture
def office(db_url: str) -> str:
    setup_office(db_url)
    leader = ("--name", "设计院院长", "--role", "leader", "--clearance", "top-secret")
    external = ("--external", "--unit", "市设计院")
    done = run(db_url, "actor", "add", OUTSIDER, *leader, *external, actor=DIRECTOR)
    assert done.code == 0, done
    steps: list[dict[str, object]] = []
    for n, (code, secrecy) in enumerate([(CONFIDENTIAL, "confidential"), (INTERNAL, "internal")]):
        record = f"00000000-0000-4000-8000-0000000000f{n}"
        steps += [
            {"command": "receive", "record": record, "title": "文件", "department": "办公室",
             "year": 2019, "carrier": "paper", "pages": 10, "secrecy": secrecy,
             "transferred_by": LIAISON},
            {"command": "arrange", "record": record, "code": code,
             "category": "administration", "retention": "30y"},
            {"command": "shelve", "record": code, "location": "A1-01-1-1"},
        ]  # fmt: skip
    lines = [{"id": f"use-{n}", "actor": ARCHIVIST, **step} for n, step in enumerate(steps)]
    assert post(db_url, lines).code == 0
    return db_url


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (("consult", CONFIDENTIAL, "--reader", BORROWER), "R6"),
        (("copy", INTERNAL, "--reader", BORROWER, "--pages", "1"), "R5"),
        ((*LEND, "--to", EXTERNAL, "--letter", "设计院函〔2024〕3号"), "R7"),
    ],
    ids=["consult", "copy", "lend"],
)
def test_a_leader_of_an_external_unit_approves_no_use(
    office: str, args: tuple[str, ...], rule: str
) -> None:
    """It was taken as any leader's approval: an external unit's leader let its own
    staff borrow the office's records."""
    before = event_count(office)
    done = run(office, *args, "--purpose", "p", "--approved-by", OUTSIDER, actor=ARCHIVIST)
    assert done.code == 3, done
    assert one_line(done.stderr) == (
        f"refused ({rule}): {OUTSIDER} is of an external unit (市设计院) and cannot approve a "
        "use of the office's records"
    )
    assert done.stdout == ""
    assert event_count(office) == before + 1  # the refused attempt alone
    topic, body = last_event(office)
    assert (topic, body["rule"], body["approved_by"]) == (
        "ledger/Refusal/AttemptRefused",
        rule,
        OUTSIDER,
    )
    # The office's own leader approves it.
    done = run(office, *args, "--purpose", "p", "--approved-by", LEADER, actor=ARCHIVIST)
    assert done.code == 0, done


def test_a_liaison_of_an_external_unit_transfers_no_record(office: str) -> None:
    """It was taken as a department's liaison: records came in from outside the office."""
    done = run(office, "actor", "add", "ext.liaison", "--name", "设计院联络人", "--role",
               "liaison", "--clearance", "internal", "--external", "--unit", "市设计院",
               actor=DIRECTOR)  # fmt: skip
    assert done.code == 0, done
    receipt = ("receive", "--title", "图纸", "--department", "基建科", "--year", "2020",
               "--carrier", "paper", "--pages", "3", "--secrecy", "internal")  # fmt: skip
    before = event_count(office)
    done = run(office, *receipt, "--transferred-by", "ext.liaison", actor=ARCHIVIST)
    assert done.code == 3, done
    assert one_line(done.stderr) == (
        "refused (R1): ext.liaison is of an external unit (市设计院), not a department liaison "
        "of the office"
    )
    assert (done.stdout, event_count(office)) == ("", before)
    done = run(office, *receipt, "--transferred-by", LIAISON, actor=ARCHIVIST)
    assert done.code == 0, done
