"""Reading the projections: the catalog, the loan register, the audit trail, the reports.

Every function returns rows as dicts in a fixed, deterministic order (sorted here, not by
the database's collation), so the same projections always print the same bytes.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from aggregates.values import Secrecy
from projections.base import utc_text
from projections.views import View

LEVELS = [s.value for s in Secrecy]
STATUSES = ["received", "arranged", "shelved", "on-loan", "destroyed"]
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def levels_at_least(level: str) -> list[str]:
    return LEVELS[LEVELS.index(level) :]


class Where:
    """A WHERE clause built from optional filters, with ``?`` placeholders."""

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.params: list[Any] = []

    def add(self, term: str, *params: Any) -> None:
        self.terms.append(term)
        self.params.extend(params)

    def any_of(self, column: str, values: Sequence[Any]) -> None:
        self.add(f"{column} IN ({','.join('?' * len(values))})", *values)

    def like(self, columns: Sequence[str], text: str, backend: str) -> None:
        """A substring match in any of ``columns``, with ASCII letters only case-folded
        (each side alike, on both backends); ``%``, ``_`` and ``\\`` match themselves."""
        folded = text.translate(ASCII_LOWER)
        pattern = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        terms = [f"{ascii_lower(c, backend)} LIKE ? ESCAPE '\\'" for c in columns]
        self.add("(" + " OR ".join(terms) + ")", *([f"%{pattern}%"] * len(columns)))

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.terms) if self.terms else ""


def ascii_lower(column: str, backend: str) -> str:
    """``column`` with its ASCII letters lower-cased and nothing else: SQLite's lower()
    does just that, PostgreSQL's folds every letter (É, Σ, Ａ), so there translate()."""
    if backend == "postgres":
        return f"translate({column}, '{string.ascii_uppercase}', '{string.ascii_lowercase}')"
    return f"lower({column})"


# -- catalog ------------------------------------------------------------------


def catalog(
    view: View,
    *,
    status: str | None = None,
    secrecy_at_least: str | None = None,
    category: str | None = None,
    year: int | None = None,
    search: str | None = None,
) -> list[dict[str, Any]]:
    where = Where()
    if status:
        where.add("status = ?", status)
    if secrecy_at_least:
        where.any_of("secrecy", levels_at_least(secrecy_at_least))
    if category:
        where.add("category = ?", category)
    if year is not None:
        where.add("year = ?", year)
    if search:
        where.like(("title", "code", "department", "id"), search, view.backend)
    rows = view.select(f"SELECT * FROM catalog{where.sql()}", where.params)
    for row in rows:
        row["late"] = bool(row["late"])
    return sorted(rows, key=lambda r: (r["code"] is None, r["code"] or "", r["id"]))


# -- loans --------------------------------------------------------------------


def loans(
    view: View,
    *,
    which: str = "open",
    borrower: str | None = None,
    as_of: date | None = None,
) -> list[dict[str, Any]]:
    """``which``: open, overdue (open and past due) or all; as of the end of a day in UTC
    (default now), each row showing only what had happened by then, its title too. A loan
    is overdue once its due day has passed: the day ``as_of``, or today in the offset the
    loan was made in (the office's day, R10), not today in UTC."""
    now = datetime.now(UTC)
    day = as_of or now.date()
    end = utc_text(datetime.combine(day, time.max, UTC).isoformat())  # to the microsecond
    where = Where()
    if borrower:
        where.add("l.borrower = ?", borrower)
    # The title then: replaced by the first correction after ``end``, if any (the code
    # never changes once a record is arranged, before any loan).
    sql = (
        "SELECT l.*, c.code, COALESCE((SELECT f.title FROM former_titles f "
        "WHERE f.record_id = l.record_id AND f.until_utc > ? ORDER BY f.version LIMIT 1), "
        "c.title) AS title FROM loans l LEFT JOIN catalog c ON c.id = l.record_id" + where.sql()
    )
    found = []
    for row in view.select(sql, [end, *where.params]):
        if utc_text(row["lent_at"]) > end:
            continue
        if row["returned_at"] is not None and utc_text(row["returned_at"]) > end:
            row.update(dict.fromkeys(RETURN_COLUMNS))  # returned later: open then
        today = as_of.isoformat() if as_of else _local_day(row["lent_at"], now)
        row["status"] = _loan_status(row, today)
        if (
            which == "all"
            or row["status"] == which
            or (which == "open" and row["status"] == "overdue")
        ):
            found.append(_loan(row))
    return sorted(found, key=lambda r: (utc_text(r["lent_at"]), r["record"], r["lent_version"]))


RETURN_COLUMNS = ("returned_at", "returned_to", "condition", "pages_returned", "discrepancy")


def _local_day(lent_at: str, now: datetime) -> str:
    """Today, where the loan was made: ``now``'s date in the offset of its time."""
    return now.astimezone(datetime.fromisoformat(lent_at).tzinfo).date().isoformat()


def _loan_status(row: dict[str, Any], day: str) -> str:
    if row["returned_at"] is not None:
        return "returned"
    return "overdue" if row["due"] < day else "open"


def _loan(row: dict[str, Any]) -> dict[str, Any]:
    row["record"] = row.pop("record_id")
    return row


# -- audit --------------------------------------------------------------------


def audit(
    view: View,
    *,
    secrecy_at_least: str | None = None,
    actor: str | None = None,
    record: str | None = None,
    since: str | None = None,
    until: str | None = None,
    refused: bool = False,
) -> list[dict[str, Any]]:
    """Uses and refused attempts; ``record`` is a record's id (its code changes over its
    life); ``since`` inclusive and ``until`` exclusive, as UTC text."""
    where = Where()
    if secrecy_at_least:
        where.any_of("secrecy", levels_at_least(secrecy_at_least))
    if actor:
        where.add("(actor = ? OR reader = ?)", actor, actor)
    if record:
        where.add("record_id = ?", record)
    if since:
        where.add("occurred_utc >= ?", since)
    if until:
        where.add("occurred_utc < ?", until)
    if refused:
        where.add("outcome = ?", "refused")
    rows = view.select(f"SELECT * FROM audit{where.sql()}", where.params)
    rows.sort(key=_audit_order)
    for row in rows:
        row["record"] = row.pop("record_id")
        del row["occurred_utc"]
        row.pop("version", None)
    return rows


# What orders audit rows at one time, after the record: everything they show but the
# log position, which depends on the order writers committed in (posting workers).
AUDIT_CONTENT = (
    "action", "outcome", "rule", "actor", "reader", "approved_by", "letter", "purpose",
    "detail", "code", "secrecy", "occurred_at",  # (the time as written: its offset too)
)  # fmt: skip


def _audit_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """By time (UTC); at one time by record (none first), a record's uses in their order
    on it (version), then its refused attempts (no event of the record), by what they
    show; the log position last (rows that differ in nothing else). Rows written before
    the audit kept versions (until a rebuild) have none, and sort as refused attempts."""
    version = row.get("version")
    if version is not None:  # one use of a record per version: what it shows is not asked
        return (row["occurred_utc"], row["record_id"], False, version, (), row["position"])
    shown = tuple("" if row[c] is None else str(row[c]) for c in AUDIT_CONTENT)
    return (row["occurred_utc"], row["record_id"] or "", True, 0, shown, row["position"])


def names(view: View, actor: str) -> bool:
    """Whether any row of the whole audit trail names ``actor``, as who posted (or tried
    to) or as the reader: a scan of the trail, stopped at the first row found (asked
    only when an actor never registered has no rows in the window asked for)."""
    sql = (
        "SELECT EXISTS (SELECT 1 FROM audit WHERE actor = ?) "
        "OR EXISTS (SELECT 1 FROM audit WHERE reader = ?) AS found"
    )
    return bool(view.select(sql, [actor, actor])[0]["found"])


# -- reports ------------------------------------------------------------------


def destruction_register(view: View) -> list[dict[str, Any]]:
    """销毁清册: each destruction with its record, the appraisal it rests on, approvals."""
    sql = (
        "SELECT d.register_no, d.destroyed_at, d.record_id, c.code, c.title, c.retention, "
        "a.appraised_at, a.decision, a.appraisers, a.basis, d.approved_by, d.witnesses, "
        "d.method, d.actor "
        "FROM destructions d "
        "LEFT JOIN catalog c ON c.id = d.record_id "
        "LEFT JOIN appraisals a ON a.record_id = d.record_id AND a.version = d.appraisal_version"
    )
    rows = view.select(sql)
    for row in rows:
        row["record"] = row.pop("record_id")
        row["appraisers"] = (row["appraisers"] or "").split(",") if row["appraisers"] else []
        row["witnesses"] = row["witnesses"].split(",") if row["witnesses"] else []
    return sorted(rows, key=lambda r: (utc_text(r["destroyed_at"]), r["register_no"], r["record"]))


CATALOG_DIMENSIONS = ("category", "year", "retention", "secrecy", "status", "carrier")


def statistics(view: View, period: str = "month") -> list[dict[str, Any]]:
    """Counts of records by each catalogue dimension, and uses and refusals per period."""
    rows: list[dict[str, Any]] = []
    for dimension in CATALOG_DIMENSIONS:
        found = view.select(
            f"SELECT {dimension} AS value, count(*) AS n FROM catalog GROUP BY {dimension}"
        )
        counts = {row["value"]: int(row["n"]) for row in found}
        for value in sorted(counts, key=_order(dimension)):
            rows.append({"dimension": dimension, "value": value, "count": counts[value]})
    # Records flagged late (R2) or with an open discrepancy (R9): a dimension and the value
    # counted, as the rows above say ("status", "shelved").
    flags = (("transfer", "late", "late = 1"), ("discrepancy", "open", "discrepancy IS NOT NULL"))
    for dimension, value, term in flags:
        found = view.select(f"SELECT count(*) AS n FROM catalog WHERE {term}")
        rows.append({"dimension": dimension, "value": value, "count": int(found[0]["n"])})
    width = {"year": 4, "month": 7, "day": 10}[period]
    uses = view.select("SELECT occurred_utc, outcome FROM audit")
    tally = Counter((r["outcome"], r["occurred_utc"][:width]) for r in uses)
    for outcome, dimension in (("done", "uses"), ("refused", "refused attempts")):
        for value in sorted(v for o, v in tally if o == outcome):
            dim = f"{dimension} per {period}"
            rows.append({"dimension": dim, "value": value, "count": tally[(outcome, value)]})
    return rows


def _order(dimension: str) -> Any:
    known = {"secrecy": LEVELS, "status": STATUSES}.get(dimension)

    def key(value: Any) -> tuple[int, Any]:
        if value is None:
            return (2, "")
        if known is not None and value in known:
            return (0, known.index(value))
        return (1, value)

    return key
