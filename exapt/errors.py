"""The exception hierarchy shared by every subsystem.

Every error a user can cause says what was wrong (the file, field or value) and what to do
next (``hint``). The CLI prints ``message`` and ``hint`` and exits non-zero; it never prints
a traceback for an ``ExaptError``.
"""

from __future__ import annotations


class ExaptError(Exception):
    """Base class: a problem the user can fix, with a hint saying how."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(ExaptError):
    """Bad input: an unknown name, a malformed file, an out-of-range value."""


class UnavailableError(ExaptError):
    """A part this machine lacks: a backend not installed, a server that did not start."""


class BudgetExceeded(ExaptError):
    """A run's budget (USD, tokens, wall time) ran out; the run stops cleanly."""
