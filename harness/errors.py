"""Three kinds of error, never confused.

1. ``ScenarioError``: the user's input is wrong (bad YAML, unknown fault, value out of range). It names
   the file, line, column, field, the bad value and what is allowed. The CLI exits 2.
2. ``Failure`` (a value, not an exception): the system under test is wrong. It carries the time, the
   node and the evidence; the run's result carries the seed and the command that reproduces it. The
   CLI exits 1. ``SystemUnderTestError`` is the exception the harness raises internally to carry one.
3. ``InternalError``: the harness itself is wrong. The CLI exits 3.

``AmbientNondeterminismError`` is raised when code inside a run reaches for the wall clock, global
randomness or threads that the sandbox cannot simulate; it is a failure of the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ScenarioError", "Failure", "SystemUnderTestError", "InternalError", "AmbientNondeterminismError",
]


class ScenarioError(Exception):
    """Bad user input, located as precisely as we can: file, line, column and field."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: int | None = None, field: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.file or "<scenario>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        subject = f" {self.field}:" if self.field else ""
        return f"{where}:{subject} {self.message}"


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure of the system under test: what went wrong, where and when (true time)."""

    kind: str  # e.g. "exception", "invariant", "ambient-nondeterminism", "expectation"
    message: str
    time_ns: int
    node: str | None = None
    evidence: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        where = f" on {self.node}" if self.node else ""
        text = f"[{self.kind}] at t={self.time_ns / 1e9:.6f}s{where}: {self.message}"
        for line in self.evidence:
            text += f"\n    {line}"
        return text


class SystemUnderTestError(Exception):
    """Carries a ``Failure`` out of code that cannot return one."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.describe())


class InternalError(Exception):
    """The harness is wrong. Always a bug in Graylink, never in the user's system or input."""


class AmbientNondeterminismError(RuntimeError):
    """Simulated code used a source of nondeterminism the sandbox refuses (named with its call site)."""
