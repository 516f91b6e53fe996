"""Domain errors. Each carries the exit code the CLI maps it to."""

from __future__ import annotations

import pickle


class LedgerError(Exception):
    """Base of every error the ledger reports to a user."""

    exit_code = 1

    def line(self) -> str:
        return f"error: {self}"


class InvalidInput(LedgerError):
    """A malformed or missing value (exit 2)."""

    exit_code = 2


class RuleViolation(LedgerError):
    """A refusal by an archive rule (exit 3); names the rule."""

    exit_code = 3

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message

    def line(self) -> str:
        return f"refused ({self.rule}): {self.message}"


class NotFound(LedgerError):
    """A record or actor that does not exist (exit 4)."""

    exit_code = 4


class Conflict(LedgerError):
    """A concurrent writer got there first (exit 5)."""

    exit_code = 5


class IntegrityFailure(LedgerError):
    """Verification or a projection check found a difference (exit 6)."""

    exit_code = 6


def sendable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling (to cross from a worker process to its parent),
    else a LedgerError with its message."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        message = error.line() if isinstance(error, LedgerError) else f"{error}"
        return LedgerError(message.removeprefix("error: "))
