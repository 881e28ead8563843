"""Items and the operations on them: the state machine every replica applies, in log order.

An item is a dict of attributes (str → JSON-able value). A table is a dict of partition key → item.
Operations are DynamoDB-shaped and plain data (``ItemOperation``), so they travel in messages and WAL
records and appear in histories unchanged:

- ``put_item``: replace the whole item;
- ``get_item``: read it (``consistent=True`` for a strongly consistent read at the leader);
- ``delete_item``: remove it;
- ``update_item``: ``set`` attributes to values, ``add`` numbers to numeric attributes (missing = 0);

each with an optional ``Condition``: an attribute ``equals`` a value, ``exists``, or ``not_exists``
(``attribute=None`` with ``not_exists`` means "the item does not exist"). A failed condition leaves the
item unchanged and answers ``condition_failed``: compare-and-set is a conditional put.

``apply(item, operation)`` is pure: it returns the new item (or None when deleted/absent) and the
result. Replicas call it in commit order; the linearizability model calls the same function, so the
checker and the system can never disagree about what an operation means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Item", "Condition", "ItemOperation", "OperationResult", "apply", "freeze_item",
           "WRITE_OPERATIONS", "READ_OPERATIONS"]

Item = dict[str, Any]
WRITE_OPERATIONS = ("put_item", "delete_item", "update_item")
READ_OPERATIONS = ("get_item",)


@dataclass(frozen=True, slots=True)
class Condition:
    """A precondition on the item's current state."""

    kind: str  # "equals" | "exists" | "not_exists"
    attribute: str | None = None  # None: the condition is on the item itself (exists / not_exists)
    value: Any = None  # for "equals"

    def holds(self, item: Item | None) -> bool:
        if self.kind == "not_exists":
            return item is None if self.attribute is None else (item is None or
                                                                 self.attribute not in item)
        if item is None:
            return False
        if self.kind == "exists":
            return self.attribute is None or self.attribute in item
        if self.kind == "equals":
            return self.attribute is not None and item.get(self.attribute) == self.value
        raise ValueError(f"unknown condition kind {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        """The clause in the checkers' item format (harness/checkers/models.py, model ``kv``)."""
        if self.attribute is None:
            return {"item_exists": self.kind == "exists"}
        if self.kind == "equals":
            return {"attribute": self.attribute, "equals": self.value}
        return {"attribute": self.attribute, "exists": self.kind == "exists"}


@dataclass(frozen=True, slots=True)
class ItemOperation:
    """One client operation on one item (by partition key)."""

    kind: str  # put_item | get_item | delete_item | update_item
    key: str
    item: tuple[tuple[str, Any], ...] = ()  # put_item: the new item, as sorted pairs (hashable)
    set_attributes: tuple[tuple[str, Any], ...] = ()  # update_item: attribute := value
    add_attributes: tuple[tuple[str, float], ...] = ()  # update_item: attribute += number
    condition: Condition | None = None
    consistent: bool = True  # get_item: strongly (True) or eventually (False) consistent

    @property
    def is_write(self) -> bool:
        return self.kind in WRITE_OPERATIONS

    def to_json(self) -> dict[str, Any] | None:
        """The argument recorded in histories: the ``kv`` model's item format (harness/checkers)."""
        data: dict[str, Any] = {}
        if self.kind == "put_item":
            data["item"] = dict(self.item)
        if self.set_attributes:
            data["set"] = dict(self.set_attributes)
        if self.add_attributes:
            data["add"] = dict(self.add_attributes)
        if self.condition is not None:
            data["condition"] = self.condition.to_json()
        if self.kind == "get_item":
            data["consistent"] = self.consistent
        return data or None


@dataclass(frozen=True, slots=True)
class OperationResult:
    """What an operation answered: ``ok`` with the item read (reads) or ``condition_failed``."""

    ok: bool
    item: tuple[tuple[str, Any], ...] | None = None  # get_item: the item read (None: absent)
    error: str = ""  # "condition_failed", or empty
    extra: dict[str, Any] = field(default_factory=dict)


def freeze_item(item: Item | None) -> tuple[tuple[str, Any], ...] | None:
    """A hashable, canonical form of an item (sorted attribute pairs)."""
    return None if item is None else tuple(sorted(item.items()))


def apply(item: Item | None, operation: ItemOperation) -> tuple[Item | None, OperationResult]:
    """The new state of the item and the operation's result. Pure: ``item`` is never mutated."""
    if operation.kind == "get_item":
        return item, OperationResult(True, freeze_item(item))
    if operation.condition is not None and not operation.condition.holds(item):
        return item, OperationResult(False, error="condition_failed")
    if operation.kind == "put_item":
        return dict(operation.item), OperationResult(True)
    if operation.kind == "delete_item":
        return None, OperationResult(True)
    if operation.kind == "update_item":
        updated = dict(item) if item is not None else {}
        updated.update(operation.set_attributes)
        for attribute, amount in operation.add_attributes:
            current = updated.get(attribute, 0)
            updated[attribute] = (current if isinstance(current, (int, float)) else 0) + amount
        return updated, OperationResult(True)
    raise ValueError(f"unknown operation kind {operation.kind!r}")
