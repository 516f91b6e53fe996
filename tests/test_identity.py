"""Identity on PostgreSQL: officers with roles of their own, made from the README's recipe.

A role with only the recipe's grants posts through the ledger; its UPDATE, DELETE, TRUNCATE
and trigger tampering are refused; acting as an actor bound to another role is refused
under R19 and recorded; an event forged by raw SQL under a bound actor's name is reported
by `ledger verify` with the role that really wrote it.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from tests.cli import DIRECTOR, last_event, run
from tests.pg import fresh_database, require_pg
from tests.tamper import RawStore

README = Path(__file__).resolve().parent.parent / "README.md"
ADD_LIAISON = [
    "actor",
    "add",
    "liz",
    "--name",
    "张",
    "--role",
    "liaison",
    "--clearance",
    "internal",
]
pytestmark = pytest.mark.postgres


def recipe() -> list[str]:
    """The GRANT recipe of the README's Integrity section, as statements."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Who wrote it: database roles") :]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if not line.startswith("--")]
    return [s.strip() for s in " ".join(lines).split(";") if s.strip()]


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}:pw-{role}@{parts.hostname}:{parts.port}"))


@pytest.fixture(scope="module")
def office() -> Iterator[tuple[str, str, str]]:
    """A ledger with two officer roles (li's and wang's) and their actors bound to them;
    each test works on a record of its own."""
    require_pg()
    with fresh_database() as url:
        yield from _office(url)


def _office(pg_url: str) -> Iterator[tuple[str, str, str]]:
    suffix = secrets.token_hex(4)
    li, wang = f"officer_li_{suffix}", f"officer_wang_{suffix}"
    database = urlsplit(pg_url).path.lstrip("/")
    assert run(pg_url, "init", "--director", DIRECTOR, "--name", "王主任").code == 0
    try:
        with psycopg.connect(pg_url, autocommit=True) as owner:
            for role in (li, wang):
                for statement in recipe():
                    statement = statement.replace("officer_li", role).replace("archive", database)
                    owner.execute(statement.replace("'change-me'", f"'pw-{role}'"))
        for actor_id, role in (("li", li), ("wang", wang)):
            done = run(
                pg_url,
                "actor",
                "add",
                actor_id,
                "--name",
                actor_id,
                "--role",
                "archivist",
                "--clearance",
                "secret",
                "--db-role",
                role,
                actor=DIRECTOR,
            )
            assert done.code == 0, done
        assert run(pg_url, *ADD_LIAISON, actor=DIRECTOR).code == 0
        yield pg_url, li, wang
    finally:
        with psycopg.connect(pg_url, autocommit=True) as owner:
            for role in (li, wang):
                owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                owner.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def receive(url: str, actor: str) -> UUID:
    done = run(
        url,
        "receive",
        "--title",
        "2012年办公会议纪要",
        "--department",
        "办公室",
        "--year",
        "2012",
        "--carrier",
        "paper",
        "--pages",
        "24",
        "--secrecy",
        "internal",
        "--transferred-by",
        "liz",
        actor=actor,
    )
    assert done.code == 0, done
    return UUID(done.stdout.strip())


def psql(url: str, statement: str) -> subprocess.CompletedProcess[str]:
    if not shutil.which("psql"):
        pytest.skip("the psql program is not installed")
    return subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", statement],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_officer_role_posts_and_can_change_nothing(office: tuple[str, str, str]) -> None:
    owner_url, li, _ = office
    url = as_role(owner_url, li)
    record = receive(url, "li")
    roles = RawStore(owner_url).query(
        "SELECT db_role FROM ledger_events WHERE originator_id = ?", (record,)
    )
    assert roles == [(li,)]
    refusals = {
        "UPDATE ledger_events SET topic = 'x'": "permission denied for table ledger_events",
        "BEGIN; LOCK TABLE ledger_events IN EXCLUSIVE MODE; COMMIT": "permission denied for table",
        "DELETE FROM ledger_events": "permission denied for table ledger_events",
        "TRUNCATE ledger_events": "permission denied for table ledger_events",
        "DELETE FROM ledger_posted": "permission denied for table ledger_posted",
        "UPDATE ledger_posted SET outcome = 'x'": "permission denied for table ledger_posted",
        "ALTER TABLE ledger_events DISABLE TRIGGER USER": "must be owner of table ledger_events",
        "INSERT INTO ledger_events (originator_id, originator_version, topic, state, db_role) "
        "VALUES (gen_random_uuid(), 1, 't', 'x', 'someone')": "permission denied",
        "INSERT INTO ledger_events (originator_id, originator_version, topic, state, "
        "notification_id) VALUES (gen_random_uuid(), 1, 't', 'x', 0)": "permission denied",
    }
    before = RawStore(owner_url).query("SELECT count(*) FROM ledger_events")
    for statement, refused in refusals.items():
        done = psql(url, statement)
        assert done.returncode != 0, (statement, done)
        assert refused in done.stderr, (statement, done.stderr)
    assert RawStore(owner_url).query("SELECT count(*) FROM ledger_events") == before
    assert run(owner_url, "verify", "--record", str(record)).code == 0


def test_acting_as_an_actor_bound_to_another_role_is_refused_and_recorded(
    office: tuple[str, str, str],
) -> None:
    owner_url, li, wang = office
    record = receive(as_role(owner_url, li), "li")
    forged = run(
        as_role(owner_url, wang), "relocate", str(record), "--location", "A1-01-1-2", actor="li"
    )
    assert forged.code == 3, forged
    assert forged.stderr == (
        f"refused (R19): actor li is bound to database role {li}; this session is {wang}\n"
    )
    topic, body = last_event(owner_url)
    assert topic == "ledger/Refusal/AttemptRefused"
    assert (body["actor"], body["rule"], body["action"]) == ("li", "R19", "relocate")
    (role,) = RawStore(owner_url).query(
        "SELECT db_role FROM ledger_events ORDER BY notification_id DESC LIMIT 1"
    )[0]
    assert role == wang
    versions = RawStore(owner_url).query(
        "SELECT max(originator_version) FROM ledger_events WHERE originator_id = ?", (record,)
    )
    assert versions == [(1,)]  # the record itself is untouched
    refusal = RawStore(owner_url).query(
        "SELECT originator_id FROM ledger_events ORDER BY notification_id DESC LIMIT 1"
    )[0][0]
    for checked in (record, refusal):  # a recorded refusal is not a forgery
        assert run(owner_url, "verify", "--record", str(checked)).code == 0


def test_an_officer_role_acts_as_its_own_actors_only(office: tuple[str, str, str]) -> None:
    """An officer's session could act as any actor bound to no role: the director made by
    `init` among them, and grant itself any role (an exploratory find). A session of a
    role that does not own the tables acts only as actors bound to it; the owner's acts
    as the unbound ones."""
    owner_url, li, _ = office
    before = RawStore(owner_url).query("SELECT count(*) FROM ledger_events")[0][0]
    done = run(as_role(owner_url, li), "actor", "grant", "li", "--role", "leader", actor=DIRECTOR)
    assert done.code == 3, done
    assert done.stderr == (
        f"refused (R19): database role {li} does not own the ledger's tables: its sessions "
        f"act only as actors bound to it ({DIRECTOR} is bound to none); attempted: "
        "actor-grant li role=leader\n"
    )
    topic, body = last_event(owner_url)
    assert topic == "ledger/Refusal/AttemptRefused"
    assert (body["actor"], body["rule"], body["action"]) == (DIRECTOR, "R19", "actor-grant")
    assert RawStore(owner_url).query("SELECT count(*) FROM ledger_events")[0][0] == before + 1
    with pytest.raises(AssertionError):  # nor a receipt as the director
        receive(as_role(owner_url, li), DIRECTOR)
    receive(owner_url, DIRECTOR)  # the owner's session acts as the unbound director
    receive(as_role(owner_url, li), "li")


def test_an_event_forged_under_a_bound_actor_is_reported(office: tuple[str, str, str]) -> None:
    owner_url, li, wang = office
    record = receive(as_role(owner_url, li), "li")
    raw = RawStore(as_role(owner_url, wang))
    fields = RawStore(owner_url).body(record, 1)
    forged = {
        key: fields[key]
        for key in ("actor", "class_version", "occurred_at", "originator_id", "timestamp")
    }
    forged.update(
        originator_version=2,
        prev_hash=RawStore(owner_url).row(record, 1)[2][-66:-2].decode(),
        topic="ledger/Record/Relocated",
        location="Z9-99-9-9",
    )
    raw.insert(forged)  # as wang, with wang's own grants
    done = run(owner_url, "verify", "--record", str(record))
    assert done.code == 6, done
    assert done.stdout.splitlines()[0] == (
        f"record {record} version 2: posted as actor li, who is bound to database role {li}, "
        f"but written by database role {wang} (forged actor, or written outside the ledger)"
    )


def test_an_event_forged_as_an_actor_bound_to_no_role_is_reported(
    office: tuple[str, str, str],
) -> None:
    """An officer's role may append rows, and acts through the ledger only as its own
    actors (R19); a well-chained event it inserted by hand under the director, bound to
    no role, passed `verify` and was sealed (an exploratory find)."""
    owner_url, li, _ = office
    record = receive(as_role(owner_url, li), "li")
    fields = RawStore(owner_url).body(record, 1)
    forged = {key: fields[key] for key in ("class_version", "occurred_at", "originator_id")}
    forged.update(
        actor=DIRECTOR,
        originator_version=2,
        prev_hash=RawStore(owner_url).row(record, 1)[2][-66:-2].decode(),
        topic="ledger/Record/Relocated",
        timestamp=fields["timestamp"],
        location="Z9-99-9-9",
        previous_location="",
    )
    RawStore(as_role(owner_url, li)).insert(forged)  # with the recipe's grants only
    done = run(owner_url, "verify", "--record", str(record))
    assert done.code == 6, done
    assert done.stdout.splitlines()[0] == (
        f"record {record} version 2: posted as actor {DIRECTOR}, who is bound to no database "
        f"role, but written by database role {li}, which does not own the ledger's tables "
        "(forged actor, or written outside the ledger)"
    )
    as_officer = run(as_role(owner_url, li), "verify", "--record", str(record))
    assert as_officer.stdout.splitlines()[0] == done.stdout.splitlines()[0], as_officer
    before = RawStore(owner_url).query("SELECT count(*) FROM ledger_events")
    sealed = run(owner_url, "seal", actor=DIRECTOR)
    assert sealed.code == 6, sealed
    assert sealed.stderr.endswith("; run `ledger verify`; nothing was sealed\n"), sealed
    assert RawStore(owner_url).query("SELECT count(*) FROM ledger_events") == before


def test_an_officer_role_reads_the_projections_as_they_are() -> None:
    """With the recipe's grants an officer's queries failed (`unexpected ProgrammingError:
    permission denied for schema public`, exit 1: an exploratory find). It reads the
    projections the owner builds, as they are, told on stderr how far behind they are;
    what it may not do (build them, rebuild them) is one line."""
    require_pg()
    with fresh_database() as pg_url:
        for owner_url, li, _ in _office(pg_url):
            url = as_role(owner_url, li)
            never = run(url, "audit", actor="li")
            assert (never.code, never.stdout) == (1, ""), never
            assert never.stderr == (
                "error: permission denied: projection audit was never built, and this "
                "database role may not create its tables: the tables' owner builds it once, "
                "with `ledger projections rebuild audit` or any query of it\n"
            )
            never = run(url, "loans", "--no-catch-up", actor="li")  # loans and catalog
            assert (never.code, never.stdout) == (1, ""), never
            assert never.stderr == (
                "error: permission denied: projections loans, catalog were never built, and "
                "this database role may not create their tables: the tables' owner builds "
                "them once, with `ledger projections rebuild loans catalog` or any query of "
                "them\n"
            )
            follow = run(url, "projections", "follow", actor="li")  # all four, at once
            assert (follow.code, follow.stderr.splitlines()) == (  # that line alone
                1,
                [
                    "error: permission denied: projections catalog, loans, audit, destruction "
                    "were never built, and this database role may not create their tables: "
                    "the tables' owner builds them once, with `ledger projections rebuild "
                    "catalog loans audit destruction` or any query of them"
                ],
            ), follow
            first = receive(url, "li")
            assert run(owner_url, "projections", "rebuild").code == 0
            second = receive(url, "li")  # one event the projections have not seen
            queries = [
                ["catalog"],
                ["loans", "--all"],
                ["audit"],
                ["report", "statistics"],
                ["report", "destruction-register"],
            ]
            for query in queries:
                done = run(url, *query, "--json", actor="li")
                assert done.code == 0, (query, done)
                names = {"report": ["catalog", "audit"], "loans": ["loans", "catalog"]}
                if query == ["report", "destruction-register"]:
                    names["report"] = ["destruction", "catalog"]
                assert done.stderr == "".join(
                    f"warning: {name} is 1 event behind the log, shown as it is (database "
                    f"role {li} may not update the projections; the owner's `ledger "
                    "projections follow` or any query of the owner's does)\n"
                    for name in names.get(query[0], [query[0]])
                ), (query, done)
            rows = run(url, "catalog", "--json", "--no-catch-up", actor="li")
            assert (rows.code, rows.stderr) == (0, ""), rows
            assert [row["id"] for row in rows.json()] == [str(first)]
            assert run(owner_url, "catalog").code == 0  # the owner's query catches up
            rows = run(url, "catalog", "--json", actor="li")
            assert (rows.code, rows.stderr) == (0, ""), rows
            assert sorted(row["id"] for row in rows.json()) == sorted([str(first), str(second)])
            rebuild = run(url, "projections", "rebuild", actor="li")
            assert (rebuild.code, rebuild.stdout) == (1, ""), rebuild
            assert rebuild.stderr.startswith("error: permission denied for "), rebuild
            assert len(rebuild.stderr.splitlines()) == 1, rebuild
            follow = run(url, "projections", "follow", actor="li")  # ends: no retrying
            assert (follow.code, follow.stderr.splitlines()[-1]) == (
                1,
                "error: permission denied: this database role may not update the projections "
                "(their tables' owner follows the log)",
            ), follow


def test_status_tells_a_projection_this_role_may_not_read_from_one_never_built() -> None:
    """`projections status` said "not built" for a projection whose tables exist but which
    the session's role may not read (a role without SELECT on them),
    or, if it might read the position alone, "up to date" while every query of it failed.
    It says the projection cannot be read by this role; one never built stays "not built"."""
    require_pg()
    with fresh_database() as pg_url:
        for owner_url, li, wang in _office(pg_url):
            assert run(owner_url, "catalog").code == 0  # builds catalog, and only catalog
            assert run(owner_url, "audit").code == 0
            with psycopg.connect(owner_url, autocommit=True) as owner:
                owner.execute(
                    sql.SQL("REVOKE SELECT ON catalog_tracking FROM {}").format(sql.Identifier(li))
                )
                owner.execute(
                    sql.SQL("REVOKE SELECT ON audit_records FROM {}").format(sql.Identifier(li))
                )
            head = run(owner_url, "projections", "status", "--json").json()[0]["head"]
            states = {
                url: {
                    row["projection"]: (row["position"], row["lag"], row["state"])
                    for row in run(url, "projections", "status", "--json").json()
                }
                for url in (as_role(owner_url, li), as_role(owner_url, wang), owner_url)
            }
            unreadable = (None, None, "not readable by this role")
            never = (None, head, "not built")
            built = (head, 0, "up to date")
            assert states[as_role(owner_url, li)] == {
                "catalog": unreadable,
                "loans": never,
                "audit": unreadable,
                "destruction": never,
            }
            expected = {"catalog": built, "loans": never, "audit": built, "destruction": never}
            assert states[as_role(owner_url, wang)] == expected
            assert states[owner_url] == expected
            table = run(as_role(owner_url, li), "projections", "status")
            assert table.code == 0 and table.stderr == "", table
            line = next(row for row in table.stdout.splitlines() if row.startswith("catalog "))
            assert line.split(maxsplit=2) == ["catalog", str(head), "not readable by this role"]


def test_projections_built_by_a_superuser_belong_to_the_tables_owner() -> None:
    """A superuser's query of a projection never built made its tables the superuser's:
    the owner (who ran `ledger init`, and runs the catch-ups and rebuilds) then got
    `permission denied`, and officers could not read them (the default privileges are
    the owner's). They are made as the owner now."""
    require_pg()
    with fresh_database() as url:
        owner = f"ledger_owner_{secrets.token_hex(4)}"
        with psycopg.connect(url, autocommit=True) as superuser:
            superuser.execute(
                sql.SQL("CREATE ROLE {0} LOGIN PASSWORD {1}").format(
                    sql.Identifier(owner), sql.Literal(f"pw-{owner}")
                )
            )
            superuser.execute(
                sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {0}").format(sql.Identifier(owner))
            )
        try:
            owner_url = as_role(url, owner)
            assert run(owner_url, "init", "--director", DIRECTOR, "--name", "王主任").code == 0
            first = run(url, "catalog")  # the superuser's session builds it
            assert first.code == 0, first
            owners = RawStore(url).query(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE tablename IN (?, ?, ?)",
                ("catalog", "catalog_tracking", "former_titles"),
            )
            assert owners == [(owner,)], owners
            assert run(owner_url, *ADD_LIAISON, actor=DIRECTOR).code == 0
            receive(owner_url, DIRECTOR)  # (the catalog has a row to catch up with)
            for args in (["catalog"], ["projections", "rebuild", "catalog"]):
                done = run(owner_url, *args)
                assert done.code == 0, done
        finally:
            with psycopg.connect(url, autocommit=True) as superuser:
                superuser.execute(sql.SQL("DROP OWNED BY {0}").format(sql.Identifier(owner)))
                superuser.execute(sql.SQL("DROP ROLE {0}").format(sql.Identifier(owner)))
