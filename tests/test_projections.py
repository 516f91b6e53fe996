"""Projections on both backends: exactly once under racing runners, rebuilds and swaps,
checks that find and name a difference, the rebuild lock, an empty log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregates.errors import Conflict, InvalidInput
from aggregates.record_events import Lent, Returned
from commands.main import cli
from ledger.application import Ledger, open_ledger
from projections.log import EventLog
from projections.rebuild import check, exclusive, rebuild
from projections.runner import Runner, catch_up, open_projections, open_view
from projections.status import status_rows
from tests.cli import run
from tests.test_projections_history import (
    LIFE,
    LIFE_CODE,
    LIFE_ID,
    OTHERS,
    new_office,
    numbered,
    post_in_process,
    receive,
    step,
)

ALL = ["catalog", "loans", "audit", "destruction"]
NEW_RECORD = "77777777-7777-4777-8777-777777777777"


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    ledger = open_ledger(db_url, must_exist=False)
    new_office(ledger)
    post_in_process(ledger, numbered(LIFE, "life") + numbered(OTHERS, "others"))
    yield ledger
    ledger.close()


def rows(ledger: Ledger, table: str) -> list[dict[str, object]]:
    view = open_view(ledger, "catalog")
    return sorted(view.select(f"SELECT * FROM {table}"), key=repr)


def test_racing_runners_apply_each_event_once(ledger: Ledger) -> None:
    first = open_projections(ledger, ALL)
    second = open_projections(ledger, ALL)  # read their positions before the first moves
    Runner(ledger, first, page_size=7).run(stop=40)
    stats = Runner(ledger, second, page_size=5).run()  # collides, re-reads, goes on
    assert stats.events > 0
    assert Runner(ledger, first, page_size=3).run().events == 0
    assert {p.position for p in first} == {ledger.recorder.max_notification_id()}
    assert len(rows(ledger, "audit")) == 15
    assert check(ledger)[0] == []


def test_rebuild_swaps_in_tables_and_old_runners_go_on(ledger: Ledger) -> None:
    old = open_projections(ledger, ALL)
    Runner(ledger, old).run()
    before = {t: rows(ledger, t) for t in ("catalog", "loans", "audit", "destructions")}
    rebuild(ledger, ["audit", "catalog"])
    stats = rebuild(ledger)  # twice: scratch tables and their indexes take the live names
    assert stats.events == ledger.recorder.max_notification_id()
    assert {t: rows(ledger, t) for t in before} == before
    new = receive(NEW_RECORD, "2022-01-05T09:00:00+08:00", title="新", year=2021, secrecy="public")
    post_in_process(ledger, numbered([new, OTHERS[-1]], "more"))
    assert Runner(ledger, old, page_size=2).run().events > 0  # projections opened before
    assert check(ledger)[0] == []
    assert len(rows(ledger, "catalog")) == len(before["catalog"]) + 1


def test_each_live_table_keeps_its_indexes_once_across_rebuilds(ledger: Ledger) -> None:
    """PostgreSQL's scratch tables are indexed once built and their indexes renamed with
    them; SQLite's get theirs at the swap (it cannot rename an index). After each of three
    rebuilds, and the live views opened again, each live table has each of its secondary
    indexes exactly once; on SQLite a look-up by code uses one."""
    specs = [open_view(ledger, name).spec for name in ALL]
    for _ in range(3):
        rebuild(ledger)
        open_projections(ledger, ALL)  # opening the live views makes what they lack
        for spec in specs:
            for table in spec.tables:
                assert indexed_columns(ledger, table.name) == sorted(table.indexes), table.name
    if ledger.store.backend == "sqlite":  # (PostgreSQL would scan a table this small)
        plan = open_view(ledger, "catalog").select(
            "EXPLAIN QUERY PLAN SELECT id FROM catalog WHERE code = 'X'"
        )
        assert "USING INDEX catalog_code_idx" in str(plan), plan


def indexed_columns(ledger: Ledger, table: str) -> list[tuple[str, ...]]:
    """The column lists of ``table``'s indexes, its primary key's left out."""
    view = open_view(ledger, "catalog")
    if ledger.store.backend == "postgres":
        found = view.select(
            "SELECT indexdef FROM pg_indexes WHERE tablename = ? AND indexname NOT LIKE ?",
            (table, "%_pkey"),
        )
        defs = [re.search(r"\((.*)\)", r["indexdef"]).group(1) for r in found]  # type: ignore[union-attr]
        return sorted(tuple(c.strip() for c in d.split(",")) for d in defs)
    names = view.select(f"SELECT name FROM pragma_index_list('{table}') WHERE origin = 'c'")
    return sorted(
        tuple(c["name"] for c in view.select(f"SELECT name FROM pragma_index_info('{n['name']}')"))
        for n in names
    )


def test_check_names_what_differs(ledger: Ledger, db_url: str) -> None:
    catch_up(ledger)
    view = open_view(ledger, "catalog")
    with view.transaction() as curs:
        curs.execute(f"UPDATE catalog SET title = 'x' WHERE id = '{LIFE_ID}'")
        curs.execute("DELETE FROM audit WHERE outcome = 'refused'")
    differences, _ = check(ledger, ["catalog", "audit"])
    assert [(d.projection, d.table, d.side, d.count) for d in differences] == [
        ("catalog", "catalog", "live", 1),
        ("catalog", "catalog", "rebuilt", 1),
        ("audit", "audit", "rebuilt", 4),
    ]
    done = run(db_url, "projections", "check", "--jobs", "2")  # a helper builds a part
    assert done.code == 6, done
    lines = done.stdout.splitlines()
    assert lines[0] == f"catalog: table catalog: 1 live rows not in the rebuild (id: {LIFE_ID})"
    assert lines[2].startswith("audit: table audit: 4 rebuilt rows not live (position: ")
    assert done.stderr == "error: projections differ from a rebuild: audit, catalog\n"
    assert run(db_url, "projections", "rebuild", "audit").code == 0
    assert {d.projection for d in check(ledger)[0]} == {"catalog"}  # rebuilt: audit only
    rebuild(ledger, ["catalog"])
    assert check(ledger)[0] == []
    assert [r["title"] for r in rows(ledger, "catalog") if r["code"] == LIFE_CODE] != ["x"]


def test_one_rebuild_at_a_time(ledger: Ledger) -> None:
    with exclusive(ledger), pytest.raises(Conflict, match="another projections rebuild"):
        rebuild(ledger)
    with pytest.raises(InvalidInput, match="unknown projection nope; choose from catalog"):
        rebuild(ledger, ["nope"])


def test_status_lag_then_catch_up(ledger: Ledger) -> None:
    assert {r["state"] for r in status_rows(ledger)} == {"not built"}
    Runner(ledger, open_projections(ledger, ["loans"])).run(stop=20)
    by_name = {r["projection"]: r for r in status_rows(ledger)}
    head = ledger.recorder.max_notification_id()
    assert by_name["loans"]["position"] == 20 and by_name["loans"]["state"] == "behind"
    assert by_name["loans"]["lag"] == head - 20
    catch_up(ledger)
    assert {(r["position"], r["lag"], r["state"]) for r in status_rows(ledger)} == {
        (head, 0, "up to date")
    }


def test_an_empty_log(db_url: str) -> None:
    ledger = open_ledger(db_url, must_exist=False)
    ledger.create_tables()
    assert rebuild(ledger).events == 0
    assert check(ledger)[0] == []
    assert {r["position"] for r in status_rows(ledger)} == {0}
    assert rows(ledger, "catalog") == []
    ledger.close()


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_the_scheduled_commands_exist() -> None:
    """The systemd unit and the crontab line run commands that the CLI has."""
    service = (SCRIPTS / "ledger-projections.service").read_text()
    timer = (SCRIPTS / "ledger-projections.timer").read_text()
    cron = (SCRIPTS / "crontab.example").read_text()
    assert "Unit=ledger-projections.service" in timer and "OnCalendar=" in timer
    commands = re.findall(r"^ExecStart=\S+/ledger (.+)$", service, re.M)
    assert commands == ["projections rebuild", "projections check"]
    cron_lines = [line for line in cron.splitlines() if line and not line.startswith("#")]
    assert re.findall(r"/ledger (projections \w+)", cron_lines[-1]) == commands
    for line in commands:
        done = CliRunner().invoke(cli, [*line.split(), "--help"], prog_name="ledger")
        assert done.exit_code == 0, done.output


def test_sqlite_views_do_not_zero_freed_pages(tmp_path: Path) -> None:
    """A rebuild's swap drops the old tables: with SQLite's secure delete on (Debian's
    default build), every freed page was written again, a third of a rebuild's time."""
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", must_exist=False)
    try:
        with open_view(ledger, "catalog").transaction() as curs:
            curs.execute("PRAGMA secure_delete")
            assert curs.fetchone()[0] == 0
    finally:
        ledger.close()


def test_log_pages_cover_every_position_once_and_only_the_topics_asked(ledger: Ledger) -> None:
    log = EventLog(ledger)
    head = log.head()
    topics = dict(stored_topics(log))
    wanted = {Lent.TOPIC, Returned.TOPIC}
    for after, limit in ((0, 2), (3, 1), (0, 1000)):
        pages = list(log.pages(after, head, limit, wanted))
        ends = [end for _, end, _ in pages]
        assert ends == sorted(set(ends)) and ends[-1] == head  # forward, to the head
        assert sum(covered for _, _, covered in pages) == head - after
        got = [row[0] for rows_, _, _ in pages for row in rows_ if row[2] is not None]
        assert got == [p for p, t in sorted(topics.items()) if p > after and t in wanted]
        assert all(row[0] <= end for rows_, end, _ in pages for row in rows_)
        if log.backend == "sqlite":  # the others are left in the engine
            assert all(row[1] in wanted for rows_, _, _ in pages for row in rows_)
    # Up to a position short of the head, in pages of 2; none past the stop.
    stop = head - 3
    pages = list(log.pages(1, stop, 2, wanted))
    assert pages[-1][1] == stop and sum(covered for _, _, covered in pages) == stop - 1
    assert all(1 < row[0] <= stop for rows_, _, _ in pages for row in rows_)
    assert list(log.pages(stop, stop, 2, wanted)) == []
    # A reader that stops early (a failed page write) ends the pages cleanly.
    reading = log.pages(0, head, 1, wanted)
    assert 0 < next(reading)[1] < head
    reading.close()


def stored_topics(log: EventLog) -> list[tuple[int, str]]:
    """(position, topic) of every stored event, straight from the table."""
    column = "notification_id" if log.backend == "postgres" else "rowid"
    return [(r[0], r[1]) for r in log._rows(f"SELECT {column}, topic FROM {log.table}", ())]


def test_a_corrected_year_moves_the_late_flag_live_and_rebuilt(ledger: Ledger) -> None:
    """R2: a record of 2015 received on 4 January 2016 is on time; corrected to 2014 it is
    late (due by 31 March 2015), and back to 2015 on time again. The record, the live
    catalog and a rebuilt one agree (the flag was the receipt's, whatever the year)."""
    catch_up(ledger)
    new = receive(NEW_RECORD, "2016-01-04T09:00:00+08:00", title="新", year=2015, secrecy="public")
    # The second corrects the first (R13: the year comes from version 2 then).
    corrections = [
        step("correct", NEW_RECORD, f"2016-02-0{n}T09:00:00+08:00", version=n, reason="年度",
             set={"year": year})
        for n, year in ((1, 2014), (2, 2015))
    ]  # fmt: skip
    lines = numbered([new, *corrections], "late")
    for upto, year, late in ((1, 2015, False), (2, 2014, True), (3, 2015, False)):
        summary = post_in_process(ledger, lines[:upto])
        assert summary.posted == 1, summary
        catch_up(ledger)
        assert ledger.record(NEW_RECORD).late is late
        row = next(r for r in rows(ledger, "catalog") if r["id"] == NEW_RECORD)
        assert (row["year"], row["late"]) == (year, int(late))
        assert check(ledger, ["catalog"])[0] == []
