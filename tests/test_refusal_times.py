"""What the audit trail says of refused attempts, and who it can be asked about.

Found by exploratory testing of the reading side: an attempt dated before the record's
previous event (even before its receipt) was judged against the record's state of today
and kept at that date; a cleared reader's attempt at the same date was refused under
R14 instead. And `audit --actor` refused to list an unregistered actor's attempts (R19),
which the trail keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tests.cli import ARCHIVIST, DIRECTOR, LEADER, LIAISON, run, setup_office

RECORD = "77777777-7777-4777-8777-777777777777"
CODE = "K-1"


def received_secret(db_url: str) -> None:
    steps = [
        ("receive", "--record", RECORD, "--title", "T", "--department", "D", "--year", "2012",
         "--carrier", "paper", "--pages", "5", "--secrecy", "secret", "--transferred-by",
         LIAISON, "--occurred-at", "2013-01-10T00:00:00Z"),
        ("arrange", RECORD, "--category", "business", "--retention", "30y", "--code", CODE,
         "--occurred-at", "2013-01-11T00:00:00Z"),
        ("shelve", CODE, "--location", "A1-01-01-01", "--occurred-at", "2013-01-12T00:00:00Z"),
    ]  # fmt: skip
    for step in steps:
        done = run(db_url, *step, actor=ARCHIVIST)
        assert done.code == 0, done


def refused(db_url: str) -> list[tuple[str, str, str]]:
    trail = run(db_url, "audit", "--refused", "--json", actor=DIRECTOR)
    assert trail.code == 0, trail
    return [(r["occurred_at"], r["rule"], r["secrecy"]) for r in trail.json()]


def test_an_attempt_dated_before_the_records_previous_event_is_refused_under_r14(
    db_url: str,
) -> None:
    setup_office(db_url)
    received_secret(db_url)
    for at in ("2010-06-01T00:00:00Z", "2013-01-11T12:00:00Z"):  # before receipt, before shelving
        attempt = run(db_url, "consult", CODE, "--reader", LIAISON, "--purpose", "查考",
                      "--occurred-at", at, actor=ARCHIVIST)  # fmt: skip
        assert attempt.code == 3, attempt
        assert attempt.stderr.startswith("refused (R14): occurred-at "), attempt
    assert refused(db_url) == []  # R14 refusals are not kept, as for a cleared reader

    # At a time after the previous event, the uncleared reader is refused under R6, kept.
    attempt = run(db_url, "consult", CODE, "--reader", LIAISON, "--purpose", "查考",
                  "--approved-by", LEADER, "--occurred-at", "2013-06-01T00:00:00Z",
                  actor=ARCHIVIST)  # fmt: skip
    assert attempt.code == 3 and attempt.stderr.startswith("refused (R6): "), attempt
    assert refused(db_url) == [("2013-06-01T00:00:00+00:00", "R6", "secret")]


def test_audit_lists_an_unregistered_actors_attempts(db_url: str) -> None:
    setup_office(db_url)
    received_secret(db_url)
    attempt = run(db_url, "relocate", CODE, "--location", "A1-01-01-02", actor="ghost")
    assert attempt.code == 3 and attempt.stderr.startswith("refused (R19): "), attempt
    listed = run(db_url, "audit", "--actor", "ghost", "--json", actor=DIRECTOR)
    assert listed.code == 0, listed
    assert [(r["actor"], r["rule"], r["action"]) for r in listed.json()] == [
        ("ghost", "R19", "relocate")
    ]
    # One that is neither registered nor in the trail is still a typo: exit 4.
    typo = run(db_url, "audit", "--actor", "ghots", actor=DIRECTOR)
    assert typo.code == 4, typo
    assert typo.stderr == (
        "error: actor 'ghots' is not registered, and the audit trail does not name it\n"
    )


def test_custody_known_at_before_anything_was_recorded_says_so(db_url: str) -> None:
    """With --as-of after the receipt and --known-at before anything was recorded, the
    record was said not to exist yet at the --as-of time, which is false."""
    setup_office(db_url)
    received_secret(db_url)
    for command in ("custody", "show"):
        early = run(db_url, command, CODE, "--as-of", "2020-01-01T00:00:00Z",
                    "--known-at", "2001-01-01T00:00:00Z")  # fmt: skip
        assert early.code == 4, early
        assert early.stderr == (
            f"error: nothing of record '{CODE}' had been recorded by 2001-01-01T00:00:00Z\n"
        )
        before = run(db_url, command, CODE, "--as-of", "2013-01-01T00:00:00Z")
        assert before.code == 4, before
        assert (
            before.stderr == f"error: record '{CODE}' did not exist yet at 2013-01-01T00:00:00Z\n"
        )


def test_an_attempt_claiming_a_time_the_record_cannot_have_is_kept_at_its_posting(
    db_url: str,
) -> None:
    """An unregistered actor is refused (R19) before R14 is asked, and its attempt kept:
    at the time it claims only when the record can have had it; else at the time it was
    posted, the claim in its reason, never before the record's history (when the record's
    secrecy of today would be shown against a time it did not have it)."""
    setup_office(db_url)
    received_secret(db_url)
    for claimed, why in [
        ("2010-06-01T00:00:00+00:00", "before the record's previous event"),
        ("2099-01-01T00:00:00+00:00", "in the future"),
    ]:
        before = datetime.now(tz=UTC).isoformat()
        attempt = run(db_url, "consult", CODE, "--reader", LIAISON, "--purpose", "查考",
                      "--occurred-at", claimed, actor="ghost")  # fmt: skip
        assert attempt.code == 3 and attempt.stderr.startswith("refused (R19): "), attempt
        trail = run(db_url, "audit", "--actor", "ghost", "--json", actor=DIRECTOR).json()
        kept = trail[-1]
        assert kept["rule"] == "R19", kept
        assert before <= kept["occurred_at"] <= datetime.now(tz=UTC).isoformat(), kept
        assert (
            f"(claimed occurred-at {claimed}, {why}: kept at the time it was posted)"
            in (kept["detail"])
        ), kept
    early = run(db_url, "audit", "--refused", "--json", "--until", "2013-02-01", actor=DIRECTOR)
    assert early.code == 0 and early.json() == [], early


def test_a_refused_destruction_names_its_approver(db_url: str) -> None:
    setup_office(db_url)
    received_secret(db_url)
    attempt = run(db_url, "destroy", CODE, "--approved-by", LEADER, "--witness", ARCHIVIST,
                  "--witness", LIAISON, "--register", "XH-1", actor="ghost")  # fmt: skip
    assert attempt.code == 3 and attempt.stderr.startswith("refused (R19): "), attempt
    trail = run(db_url, "audit", "--actor", "ghost", "--json", actor=DIRECTOR).json()
    assert [(r["action"], r["approved_by"]) for r in trail] == [("destroy", LEADER)], trail
