"""One key's sub-history, as the search reads it: operations turned into Calls and spans.

Theory of operation. ``prepare`` asks the model what each recorded operation means (``Model.to_call``):
dropped (None), known (a Call with a result: it took effect between its invocation and completion), or
unknown (a Call with result UNKNOWN: it may take effect at any time after its invocation, or never).
An ``Item`` keeps the operation and its Call together; ``decide`` runs the search on a list of items
within a shared ``Budget``. The shrinker rewrites item lists (weakening known items to optional ones:
result ignored, effect optional, still within the operation's span), so an item's Call need not be
what ``to_call`` gives for its recorded operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.checkers.models import UNKNOWN, Call, Model
from harness.checkers.search import SearchOutcome, search
from harness.history import Operation

__all__ = ["Budget", "Item", "decide", "prepare"]


@dataclass(frozen=True, slots=True)
class Item:
    """An operation as the search sees it: its Call, the latest time it can take effect (None: any
    time after its invocation), and whether it must (known outcome) or may (unknown outcome)."""

    operation: Operation
    call: Call
    end_ns: int | None
    known: bool


class Budget:
    """The model steps left for a check (shared by all its keys), and its wall-time deadline."""

    def __init__(self, max_steps: int, deadline: float | None = None) -> None:
        self.left, self.used, self.deadline = max_steps, 0, deadline

    def spend(self, steps: int) -> None:
        self.left -= steps
        self.used += steps


def prepare(model: Model, operations: Iterable[Operation]) -> list[Item]:
    """The items the search considers (operations the model drops are left out)."""
    items: list[Item] = []
    for operation in operations:
        call = model.to_call(operation)
        if call is not None:
            items.append(_item(operation, call))
    return items


def _item(operation: Operation, call: Call) -> Item:
    if call.result is UNKNOWN:
        return Item(operation, call, None, False)
    end = operation.completed_ns
    if end is None or end < operation.invoked_ns:
        raise ValueError(f"operation {operation.f} of process {operation.process} has a known "
                         f"outcome but completes at {end}, invoked at {operation.invoked_ns}")
    return Item(operation, call, end, True)


def decide(model: Model, items: Sequence[Item], budget: Budget) -> SearchOutcome:
    """Search for a linearization of ``items``, spending from ``budget``."""
    calls = [item.call for item in items]
    outcome = search([model.transition(call) for call in calls], model.init(),
                     [(item.operation.invoked_ns, item.end_ns, item.known) for item in items], calls,
                     max_steps=max(budget.left, 0), deadline=budget.deadline)
    budget.spend(outcome.steps)
    return outcome
