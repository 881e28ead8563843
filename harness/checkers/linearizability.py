"""Linearizability: is there an order of the operations, consistent with real time, that the model allows?

Theory of operation. ``check_operations`` splits the history by key (the model's ``partition``;
linearizability is compositional, so the history is linearizable iff every key's is), turns each
operation into the Call the model steps (``subhistory.prepare``: ``ok`` operations with their result,
unknown ones with an UNKNOWN result and an optional effect, ``fail`` ones dropped unless the model reads
them as an observation), and runs the Wing–Gong–Lowe search of ``search.py`` on each key.

The verdict is "not-linearizable" if any key is, else "unknown" if any key's search ran out of budget,
else "linearizable". Running out of budget is never a pass. The budget (model steps, and optionally wall
time read with ``time.perf_counter``: this runs outside any simulation) is shared by all keys.

For a violation the result carries evidence: the key, the longest partial linearization the search found
(the operations it could order before getting stuck), and a small non-linearizable sub-history from
``shrink.py``: the *conflict* (operations whose recorded outcomes cannot all be true) and its *context*
(operations that may or may not have taken effect). Shrinking has its own step budget.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from harness.checkers.models import Model, freeze, get_model, thaw
from harness.checkers.search import LINEARIZABLE, NOT_LINEARIZABLE, UNKNOWN_VERDICT, SearchOutcome
from harness.checkers.shrink import shrink_violation
from harness.checkers.subhistory import Budget, Item, decide, prepare
from harness.history import History, HistoryEntry, Operation, pair_operations

__all__ = [
    "DEFAULT_MAX_STEPS", "DEFAULT_SHRINK_MAX_STEPS", "KeyVerdict", "LinearizabilityResult",
    "check_history", "check_operations",
]

DEFAULT_MAX_STEPS = 10_000_000  # model steps for one check, all keys together (seconds of CPU)
DEFAULT_SHRINK_MAX_STEPS = 1_000_000  # model steps for shrinking the evidence of a violation
_LONGEST_SHOWN = 10  # describe() shows the last operations of the longest linearization
_CONTEXT_SHOWN = 12  # describe() lists a longer context only from the conflict's start


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """The verdict for one key's sub-history."""

    key: Any
    verdict: str
    operations: int  # operations the search considered (dropped ones not counted)
    steps: int


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    """The outcome of a check, with evidence for a violation and the work it took."""

    verdict: str  # linearizable | not-linearizable | unknown
    model: Model
    keys: tuple[KeyVerdict, ...]
    failing_key: Any = None
    longest_prefix: tuple[Operation, ...] = ()  # the longest partial linearization found, in order
    conflict: tuple[Operation, ...] = ()  # outcomes that cannot all be true…
    context: tuple[Operation, ...] = ()  # …whether or not these took effect
    steps: int = 0  # model steps, checking (shrinking not included)
    shrink_steps: int = 0
    elapsed_s: float = 0.0
    reason: str = ""  # for "unknown": the budget that ran out

    @property
    def linearizable(self) -> bool:
        return self.verdict == LINEARIZABLE

    @property
    def minimal_history(self) -> tuple[Operation, ...]:
        """The non-linearizable sub-history: conflict and context, by invocation."""
        return tuple(sorted(self.conflict + self.context,
                            key=lambda operation: (operation.invoked_ns, operation.invoke_index)))

    def describe(self) -> str:
        """A readable report: the verdict, then the evidence, one operation per line."""
        lines = [self._headline()]
        if self.verdict == NOT_LINEARIZABLE:
            lines += self._evidence()
        lines.append(f"keys: {self._key_summary()}; {self.steps} steps "
                     f"(+{self.shrink_steps} shrinking), {self.elapsed_s:.3f} s")
        return "\n".join(lines)

    def _headline(self) -> str:
        total = sum(key.operations for key in self.keys)
        text = f"{self.verdict.upper()} under the {self.model.name} model ({total} operations)"
        return f"{text}: {self.reason}" if self.reason else text

    def _evidence(self) -> list[str]:
        describe = self.model.describe_operation
        lines = [(f"key {thaw(self.failing_key)!r}: the recorded outcomes of {_these(self.conflict)} "
                 f"cannot all be true")]
        lines += [f"  {describe(operation)}" for operation in self.conflict]
        if self.context:
            lines += self._context_lines()
        shown = self.longest_prefix[-_LONGEST_SHOWN:]
        tail = f", its last {len(shown)}:" if len(shown) < len(self.longest_prefix) else ":"
        lines.append(f"longest linearization found ({len(self.longest_prefix)} operations){tail}")
        lines += [f"  {describe(operation)}" for operation in shown]
        return lines

    def _context_lines(self) -> list[str]:
        """The context, all of it if short; else the operations that could take effect during the
        conflict, and a count of the earlier ones (which only decide the state it starts from)."""
        start = min(operation.invoked_ns for operation in self.conflict)
        shown = self.context if len(self.context) <= _CONTEXT_SHOWN else tuple(
            operation for operation in self.context
            if not operation.outcome_known or (operation.completed_ns or 0) >= start)
        lines = [(f"whether or not {_these(self.context)} took effect (recorded outcomes ignored; "
                 f"each within its span):")]
        if len(shown) < len(self.context):
            lines.append(f"  ... {len(self.context) - len(shown)} that completed before {start} "
                         f"(listed by --json)")
        return lines + [f"  {self.model.describe_operation(operation)}" for operation in shown]

    def _key_summary(self) -> str:
        counts: dict[str, int] = {}
        for key in self.keys:
            counts[key.verdict] = counts.get(key.verdict, 0) + 1
        return ", ".join(f"{count} {verdict}" for verdict, count in sorted(counts.items())) or "none"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: operations as dicts, keys thawed."""
        def operations(group: tuple[Operation, ...]) -> list[dict[str, Any]]:
            return [asdict(operation) for operation in group]

        return {
            "verdict": self.verdict, "model": self.model.name, "reason": self.reason,
            "keys": [{**asdict(key), "key": thaw(key.key)} for key in self.keys],
            "failing_key": thaw(self.failing_key), "conflict": operations(self.conflict),
            "context": operations(self.context), "longest_prefix": operations(self.longest_prefix),
            "steps": self.steps, "shrink_steps": self.shrink_steps,
            "elapsed_s": round(self.elapsed_s, 6),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)


def _these(operations: Sequence[Operation]) -> str:
    return "this operation" if len(operations) == 1 else f"these {len(operations)} operations"


def check_history(history: History | Iterable[HistoryEntry], model: Model | str,
                  **options: Any) -> LinearizabilityResult:
    """Check a recorded history (entries are paired into operations first); see check_operations."""
    return check_operations(pair_operations(history), model, **options)


def check_operations(operations: Sequence[Operation], model: Model | str, *,
                     max_steps: int = DEFAULT_MAX_STEPS, max_seconds: float | None = None,
                     shrink: bool = True,
                     shrink_max_steps: int = DEFAULT_SHRINK_MAX_STEPS) -> LinearizabilityResult:
    """Check ``operations`` against ``model`` (a Model or a name in MODELS), key by key.

    Raises ValueError if an operation is malformed for the model (an f it does not know, a bad
    argument, a known outcome without a completion time or before its invocation)."""
    model = get_model(model) if isinstance(model, str) else model
    started = time.perf_counter()
    budget = Budget(max_steps, None if max_seconds is None else started + max_seconds)
    keys: list[KeyVerdict] = []
    violation: tuple[Any, list[Item], SearchOutcome] | None = None
    for part in model.partition(operations):
        items = prepare(model, part)
        outcome = decide(model, items, budget)
        key = freeze(part[0].key)
        keys.append(KeyVerdict(key, outcome.verdict, len(items), outcome.steps))
        if outcome.verdict == NOT_LINEARIZABLE and violation is None:
            violation = (key, items, outcome)
    result = LinearizabilityResult(_overall(keys), model, tuple(keys), steps=budget.used,
                                   reason=_reason(keys, max_steps, max_seconds))
    if violation is not None:
        result = _with_evidence(result, violation, shrink_max_steps if shrink else 0)
    return replace(result, elapsed_s=time.perf_counter() - started)


def _overall(keys: Sequence[KeyVerdict]) -> str:
    verdicts = {key.verdict for key in keys}
    if NOT_LINEARIZABLE in verdicts:
        return NOT_LINEARIZABLE
    return UNKNOWN_VERDICT if UNKNOWN_VERDICT in verdicts else LINEARIZABLE


def _reason(keys: Sequence[KeyVerdict], max_steps: int, max_seconds: float | None) -> str:
    unknown = [key for key in keys if key.verdict == UNKNOWN_VERDICT]
    if not unknown:
        return ""
    limit = f"{max_steps} steps" + (f" or {max_seconds} s" if max_seconds is not None else "")
    return (f"the search budget ({limit}) ran out on {len(unknown)} of {len(keys)} keys "
            f"(first: {thaw(unknown[0].key)!r}); raise --max-steps to decide")


def _with_evidence(result: LinearizabilityResult, violation: tuple[Any, list[Item], SearchOutcome],
                   shrink_max_steps: int) -> LinearizabilityResult:
    key, items, outcome = violation
    evidence = shrink_violation(result.model, items, shrink_max_steps)
    longest = tuple(items[index].operation for index in outcome.longest)
    return replace(result, failing_key=key, longest_prefix=longest, conflict=evidence.conflict,
                   context=evidence.context, shrink_steps=evidence.steps)
