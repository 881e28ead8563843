"""Durability: every acknowledged write is present, or legitimately overwritten, after the cluster heals.

Theory of operation. After the heal phase the harness reads each key's final value from the healed
cluster (``final_state``; None: absent). For each such key the checker appends one more operation to
that key's history: a read invoked after every recorded operation completed, returning the final value.
The acknowledged writes, the writes with an unknown outcome (which may or may not have applied) and
every read the clients saw must then still have a linearization ending in that read. If the key's
history is linearizable without the final read but not with it, the final value cannot follow what
clients were told: an acknowledged write was lost (or the value was corrupted). Checking key by key
(linearizability is compositional) keeps the cost bounded; each key has its own step budget.

Which writes are missing. Weakening an acknowledged write (it may or may not have taken effect, still
within its span) only makes a history easier to linearize, so the checker finds the shortest suffix of
the key's acknowledged writes, by acknowledgement time, whose weakening lets the key's *writes* (reads
dropped, so a read that saw a lost value does not hide the loss) end in the final value (bisection:
weakening is monotone). Those are the writes whose effect is missing; the latest of them leads the
evidence, with its argument and acknowledgement time. If reads still contradict the final value once
those writes are weakened, or the writes alone allow the final value (a read saw a value now gone), or
no suffix explains it (the value was never written, or is corrupt), the evidence says so and adds a
shrunk conflict from ``shrink.py``.

Keys whose history is itself not linearizable (a stale read, say) are judged on their writes alone:
the reads are dropped (conditional writes still observe), and the same test runs. A loss found there is
real: the acknowledged writes cannot produce the final value. If even the writes are not linearizable,
durability is ``unknown`` for that key: the linearizability check reports the violation. A search that
runs out of budget is ``unknown`` too, never a pass. Keys in the history but not in ``final_state`` are
not checked: the caller chooses what to read back.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.checkers.models import KV, Model, freeze
from harness.checkers.search import LINEARIZABLE, NOT_LINEARIZABLE, UNKNOWN_VERDICT
from harness.checkers.shrink import shrink_violation
from harness.checkers.subhistory import Budget, Item, decide, prepare
from harness.checkers.verdict import (FAIL_VERDICT, PASS, UNKNOWN_OUTCOME, CheckResult, HistoryLike,
                                      format_time, operations_of)
from harness.history import INFO, OK, Operation

__all__ = ["DURABILITY_MAX_STEPS", "check_durability"]

DURABILITY_MAX_STEPS = 1_000_000  # model steps per key and per search
_WRITES_SHOWN = 5  # evidence lists at most this many missing writes per key
_KEYS_SHOWN = 10  # and at most this many keys in detail
_FINAL_PROCESS = -1  # the process of the appended final read (no client uses it)


@dataclass(frozen=True, slots=True)
class _KeyFinding:
    """The durability verdict for one key, with the evidence lines for a loss."""

    key: Any
    verdict: str  # pass | fail | unknown
    writes_only: bool = False  # judged on the key's writes alone (its full history is not linearizable)
    evidence: tuple[str, ...] = ()
    time_ns: int | None = None  # acknowledgement of the latest missing write


def check_durability(history: HistoryLike, final_state: Mapping[Any, Any], model: Model = KV,
                     holders: Callable[[Any], Mapping[str, Any]] | None = None,
                     max_steps: int = DURABILITY_MAX_STEPS, *,
                     exclude: Callable[[Operation], bool] | None = None,
                     name: str = "durability") -> CheckResult:
    """Is each key's value in ``final_state`` one its acknowledged writes allow? ``holders(key)`` names
    the replicas that ever held the key's data, ``{replica: description}``, for the evidence.
    ``exclude`` drops operations first (e.g. eventually consistent reads)."""
    by_key = _operations_by_key(operations_of(history), exclude)
    final_ns = _after_everything(by_key)
    findings = [_check_key(key, by_key.get(freeze(key), []), final_state[key], model, final_ns,
                           max_steps) for key in sorted(final_state, key=repr)]
    return _result(name, findings, holders)


def _operations_by_key(operations: Sequence[Operation],
                       exclude: Callable[[Operation], bool] | None) -> dict[Hashable, list[Operation]]:
    groups: dict[Hashable, list[Operation]] = {}
    for operation in operations:
        if exclude is None or not exclude(operation):
            groups.setdefault(freeze(operation.key), []).append(operation)
    return groups


def _after_everything(by_key: Mapping[Hashable, list[Operation]]) -> int:
    """A time after every invocation and completion in the history."""
    times = [max(operation.invoked_ns, operation.completed_ns or 0)
             for operations in by_key.values() for operation in operations]
    return max(times, default=0) + 1


# -- one key -------------------------------------------------------------------------------------------
def _check_key(key: Any, operations: list[Operation], final_value: Any, model: Model, final_ns: int,
               max_steps: int) -> _KeyFinding:
    """Full history first; if that is not linearizable by itself, the writes alone."""
    final_read = _final_read(key, final_value, model, operations, final_ns)
    finding = _judge(key, operations, final_read, model, max_steps)
    if finding is not None:
        return finding
    writes = [operation for operation in operations if operation.f not in model.pure]
    finding = _judge(key, writes, final_read, model, max_steps)
    return replace(finding, writes_only=True) if finding is not None else _KeyFinding(
        key, UNKNOWN_OUTCOME, writes_only=True)


def _judge(key: Any, operations: list[Operation], final_read: Operation, model: Model,
           max_steps: int) -> _KeyFinding | None:
    """The key's verdict, or None if ``operations`` alone are not linearizable (no verdict here)."""
    items = prepare(model, operations)
    with_final = items + prepare(model, [final_read])
    verdict = decide(model, with_final, Budget(max_steps)).verdict
    if verdict != NOT_LINEARIZABLE:
        return _KeyFinding(key, PASS if verdict == LINEARIZABLE else UNKNOWN_OUTCOME)
    before = decide(model, items, Budget(max_steps)).verdict
    if before == NOT_LINEARIZABLE:
        return None
    if before == UNKNOWN_VERDICT:
        return _KeyFinding(key, UNKNOWN_OUTCOME)
    return _loss(key, final_read, with_final, model, max_steps)


def _final_read(key: Any, value: Any, model: Model, operations: Sequence[Operation],
                final_ns: int) -> Operation:
    """A read of ``key`` returning ``value``, invoked and completed after every recorded operation."""
    index = max((operation.complete_index or operation.invoke_index for operation in operations),
                default=0) + 1
    return Operation(_FINAL_PROCESS, _read_f(model, operations), key, None, final_ns, OK, value,
                     final_ns + 1, index, index + 1)


def _read_f(model: Model, operations: Sequence[Operation]) -> str:
    """The model's read that fits the key: the one its reads use, else ``get_item`` for items (kv)."""
    reads = [operation.f for operation in operations if operation.f in model.pure]
    if reads:
        return reads[-1]
    if "get_item" in model.pure and any(operation.f.endswith("_item") for operation in operations):
        return "get_item"
    for name in ("read", "get"):
        if name in model.pure:
            return name
    return min(model.pure, default="read")


# -- which writes are missing --------------------------------------------------------------------------
def _loss(key: Any, final_read: Operation, items: list[Item], model: Model,
          max_steps: int) -> _KeyFinding:
    """Evidence for a key whose final value does not follow its history (``items``, final read last).

    The missing writes are sought among the writes alone (reads dropped), so that a read that saw a
    lost value does not hide which acknowledged writes are gone; reads that still contradict the
    final value afterwards are shown as a conflict."""
    writes = [item for item in items
              if item.operation.f not in model.pure or item.operation is final_read]
    acknowledged = sorted((item for item in writes if _acknowledged_write(item.operation, model)),
                          key=lambda item: (item.operation.completed_ns, item.operation.complete_index))
    latest = acknowledged[-1].operation if acknowledged else None
    lines = [f"key {key!r}: the final value {final_read.result!r} does not follow the "
             "acknowledged writes"]
    if _linearizable(model, writes, max_steps):
        lines += [_latest_line(latest), "the writes alone allow this value, but a read saw a value "
                  "now gone; conflicting outcomes" + _FINAL_READ_NOTE]
        return _finding(key, lines + _conflict_lines(model, items, max_steps), latest)
    missing = _shortest_missing_suffix(writes, acknowledged, model, max_steps)
    if not missing:
        lines += [_latest_line(latest), "losing acknowledged writes does not explain the final "
                  "value: it was never written, or it is corrupt; conflicting outcomes"
                  + _FINAL_READ_NOTE]
        return _finding(key, lines + _conflict_lines(model, writes, max_steps), latest)
    lines += _missing_lines([item.operation for item in missing])
    rest = _weakened(items, missing, model)
    if not _linearizable(model, rest, max_steps):
        lines.append("reads contradict the final value too (a read saw a value now gone); "
                     "conflicting outcomes" + _FINAL_READ_NOTE)
        lines += _conflict_lines(model, rest, max_steps)
    return _finding(key, lines, missing[-1].operation)


_FINAL_READ_NOTE = f" (process {_FINAL_PROCESS}: the final read):"


def _finding(key: Any, lines: list[str], blamed: Operation | None) -> _KeyFinding:
    return _KeyFinding(key, FAIL_VERDICT, evidence=tuple(lines),
                       time_ns=None if blamed is None else blamed.completed_ns)


def _linearizable(model: Model, items: list[Item], max_steps: int) -> bool:
    return decide(model, items, Budget(max_steps)).verdict == LINEARIZABLE


def _acknowledged_write(operation: Operation, model: Model) -> bool:
    """An ``ok`` operation that changed the data (not a read, a failed compare or a false condition)."""
    if operation.completion != OK or operation.f in model.pure or operation.result is False:
        return False
    return not (isinstance(operation.result, dict) and operation.result.get("condition_failed"))


def _shortest_missing_suffix(items: list[Item], acknowledged: list[Item], model: Model,
                             max_steps: int) -> list[Item]:
    """The fewest latest acknowledged writes whose weakening makes ``items`` linearizable ([] if even
    all of them do not, or the budget runs out). Weakening more never hurts, so bisection finds it."""
    low, high, best = 1, len(acknowledged), []
    while low <= high:
        count = (low + high) // 2
        if _linearizable(model, _weakened(items, acknowledged[-count:], model), max_steps):
            best, high = acknowledged[-count:], count - 1
        else:
            low = count + 1
    return best


def _weakened(items: list[Item], targets: list[Item], model: Model) -> list[Item]:
    """``items`` with each of ``targets`` as "may or may not have taken effect, within its span"."""
    chosen = {id(item) for item in targets}
    return [_weaken(item, model) if id(item) in chosen else item for item in items]


def _weaken(item: Item, model: Model) -> Item:
    call = model.to_call(replace(item.operation, completion=INFO, result=None))
    return Item(item.operation, call, item.end_ns, False) if call is not None else item


def _missing_lines(missing: list[Operation]) -> list[str]:
    lines = [f"latest acknowledged write, missing: {_describe_write(missing[-1])}"]
    if len(missing) > 1:
        lines.append(f"{len(missing)} acknowledged writes are missing (latest first):")
        shown = missing[::-1][:_WRITES_SHOWN]
        lines += [f"  {_describe_write(operation)}" for operation in shown]
        if len(missing) > len(shown):
            lines.append(f"  ... and {len(missing) - len(shown)} earlier")
    return lines


def _latest_line(latest: Operation | None) -> str:
    if latest is None:
        return "no write on this key was acknowledged"
    return f"latest acknowledged write: {_describe_write(latest)}"


def _conflict_lines(model: Model, items: list[Item], max_steps: int) -> list[str]:
    """The shrunk conflict of a non-linearizable ``items`` (sound: see ``shrink.py``)."""
    evidence = shrink_violation(model, items, max_steps)
    return [f"  {model.describe_operation(operation)}" for operation in evidence.conflict]


def _describe_write(operation: Operation) -> str:
    return (f"{operation.f} {operation.argument!r} by process {operation.process}, acknowledged at "
            f"{format_time(operation.completed_ns)} (invoked at {format_time(operation.invoked_ns)})")


# -- the result ----------------------------------------------------------------------------------------
def _result(name: str, findings: list[_KeyFinding],
            holders: Callable[[Any], Mapping[str, Any]] | None) -> CheckResult:
    lost = [finding for finding in findings if finding.verdict == FAIL_VERDICT]
    unknown = [finding for finding in findings if finding.verdict == UNKNOWN_OUTCOME]
    metrics = {"keys_checked": len(findings), "lost_acknowledged_writes": len(lost),
               "keys_unknown": len(unknown),
               "keys_judged_on_writes_only": sum(finding.writes_only for finding in findings)}
    if lost:
        evidence = [line for finding in lost[:_KEYS_SHOWN] for line in _key_lines(finding, holders)]
        if len(lost) > _KEYS_SHOWN:
            evidence.append(f"... and {len(lost) - _KEYS_SHOWN} more keys")
        first = min((finding.time_ns for finding in lost if finding.time_ns is not None), default=None)
        summary = (f"{len(lost)} of {len(findings)} keys hold a value their acknowledged writes do "
                   f"not allow: a lost acknowledged write (first: {lost[0].key!r})")
        return CheckResult(name, FAIL_VERDICT, summary, tuple(evidence), metrics, first)
    if unknown:
        keys = ", ".join(repr(finding.key) for finding in unknown[:_KEYS_SHOWN])
        why = f"undecided (budget ran out, or even the writes are not linearizable): {keys}"
        return CheckResult(name, UNKNOWN_OUTCOME, f"durability undecided for {len(unknown)} of "
                           f"{len(findings)} keys", (why,), metrics)
    return CheckResult(name, PASS, f"all {len(findings)} keys hold a value their acknowledged writes "
                       f"allow", (), metrics)


def _key_lines(finding: _KeyFinding, holders: Callable[[Any], Mapping[str, Any]] | None) -> list[str]:
    lines = list(finding.evidence)
    if finding.writes_only:
        lines.append("(judged on the key's writes alone: its reads are not linearizable)")
    if holders is not None:
        held = holders(finding.key)
        lines.append("replicas that ever held it: " + ("; ".join(
            f"{replica} ({description})" for replica, description in sorted(held.items()))
            if held else "none recorded"))
    return lines
