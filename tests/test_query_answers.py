"""What queries answer for text outside ASCII, LIKE's wildcards, an impostor's trail and a
record never arranged: the same on SQLite and PostgreSQL, through the real `ledger` (the
search matrix through the same click command in this process, which keeps it fast)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from commands.main import cli
from tests.cli import (
    ARCHIVIST,
    AUDITOR,
    BACKENDS,
    BORROWER,
    LEADER,
    LIAISON,
    fresh_store,
    one_line,
    post,
    run,
    setup_office,
)

ACCENTED = "ÉCOLE Ａ档案 ΣΟΦΙΑ"
WILD = "Mixed Case 100%_done a\\b"
PLAIN = "100x done aXb"
WIDE = "ＡＢＣ公司 ｆｕｌｌ"
TITLES = {
    ACCENTED: "00000000-0000-4000-8000-0000000000a1",
    WILD: "00000000-0000-4000-8000-0000000000a2",
    PLAIN: "00000000-0000-4000-8000-0000000000a3",
    WIDE: "00000000-0000-4000-8000-0000000000a4",
}
VOLUME = "00000000-0000-4000-8000-0000000000a5"
IMPOSTOR = "nobody"


def lines() -> list[dict[str, object]]:
    """A record per title (received only), one arranged as a volume, and an unregistered
    actor's refused attempt (R19) on 6 March 2024, kept in the audit trail."""
    receipt = {"command": "receive", "actor": ARCHIVIST, "department": "办公室", "year": 2023,
               "carrier": "paper", "pages": 5, "secrecy": "public", "transferred_by": LIAISON,
               "occurred_at": "2024-03-01T09:00:00+08:00"}  # fmt: skip
    found: list[dict[str, object]] = [
        {**receipt, "id": f"r{n}", "record": record, "title": title}
        for n, (title, record) in enumerate({**TITLES, "卷": VOLUME}.items())
    ]
    found.append(
        {"command": "arrange", "id": "v", "actor": ARCHIVIST, "record": VOLUME, "unit": "volume",
         "category": "administration", "retention": "30y", "code": "V-0001",
         "occurred_at": "2024-03-02T09:00:00+08:00"}
    )  # fmt: skip
    found.append(
        {"command": "consult", "id": "c", "actor": IMPOSTOR, "record": TITLES[PLAIN],
         "reader": BORROWER, "purpose": "查考", "approved_by": LEADER,
         "occurred_at": "2024-03-06T10:00:00+08:00"}
    )  # fmt: skip
    return found


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_store(request.param, tmp_path_factory.mktemp("answers")) as url:
        setup_office(url)
        done = post(url, lines())
        assert done.code == 3 and done.stdout.startswith("posted 6, skipped 0, refused 1"), done
        yield url


# The titles each search finds: an exact substring always; ASCII letters in any case;
# no other letter in another case (É, Σ, full-width Ａ); %, _ and \ only themselves.
SEARCHES = {
    "Ａ档案": [ACCENTED],
    "ÉCOLE": [ACCENTED],
    "École": [ACCENTED],
    "école": [],
    "ecole": [],
    "ΣΟΦΙΑ": [ACCENTED],
    "σοφια": [],
    "ａ档案": [],
    "ＡＢＣ": [WIDE],
    "ａｂｃ": [],
    "abc": [],
    "ｆｕｌｌ": [WIDE],
    "ＦＵＬＬ": [],
    "mixed CASE": [WILD],
    "MIXED case 100%_DONE A\\B": [WILD],
    "axb": [PLAIN],
    "0X D": [PLAIN],
    "100%": [WILD],
    "%": [WILD],
    "_": [WILD],
    "%_d": [WILD],
    "a\\b": [WILD],
    "\\": [WILD],
    "done": [WILD, PLAIN],
}


def test_search_matches_exact_text_and_folds_ascii_letters_only(store: str) -> None:
    """SQLite found no exact `Ａ档案` or `ÉCOLE` (Python lowercased the pattern, SQLite's
    lower() the titles' ASCII only) and PostgreSQL found `école` and `σοφια` (its lower()
    folds every letter): both now answer as README says."""
    for text, titles in SEARCHES.items():
        done = CliRunner().invoke(
            cli, ["catalog", "--search", text, "--json"], env={"LEDGER_DB": store}
        )
        assert done.exit_code == 0, (done.output, done.exception)
        assert sorted(row["title"] for row in json.loads(done.stdout)) == sorted(titles), text
    exact = run(store, "catalog", "--search", "Ａ档案", "--json")
    assert (exact.code, [row["title"] for row in exact.json()]) == (0, [ACCENTED]), exact


# Spaces around a search are dropped, as posting drops them around a title; inside, kept.
SPACED_SEARCHES = {
    " Mixed": [WILD],
    "aXb\u3000": [PLAIN],
    "\tdone ": [WILD, PLAIN],
    " 0X D ": [PLAIN],
    " 0XD ": [],
}


def test_search_drops_spaces_around_its_text_as_posting_does(store: str) -> None:
    """`--search ' Mixed'` found no title `Mixed Case ...`: posting drops the spaces around
    a title, so none stored begins or ends with one, and a search kept them. Those around
    the text are dropped; those inside it are searched for."""
    for text, titles in SPACED_SEARCHES.items():
        done = run(store, "catalog", "--search", text, "--json")
        assert (done.code, done.stderr) == (0, ""), done
        assert sorted(row["title"] for row in done.json()) == sorted(titles), text


def test_an_impostor_the_trail_names_is_no_unknown_actor_under_any_filter(store: str) -> None:
    """`audit --actor nobody --since 2025-01-01` said exit 4, "the audit trail does not
    name it", judging from the filtered rows; the whole trail names it: no rows, exit 0."""
    listed = run(store, "audit", "--actor", IMPOSTOR, "--json")
    assert listed.code == 0, listed
    assert [(r["actor"], r["rule"]) for r in listed.json()] == [(IMPOSTOR, "R19")]
    for args in (("--since", "2025-01-01"), ("--refused", "--until", "2024-03-01")):
        for form in ((), ("--json",)):
            done = run(store, "audit", "--actor", IMPOSTOR, *args, *form, actor=AUDITOR)
            assert (done.code, done.stderr) == (0, ""), done
            assert done.stdout == ("[]\n" if form else "(none)\n"), done
        registered = run(store, "audit", "--actor", BORROWER, *args, actor=AUDITOR)
        assert (registered.code, registered.stdout) == (0, "(none)\n"), registered
    stranger = run(store, "audit", "--actor", "ghost", "--since", "2025-01-01")
    assert (stranger.code, stranger.stdout) == (4, ""), stranger
    assert one_line(stranger.stderr) == (
        "error: actor 'ghost' is not registered, and the audit trail does not name it"
    )


def test_show_and_the_catalog_agree_on_the_unit(store: str) -> None:
    """A record never arranged is an item (DOMAIN: a record is an item or a volume; item
    unless arranged as a volume): `show` said so, the catalog said null."""
    rows = {row["id"]: row["unit"] for row in run(store, "catalog", "--json").json()}
    assert rows == {**dict.fromkeys(TITLES.values(), "item"), VOLUME: "volume"}
    for record, unit in rows.items():
        assert run(store, "show", record, "--json").json()["unit"] == unit, record
