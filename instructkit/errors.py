"""Errors. Every error a user can cause is an ``InstructkitError``; the CLI turns it into exit code 1.

Errors that concern one row carry where it came from (file and line, or row index) and a short
machine-readable ``reason`` so that validators and rejects files can count them.
"""

from __future__ import annotations


class InstructkitError(Exception):
    """Base class: a problem the user can fix (bad input, bad option, missing file)."""


class UsageError(InstructkitError):
    """An option or argument that does not make sense."""


class FormatError(InstructkitError):
    """A file whose format is unknown or cannot be read as the requested format."""


class RowError(InstructkitError):
    """One row is wrong. ``where`` is ``file:line`` (readers) or ``row N`` (writers, stages)."""

    def __init__(self, reason: str, message: str, *, file: str | None = None, line: int | None = None,
                 row: int | None = None):
        self.reason = reason
        self.detail = message
        self.file = file
        self.line = line
        self.row = row
        super().__init__(self._render())

    @property
    def where(self) -> str:
        if self.file is not None and self.line is not None:
            return f"{self.file}:{self.line}"
        if self.file is not None and self.row is not None:
            return f"{self.file} row {self.row}"
        if self.row is not None:
            return f"row {self.row}"
        return self.file or ""

    def _render(self) -> str:
        where = self.where
        return f"{where}: {self.detail} [{self.reason}]" if where else f"{self.detail} [{self.reason}]"

    def located(self, *, file: str | None = None, line: int | None = None,
                row: int | None = None) -> RowError:
        """Return a copy with location filled in where it was missing."""
        return RowError(self.reason, self.detail, file=self.file or file,
                        line=self.line if self.line is not None else line,
                        row=self.row if self.row is not None else row)

    def to_dict(self) -> dict:
        return {"reason": self.reason, "error": self.detail, "file": self.file, "line": self.line,
                "row": self.row}


class RecordError(RowError):
    """A record breaks a schema rule (see ``records``)."""


class TemplateError(InstructkitError):
    """A template is missing, does not parse, or needs a variable that was not given."""


class LLMError(InstructkitError):
    """The LLM endpoint cannot be used (bad configuration, cache-only miss, budget exhausted)."""
