"""Histories for the projection tests (no tests here): lines for `ledger post`.

``LIFE`` is one confidential record's whole life with every kind of use and refused
attempt (R5, R6, R8, R19); ``OTHERS`` adds records in every state, an overdue loan, a
late transfer, an open discrepancy, a correction and a declassification, so that every
filter of every query has something to find and something to leave out.
"""

from __future__ import annotations

from typing import Any

from ledger.application import Ledger
from ledger.bulk import BulkPoster
from tests.cli import (
    APPRAISER_1,
    APPRAISER_2,
    ARCHIVIST,
    AUDITOR,
    BORROWER,
    CAST,
    DIRECTOR,
    EXTERNAL,
    LEADER,
    LIAISON,
    WITNESS,
    jsonl,
)

LIFE_ID = "11111111-1111-4111-8111-111111111111"
LIFE_CODE = "Z001-WS·2000-D10-BGS-0001"
OVERDUE_ID = "22222222-2222-4222-8222-222222222222"
OVERDUE_CODE = "Z001-YW·2008-D30-CWC-0001"
BACK_ID = "33333333-3333-4333-8333-333333333333"
BACK_CODE = "Z001-RS·2010-Y-RSC-0001"
NEW_ID = "44444444-4444-4444-8444-444444444444"
OPENED_ID = "55555555-5555-4555-8555-555555555555"
OPENED_CODE = "Z001-JJ·1990-Y-JJC-0001"
DAMAGED_ID = "66666666-6666-4666-8666-666666666666"
DAMAGED_CODE = "Z001-SB·2015-D10-SBC-0001"


def receive(record: str, when: str, **fields: Any) -> dict[str, Any]:
    line = {"command": "receive", "record": record, "department": "办公室", "carrier": "paper",
            "pages": 24, "transferred_by": LIAISON, "occurred_at": when}  # fmt: skip
    return {**line, **fields}


def step(command: str, record: str, when: str, **fields: Any) -> dict[str, Any]:
    return {"command": command, "record": record, "occurred_at": when, **fields}


LIFE: list[dict[str, Any]] = [
    receive(LIFE_ID, "2001-02-01T09:00:00+08:00", title="2000年办公会议纪要", year=2000,
            secrecy="confidential"),
    step("arrange", LIFE_ID, "2001-03-01T09:00:00+08:00", category="administration",
         retention="10y", code=LIFE_CODE),
    step("shelve", LIFE_CODE, "2001-03-02T09:00:00+08:00", location="A1-03-2-4"),
    step("consult", LIFE_CODE, "2004-05-11T10:00:00+08:00", reader=BORROWER, purpose="查考",
         approved_by=LEADER),
    # R6: the external reader's clearance (internal) does not cover a confidential record.
    step("consult", LIFE_CODE, "2004-05-11T11:00:00+08:00", reader=EXTERNAL, purpose="核对",
         approved_by=LEADER, letter="市设计院函〔2004〕12号"),
    # R5: a copy needs a leader's approval, and an archivist is no leader.
    step("copy", LIFE_CODE, "2004-05-12T09:00:00+08:00", reader=BORROWER, pages=3,
         purpose="复制存档", approved_by=WITNESS),
    step("copy", LIFE_CODE, "2004-05-12T10:00:00+08:00", reader=BORROWER, pages=3,
         purpose="复制存档", approved_by=LEADER),
    step("lend", LIFE_CODE, "2005-06-01T09:00:00+08:00", to=BORROWER, due="2005-06-30",
         purpose="工作借阅", approved_by=LEADER),
    # R8: on loan, it cannot be lent again.
    step("lend", LIFE_CODE, "2005-06-02T09:00:00+08:00", to=EXTERNAL, due="2005-07-30",
         purpose="借阅", approved_by=LEADER, letter="函〔2005〕3号"),
    step("return", LIFE_CODE, "2005-06-28T16:00:00+08:00", pages=24, condition="damaged"),
    step("repair", LIFE_CODE, "2005-07-10T10:00:00+08:00", note="重新装订"),
    # R19: an auditor reads but never posts.
    {**step("consult", LIFE_CODE, "2006-01-05T10:00:00+08:00", reader=BORROWER, purpose="查考",
            approved_by=LEADER), "actor": AUDITOR},
    {**step("appraise", LIFE_CODE, "2012-03-01T10:00:00+08:00", decision="destroy",
            appraiser=[APPRAISER_1, APPRAISER_2], basis="保管期限已满,无保存价值"),
     "actor": APPRAISER_1},
    step("destroy", LIFE_CODE, "2012-03-15T10:00:00+08:00", approved_by=LEADER,
         witness=[WITNESS, APPRAISER_2], register="XH-2012-001", method="粉碎"),
]  # fmt: skip

# (action, outcome, rule, reader, approved_by) of each audit row of LIFE, in order.
LIFE_AUDIT = [
    ("consulted", "done", None, BORROWER, LEADER),
    ("consult", "refused", "R6", EXTERNAL, LEADER),
    ("copy", "refused", "R5", BORROWER, WITNESS),
    ("copied", "done", None, BORROWER, LEADER),
    ("lent", "done", None, BORROWER, LEADER),
    ("lend", "refused", "R8", EXTERNAL, LEADER),
    ("returned", "done", None, BORROWER, None),
    ("consult", "refused", "R19", BORROWER, LEADER),
]
LIFE_REFUSED = 4

OTHERS: list[dict[str, Any]] = [
    # Secret, lent in 2009 and never returned: overdue.
    receive(OVERDUE_ID, "2009-01-10T09:00:00+08:00", title="2008年基建合同", year=2008,
            secrecy="secret", department="基建处"),
    step("arrange", OVERDUE_ID, "2009-01-20T09:00:00+08:00", category="infrastructure",
         retention="30y", code=OVERDUE_CODE),
    step("shelve", OVERDUE_CODE, "2009-01-21T09:00:00+08:00", location="A2-01-1-1"),
    step("lend", OVERDUE_CODE, "2009-03-01T09:00:00+08:00", to=BORROWER, due="2009-03-31",
         purpose="工程审计", approved_by=LEADER),
    # Internal, received late (R2), lent and returned on time, then relocated.
    receive(BACK_ID, "2012-06-01T09:00:00+08:00", title="2010年人事任免通知", year=2010,
            secrecy="internal", department="人事处"),
    step("arrange", BACK_ID, "2012-06-02T09:00:00+08:00", category="personnel",
         retention="permanent", code=BACK_CODE),
    step("shelve", BACK_CODE, "2012-06-03T09:00:00+08:00", location="A3-02-1-1"),
    step("lend", BACK_CODE, "2013-01-07T09:00:00+08:00", to=BORROWER, due="2013-01-31",
         purpose="核查", approved_by=LEADER),
    step("return", BACK_CODE, "2013-01-20T09:00:00+08:00", pages=24, condition="intact"),
    step("relocate", BACK_CODE, "2013-02-01T09:00:00+08:00", location="B1-01-1-1"),
    # Received only, then its title corrected (R13).
    receive(NEW_ID, "2021-02-01T09:00:00+00:00", title="2020年工作总结(草)", year=2020,
            secrecy="public", carrier="electronic"),
    step("correct", NEW_ID, "2021-02-02T09:00:00+00:00", version=1, reason="题名有误",
         set={"title": "2020年工作总结"}),
    # Secret until an appraisal opened it (public), then consulted by the external reader.
    receive(OPENED_ID, "1991-02-01T09:00:00+08:00", title="1990年基建图纸", year=1990,
            secrecy="secret", carrier="audiovisual", department="基建处"),
    step("arrange", OPENED_ID, "1991-02-02T09:00:00+08:00", category="infrastructure",
         retention="permanent", code=OPENED_CODE),
    step("shelve", OPENED_CODE, "1991-02-03T09:00:00+08:00", location="A4-01-1-1"),
    step("consult", OPENED_CODE, "2010-05-01T09:00:00+08:00", reader=BORROWER, purpose="查考",
         approved_by=LEADER),
    {**step("appraise", OPENED_CODE, "2016-01-10T09:00:00+08:00", decision="open",
            appraiser=[APPRAISER_1, APPRAISER_2], basis="满二十五年,开放"),
     "actor": APPRAISER_1},
    step("consult", OPENED_CODE, "2016-02-01T09:00:00+08:00", reader=EXTERNAL, purpose="研究",
         approved_by=LEADER, letter="大学介绍信〔2016〕1号"),
    # Returned with pages missing: an open discrepancy (R9).
    receive(DAMAGED_ID, "2016-01-05T09:00:00+08:00", title="2015年设备采购清单", year=2015,
            secrecy="internal", department="设备处", pages=40),
    step("arrange", DAMAGED_ID, "2016-01-06T09:00:00+08:00", category="equipment",
         retention="10y", code=DAMAGED_CODE),
    step("shelve", DAMAGED_CODE, "2016-01-07T09:00:00+08:00", location="A5-01-1-1"),
    step("lend", DAMAGED_CODE, "2017-03-01T09:00:00+08:00", to=BORROWER, due="2017-03-31",
         purpose="盘点", approved_by=LEADER),
    step("return", DAMAGED_CODE, "2017-04-10T09:00:00+08:00", pages=38, condition="intact"),
]  # fmt: skip


def numbered(lines: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Give each line its idempotency key and, unless it names one, the archivist."""
    return [{"id": f"{prefix}-{n}", "actor": ARCHIVIST, **line} for n, line in enumerate(lines)]


def office_lines() -> list[dict[str, Any]]:
    return [
        {"command": "actor-add", "id": f"cast-{actor_id}", "actor": DIRECTOR,
         "actor_id": actor_id, "name": name, "role": roles, "clearance": clearance, **extra}
        for actor_id, name, roles, clearance, extra in CAST
    ]  # fmt: skip


def post_in_process(ledger: Ledger, lines: list[dict[str, Any]]) -> Any:
    """Post lines through the ledger's own bulk poster, in this process."""
    text = jsonl(lines).encode()
    return BulkPoster(ledger, None).post(text.splitlines(keepends=True))


def new_office(ledger: Ledger) -> None:
    ledger.create_tables()
    ledger.initialise(DIRECTOR, "王主任")
    summary = post_in_process(ledger, office_lines())
    assert summary.posted == len(CAST), summary
