"""An event posted without --occurred-at happened now in the office's offset, the
machine's local one: its calendar day is the office's, which R2 judges (a receipt at 07:00
on 1 April in Beijing is late, though it is still 31 March in UTC). Through the real
`ledger` process, with the zone given as POSIX TZ strings (no zone database needed)."""

from __future__ import annotations

import subprocess
from datetime import date, datetime
from pathlib import Path

import pytest

from tests.cli import ARCHIVIST, LIAISON, TIMEOUT, Result, jsonl, run, setup_office, start

# POSIX TZ: "XYZ-14" is 14 hours east of UTC, "XYZ+12" 12 hours west: at any moment their
# calendar days differ, and at least one of them differs from UTC's.
ZONES = [("XYZ-14", "+14:00"), ("XYZ+12", "-12:00")]
RECEIPT = {"title": "会议纪要", "department": "办公室", "year": "2000", "carrier": "paper",
           "pages": "3", "secrecy": "public", "transferred-by": LIAISON}  # fmt: skip


def in_zone(url: str, zone: str, *args: str, input: str | None = None) -> Result:
    stdin = subprocess.DEVNULL if input is None else subprocess.PIPE
    process = start(url, *args, actor=ARCHIVIST, env={"TZ": zone}, stdin=stdin)
    out, err = process.communicate(input=input, timeout=TIMEOUT)
    return Result(process.returncode, out, err)


def received(url: str, record: str) -> dict[str, object]:
    done = run(url, "custody", record, "--json")
    assert done.code == 0, done
    event: dict[str, object] = done.json()["events"][0]
    return event


@pytest.mark.parametrize(("zone", "offset"), ZONES, ids=[o for _, o in ZONES])
def test_a_receipt_without_a_time_is_dated_in_the_offices_offset(
    tmp_path: Path, zone: str, offset: str
) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    setup_office(url)
    options = [x for k, v in RECEIPT.items() for x in (f"--{k}", v)]
    done = in_zone(url, zone, "receive", *options, "--json")
    assert done.code == 0, done
    event = received(url, done.json()["record"])
    at = datetime.fromisoformat(str(event["occurred_at"]))
    assert str(event["occurred_at"]).endswith(offset), event
    # R2 judges that day: records of 2000 were due by 31 March 2001.
    assert event["late"] is (at.date() > date(2001, 3, 31))


@pytest.mark.parametrize(("zone", "offset"), ZONES, ids=[o for _, o in ZONES])
def test_a_bulk_line_without_a_time_is_dated_in_the_offices_offset(
    tmp_path: Path, zone: str, offset: str
) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    setup_office(url)
    record = "00000000-0000-4000-8000-0000000000d1"
    fields = {k.replace("-", "_"): v for k, v in RECEIPT.items()}
    line = {"command": "receive", "id": "day-1", "record": record, **fields}
    line |= {"year": 2000, "pages": 3}
    done = in_zone(url, zone, "post", "-", input=jsonl([line]))
    assert done.code == 0, done
    assert str(received(url, record)["occurred_at"]).endswith(offset)
