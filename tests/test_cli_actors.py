"""Managing actors through the real `ledger` process: grant, revoke, clearance, deactivate."""

from __future__ import annotations

import psycopg

from tests.cli import (
    ARCHIVIST,
    BORROWER,
    DIRECTOR,
    EXTERNAL,
    LIAISON,
    event_count,
    last_event,
    one_line,
    post,
    run,
    setup_office,
)


def test_director_manages_actors_and_a_deactivated_actor_may_not_act(db_url: str) -> None:
    setup_office(db_url)
    granted = run(db_url, "actor", "grant", BORROWER, "--role", "auditor", "--json", actor=DIRECTOR)
    assert granted.code == 0, granted
    assert granted.json()["roles"] == ["auditor", "borrower"]
    revoked = run(db_url, "actor", "revoke", BORROWER, "--role", "auditor", actor=DIRECTOR)
    assert (revoked.code, revoked.stdout) == (0, f"actor {BORROWER}: revoke\n"), revoked
    cleared = run(db_url, "actor", "clearance", BORROWER, "top-secret", "--json", actor=DIRECTOR)
    assert cleared.json()["clearance"] == "top-secret", cleared

    before = event_count(db_url)
    refused = run(db_url, "actor", "grant", BORROWER, "--role", "leader", actor=ARCHIVIST)
    assert refused.code == 3 and refused.stderr.startswith("refused (R19):"), refused
    assert event_count(db_url) == before + 1  # the refused attempt is recorded

    gone = run(db_url, "actor", "deactivate", ARCHIVIST, "--reason", "retired", actor=DIRECTOR)
    assert gone.code == 0, gone
    listed = {a["id"]: a for a in run(db_url, "actor", "list", "--json").json()}
    assert listed[ARCHIVIST]["active"] is False
    assert listed[BORROWER]["roles"] == ["borrower"]
    assert listed[BORROWER]["clearance"] == "top-secret"

    receipt = run(
        db_url,
        "receive",
        "--title",
        "t",
        "--department",
        "d",
        "--year",
        "2020",
        "--carrier",
        "paper",
        "--pages",
        "3",
        "--secrecy",
        "public",
        "--transferred-by",
        LIAISON,
        actor=ARCHIVIST,
    )
    assert receipt.code == 3, receipt
    assert receipt.stderr == f"refused (R19): actor {ARCHIVIST} is deactivated and may not act\n"


def test_a_refused_receipt_or_actor_change_keeps_the_time_it_was_attempted(db_url: str) -> None:
    """R19 refusals of a receipt and of an actor change are recorded with the attempt's
    --occurred-at, as every other refusal is (they were recorded at the posting time)."""
    setup_office(db_url)
    attempts = [
        ("receive", "--title", "会议纪要", "--department", "办公室", "--year", "2024",
         "--carrier", "paper", "--pages", "3", "--secrecy", "public",
         "--transferred-by", LIAISON),
        ("actor", "clearance", ARCHIVIST, "public"),
    ]  # fmt: skip
    times = ("2025-03-01T09:30:00+08:00", "2025-04-02T10:00:00+08:00")
    for at, attempt in zip(times, attempts, strict=True):
        done = run(db_url, *attempt, "--occurred-at", at, actor=BORROWER)
        assert done.code == 3 and "refused (R19)" in done.stderr, done
        topic, body = last_event(db_url)
        assert topic == "ledger/Refusal/AttemptRefused" and body["rule"] == "R19", body
        assert body["occurred_at"] == at and body["actor"] == BORROWER, body


def test_the_ledger_always_keeps_an_active_director(db_url: str) -> None:
    """The only director could revoke their own director role or deactivate themselves:
    nobody could manage actors again, and `init --director` refuses a ledger with actors.
    Either is refused (R19) while no other active director is registered."""
    setup_office(db_url)
    before = event_count(db_url)
    only = f"refused (R19): actor {DIRECTOR} is the only active director; register or grant "
    for change in (
        ("revoke", DIRECTOR, "--role", "director"),
        ("deactivate", DIRECTOR, "--reason", "left"),
    ):
        done = run(db_url, "actor", *change, actor=DIRECTOR)
        assert (done.code, done.stdout) == (3, ""), done
        assert one_line(done.stderr).startswith(only), done
    assert event_count(db_url) == before

    granted = run(db_url, "actor", "grant", ARCHIVIST, "--role", "director", actor=DIRECTOR)
    assert granted.code == 0, granted
    done = run(db_url, "actor", "deactivate", DIRECTOR, "--reason", "left", actor=DIRECTOR)
    assert done.code == 0, done  # another director is left
    for change, doing in (
        (("revoke", ARCHIVIST, "--role", "director"), "revoke its director role"),
        (("deactivate", ARCHIVIST, "--reason", "left"), "deactivate it"),
    ):
        done = run(db_url, "actor", *change, actor=ARCHIVIST)
        assert (done.code, one_line(done.stderr)) == (
            3,
            f"refused (R19): actor {ARCHIVIST} is the only active director; register or "
            f"grant another director before you {doing}",
        )
    assert event_count(db_url) == before + 3  # the deactivation's loss of a director too


def test_an_actor_change_that_changes_nothing_is_refused_and_writes_nothing(db_url: str) -> None:
    """Granting a role held, revoking one not held, setting the clearance it has, and
    granting to, revoking from or changing the clearance of a deactivated actor each
    wrote an event that changed nothing; revoking the last role left an actor with none.
    Each is invalid input (exit 2)."""
    setup_office(db_url)
    done = run(db_url, "actor", "deactivate", EXTERNAL, "--reason", "left", actor=DIRECTOR)
    assert done.code == 0, done
    before = event_count(db_url)
    cases = [
        (("grant", BORROWER, "--role", "borrower", "--role", "leader"),
         f"actor {BORROWER} already has the role borrower"),
        (("revoke", BORROWER, "--role", "auditor", "--role", "leader"),
         f"actor {BORROWER} does not have the roles auditor, leader"),
        (("clearance", BORROWER, "secret"), f"actor {BORROWER} already has clearance secret"),
        (("grant", EXTERNAL, "--role", "leader"),
         f"actor {EXTERNAL} is deactivated; no role is granted to it"),
        (("revoke", EXTERNAL, "--role", "borrower"),
         f"actor {EXTERNAL} is deactivated; its roles stay as they were"),
        (("clearance", EXTERNAL, "public"),
         f"actor {EXTERNAL} is deactivated; its clearance stays as it was"),
        (("revoke", BORROWER, "--role", "borrower"),
         f"actor {BORROWER} would have no role left; deactivate it instead"),
    ]  # fmt: skip
    for args, message in cases:
        done = run(db_url, "actor", *args, actor=DIRECTOR)
        assert (done.code, done.stdout, one_line(done.stderr)) == (2, "", f"error: {message}")
    assert event_count(db_url) == before


def test_a_refused_attempt_on_an_actor_names_the_actor_and_what_was_asked(db_url: str) -> None:
    """An archivist's attempt to deactivate the director was recorded with its action and
    the rule only: an auditor could not tell whom it named (found by exploratory testing).
    The refusal's reason, on stderr and in the audit trail, now says what was asked."""
    setup_office(db_url)
    done = run(db_url, "actor", "deactivate", DIRECTOR, "--reason", "篡位", actor=ARCHIVIST)
    line = (
        f"refused (R19): actor {ARCHIVIST} may not manage-actors: it needs the role director; "
        f"attempted: actor-deactivate {DIRECTOR} reason='篡位'"
    )
    assert (done.code, one_line(done.stderr)) == (3, line), done
    rows = run(db_url, "audit", "--refused", "--actor", ARCHIVIST, "--json").json()
    assert [(r["action"], r["rule"], r["detail"]) for r in rows] == [
        ("actor-deactivate", "R19", line.removeprefix("refused (R19): "))
    ]
    # Text is quoted: a line break in a name cannot put a line of its own on stderr.
    done = run(db_url, "actor", "add", "zz", "--name", "张 三\nline 2: forged", "--role",
               "borrower", "--clearance", "public", actor=ARCHIVIST)  # fmt: skip
    assert done.code == 3 and len(done.stderr.splitlines()) == 1, done
    assert "attempted: actor-add zz name='张 三\\nline 2: forged' role=borrower" in done.stderr


def test_a_database_role_that_cannot_apply_is_invalid_input(db_url: str) -> None:
    """`--db-role` took any text (exit 0): on PostgreSQL a role the server does not have (a
    misspelling, another case, a name longer than 63 bytes), whose actor could then never
    act; on SQLite, which has no roles, a binding never applied (an exploratory find)."""
    setup_office(db_url)
    add = ["actor", "add", "li2", "--name", "李", "--role", "archivist", "--clearance", "secret"]
    line = {"command": "actor-add", "id": "li2", "actor_id": "li2", "name": "李"}
    line |= {"role": ["archivist"], "clearance": "secret"}
    if db_url.startswith("sqlite:"):
        roles = {"x": "database roles exist on PostgreSQL only"}
    else:
        with psycopg.connect(db_url) as conn:
            own = str(conn.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]
        problem = "no such role on this PostgreSQL server (names are case-sensitive)"
        roles = {"fr_nobody_" + own: problem, own.upper(): problem, own + "x" * 70: problem}
    before = event_count(db_url)
    for role, problem in roles.items():
        done = run(db_url, *add, "--db-role", role, actor=DIRECTOR)
        assert (done.code, done.stdout) == (2, ""), done
        assert done.stderr == f"error: database role {role!r}: {problem}\n", done
        posted = post(db_url, [{**line, "db_role": role}], actor=DIRECTOR)
        assert posted.code == 2, posted
        assert f"error: database role {role!r}: {problem}" in posted.stdout + posted.stderr
    assert event_count(db_url) == before
    if not db_url.startswith("sqlite:"):  # the role of this very session, in its case
        done = run(db_url, *add, "--db-role", own, actor=DIRECTOR)
        assert done.code == 0, done
