"""Check results: one verdict type for every checker, and the linearizability checker in that form.

Theory of operation. A checker reads what a run recorded (a History, replica digests, lease intervals)
and returns a ``CheckResult``: a verdict, a one-line summary, readable evidence and numeric metrics.
The verdict is one of three words, never a boolean, because "we could not decide" must never read as
a pass:

- ``pass``: the property holds on what was recorded;
- ``fail``: the system under test broke it; ``failure()`` turns the result into a ``harness.Failure``
  (kind = the check's name, message = the summary, the evidence, and the time of the violation when
  the checker knows it, else 0);
- ``unknown``: the checker could not decide (a search budget ran out, nothing to measure).

Metrics are plain numbers (counts, seconds, ratios) keyed by dotted names, deterministic for one seed:
no wall time goes into them. This module also holds what the checkers share: turning any history form
into Operations, which ``f`` names are writes and reads, and how a time is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checkers.linearizability import DEFAULT_MAX_STEPS, LinearizabilityResult, check_operations
from harness.checkers.models import Model
from harness.checkers.search import LINEARIZABLE, NOT_LINEARIZABLE
from harness.errors import Failure
from harness.history import FAIL, OK, History, HistoryEntry, Operation, pair_operations

__all__ = [
    "CONDITION_FAILED_ERRORS", "PASS", "FAIL_VERDICT", "READ_OPERATIONS", "UNKNOWN_OUTCOME",
    "VERDICTS", "WRITE_OPERATIONS", "CheckResult", "HistoryLike", "answered", "format_time",
    "is_eventually_consistent_read", "linearizability_check", "operations_of",
]

PASS, FAIL_VERDICT, UNKNOWN_OUTCOME = "pass", "fail", "unknown"
VERDICTS = (PASS, FAIL_VERDICT, UNKNOWN_OUTCOME)

WRITE_OPERATIONS = frozenset({"put", "put_item", "update_item", "delete_item", "write", "cas", "append",
                              "delete"})
READ_OPERATIONS = frozenset({"get", "get_item", "read"})
# A ``fail`` with one of these errors is an answer from the service ("your condition is false"), not a
# failure to serve. The spellings are those the kv and cas-register models accept.
CONDITION_FAILED_ERRORS = frozenset({"condition-failed", "condition_failed", "compare-failed"})

HistoryLike = History | Iterable[HistoryEntry] | Sequence[Operation]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A checker's verdict on a run, with the evidence a person reads and the numbers a report plots."""

    name: str  # the check, e.g. "durability"; a Failure's kind
    verdict: str  # pass | fail | unknown
    summary: str  # one line
    evidence: tuple[str, ...] = ()  # readable lines, most important first
    metrics: dict[str, float] = field(default_factory=dict, hash=False)
    time_ns: int | None = None  # true time of the violation, if known

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"a verdict is one of {VERDICTS}, got {self.verdict!r} ({self.name})")
        if "\n" in self.summary:
            raise ValueError(f"a summary is one line, got {self.summary!r} ({self.name})")
        object.__setattr__(self, "evidence", tuple(self.evidence))
        object.__setattr__(self, "metrics", {name: float(value)
                                             for name, value in sorted(self.metrics.items())})

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def failure(self, default_time_ns: int = 0) -> Failure | None:
        """The Failure this result reports, or None unless the verdict is ``fail`` (``unknown`` is not
        a failure of the system under test). ``default_time_ns`` stands in for an unknown time."""
        if self.verdict != FAIL_VERDICT:
            return None
        time_ns = default_time_ns if self.time_ns is None else self.time_ns
        return Failure(self.name, self.summary, time_ns, evidence=self.evidence)

    def describe(self) -> str:
        lines = [f"[{self.name}] {self.verdict.upper()}: {self.summary}"]
        return "\n".join(lines + [f"    {line}" for line in self.evidence])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "summary": self.summary,
                "evidence": list(self.evidence), "metrics": dict(self.metrics),
                "time_ns": self.time_ns}


# -- shared helpers ------------------------------------------------------------------------------------
def operations_of(history: HistoryLike) -> list[Operation]:
    """Operations from a History, its entries, or operations already paired."""
    if isinstance(history, History):
        return history.operations()
    items = list(history)
    if all(isinstance(item, Operation) for item in items):
        return items  # type: ignore[return-value]
    return pair_operations(items)  # type: ignore[arg-type]


def answered(operation: Operation) -> bool:
    """The service answered: ``ok``, or a ``fail`` that reports a false condition or compare (a cas,
    or a write with a ``condition``, failing with no error counts too)."""
    if operation.completion == OK:
        return True
    if operation.completion != FAIL:
        return False
    if operation.error in CONDITION_FAILED_ERRORS:
        return True
    conditional = operation.f == "cas" or (isinstance(operation.argument, dict)
                                           and operation.argument.get("condition") is not None)
    return not operation.error and conditional


def is_eventually_consistent_read(operation: Operation) -> bool:
    """A read whose argument says ``{"consistent": false}``: not meant to be linearizable."""
    return (operation.f in READ_OPERATIONS and isinstance(operation.argument, dict)
            and operation.argument.get("consistent") is False)


def format_time(time_ns: int | None) -> str:
    """``12.345678 s`` (true time, from the start of the run); ``never`` for None."""
    return "never" if time_ns is None else f"{time_ns / 1e9:.6f} s"


# -- linearizability as a CheckResult ------------------------------------------------------------------
def linearizability_check(history: HistoryLike, model: Model | str, *,
                          max_steps: int = DEFAULT_MAX_STEPS,
                          exclude: Callable[[Operation], bool] | None = None,
                          name: str = "linearizability") -> CheckResult:
    """``check_operations`` as a CheckResult: linearizable → pass, not linearizable → fail (evidence:
    the result's ``describe()``), budget exhausted → unknown. ``exclude`` drops operations that are not
    meant to be linearizable (e.g. ``is_eventually_consistent_read``)."""
    operations = [operation for operation in operations_of(history)
                  if exclude is None or not exclude(operation)]
    result = check_operations(operations, model, max_steps=max_steps)
    # describe() ends with a line of work done, wall time included: left out, so that one seed always
    # gives one CheckResult (the step count is in the metrics).
    lines = result.describe().splitlines()[:-1]
    verdict = {LINEARIZABLE: PASS, NOT_LINEARIZABLE: FAIL_VERDICT}.get(result.verdict, UNKNOWN_OUTCOME)
    return CheckResult(name, verdict, lines[0], tuple(lines[1:]), _linearizability_metrics(result),
                       _violation_time(result) if verdict == FAIL_VERDICT else None)


def _linearizability_metrics(result: LinearizabilityResult) -> dict[str, float]:
    verdicts = [key.verdict for key in result.keys]
    return {"operations": sum(key.operations for key in result.keys), "keys": len(verdicts),
            "keys.not_linearizable": verdicts.count(NOT_LINEARIZABLE),
            "keys.unknown": len(verdicts) - verdicts.count(NOT_LINEARIZABLE)
            - verdicts.count(LINEARIZABLE), "steps": result.steps}


def _violation_time(result: LinearizabilityResult) -> int | None:
    """When the violation became visible: the last completion among the conflicting operations."""
    times = [operation.completed_ns for operation in result.conflict
             if operation.completed_ns is not None]
    return max(times, default=None)
