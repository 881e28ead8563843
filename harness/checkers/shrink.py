"""Shrinking a violation to evidence a person can check by hand, without ever lying.

Theory of operation. Dropping an operation from a non-linearizable history can make a *new* violation
(drop the write, and the read that saw it becomes impossible), so "drop operations while it stays
non-linearizable" can produce evidence that is false of the real history. The shrinker only uses
rewrites that make a history *easier* to linearize; if the rewritten history still has no linearization,
neither has the original, so the evidence is sound:

1. Cut: keep the operations invoked up to some time; those completing later become unknown (they may or
   may not have taken effect, at any time after their invocation). The shortest failing cut is found by
   bisection.
2. Weaken: a known operation becomes optional: its result is no longer trusted and it may or may not
   have taken effect, still between its invocation and its completion. An operation that certainly took
   no effect (``fail``), or one the model drops when its outcome is unknown (a read), is removed. Tried
   on chunks of known operations, halving the chunk size down to one, latest first, until no single
   operation can be weakened.
3. Trim: optional operations invoked after every known one completed can be ordered last, so they
   explain nothing: removed.

What remains is the *conflict* (known operations whose recorded outcomes cannot all be true, minimal:
weakening any one of them makes the rest linearizable) and the *context* (operations that may or may not
have taken effect). Every check spends from one step budget; when it runs out, the smallest evidence
proved so far is returned. (Removing an operation outright is not among the rewrites: without the write
it saw, a read becomes impossible, and the "evidence" would be a violation the system never had.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.checkers.models import Model
from harness.checkers.search import NOT_LINEARIZABLE
from harness.checkers.subhistory import Budget, Item, decide
from harness.history import FAIL, INFO, Operation

__all__ = ["Evidence", "shrink_violation"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """A non-linearizable sub-history: the conflict (outcomes trusted) and its context (outcomes not)."""

    conflict: tuple[Operation, ...]
    context: tuple[Operation, ...]
    steps: int


def shrink_violation(model: Model, items: Sequence[Item], max_steps: int) -> Evidence:
    """Shrink ``items`` (one key's prepared sub-history, not linearizable) to sound evidence."""
    budget = Budget(max_steps)
    current = _shortest_cut(model, list(items), budget)
    chunk = max(sum(item.known for item in current) // 2, 1)
    while budget.left > 0:
        before = len(current), sum(item.known for item in current)
        current = _weaken_pass(model, current, chunk, budget)
        if chunk == 1 and (len(current), sum(item.known for item in current)) == before:
            break  # a whole pass changed nothing: no single operation can be weakened
        chunk = max(chunk // 2, 1)
    by_invocation = sorted(current, key=lambda item: (item.operation.invoked_ns,
                                                      item.operation.invoke_index))
    return Evidence(tuple(item.operation for item in by_invocation if item.known),
                    tuple(item.operation for item in by_invocation if not item.known), budget.used)


def _violated(model: Model, items: list[Item], budget: Budget) -> bool:
    """Proved not linearizable (running out of budget proves nothing)."""
    return budget.left > 0 and decide(model, items, budget).verdict == NOT_LINEARIZABLE


def _shortest_cut(model: Model, items: list[Item], budget: Budget) -> list[Item]:
    """The history cut at the earliest known completion at which it is already not linearizable."""
    cuts = sorted({item.end_ns for item in items if item.known and item.end_ns is not None})
    best, low, high = items, 0, len(cuts) - 1  # cutting at cuts[-1] loses nothing: the whole history
    while low < high:
        middle = (low + high) // 2
        candidate = _cut(model, items, cuts[middle])
        if _violated(model, candidate, budget):
            best, high = candidate, middle
        else:
            low = middle + 1
    return best


def _cut(model: Model, items: list[Item], time_ns: int) -> list[Item]:
    kept: list[Item] = []
    for item in items:
        if item.operation.invoked_ns > time_ns:
            continue
        if item.known and item.end_ns is not None and item.end_ns > time_ns:
            weakened = _weaken(model, item)
            if weakened is not None:
                kept.append(weakened)
        else:
            kept.append(item)
    return kept


def _weaken(model: Model, item: Item) -> Item | None:
    """The item with its outcome unknown, or None if that leaves nothing to check."""
    if item.operation.completion == FAIL:
        return None  # it certainly took no effect: only its observation mattered
    call = model.to_call(replace(item.operation, completion=INFO, result=None))
    return None if call is None else Item(item.operation, call, item.end_ns, False)


def _weaken_pass(model: Model, items: list[Item], chunk: int, budget: Budget) -> list[Item]:
    """One pass, latest known operations first: weaken each run of ``chunk`` of them if the history
    stays not linearizable."""
    known = [item for item in items if item.known]
    current = items
    for stop in range(len(known), 0, -chunk):
        targets = {id(item) for item in known[max(stop - chunk, 0):stop]}
        candidate = _trim([_weaken(model, item) if id(item) in targets else item
                           for item in current])
        if _violated(model, candidate, budget):
            current = candidate
        if budget.left <= 0:
            break
    return current


def _trim(items: list[Item | None]) -> list[Item]:
    """Drop removed items, and unknown ones invoked after every known one completed."""
    present = [item for item in items if item is not None]
    last_end = max((item.end_ns for item in present if item.known and item.end_ns is not None),
                   default=None)
    if last_end is None:
        return present
    return [item for item in present if item.known or item.operation.invoked_ns <= last_end]
