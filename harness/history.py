"""Histories: what clients asked and what they were told, in the form the checkers read.

Theory of operation. A client records each operation twice: an ``invoke`` entry when it starts, and a
completion when it ends: ``ok`` (it took effect, with its result), ``fail`` (it certainly took no
effect), or ``info`` (its outcome is unknown, e.g. a timeout: it may take effect at any time after its
invocation, or never). An operation with no completion at the end of the history is unknown too.

The JSONL form, one entry per line (this is the documented interchange format):

    {"index": 0, "process": 3, "type": "invoke", "f": "write", "key": "k1", "value": 5, "time_ns": 120}
    {"index": 1, "process": 3, "type": "ok", "f": "write", "key": "k1", "value": 5, "time_ns": 950}

- ``process``: an integer; a process performs one operation at a time.
- ``type``: ``invoke`` | ``ok`` | ``fail`` | ``info``.
- ``f``: the operation (``read``, ``write``, ``cas``, ``get``, ``put``, ``append``, ``delete``,
  ``update``…): the model decides which it understands.
- ``key``: what the operation touches (``null`` for a single register). Checkers split by key.
- ``value``: on ``invoke``, the argument; on ``ok``, the result (for a read, the value read).
- ``time_ns``: virtual (true) time in nanoseconds. Real time order is what linearizability respects.
- Optional ``node`` (which client node) and ``error`` (why it failed) fields are carried along.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["HistoryEntry", "History", "Operation", "pair_operations", "INVOKE", "OK", "FAIL", "INFO"]

INVOKE, OK, FAIL, INFO = "invoke", "ok", "fail", "info"
_TYPES = (INVOKE, OK, FAIL, INFO)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of a history."""

    process: int
    type: str  # invoke | ok | fail | info
    f: str
    key: Any
    value: Any
    time_ns: int
    index: int = -1
    node: str | None = None
    error: str | None = None

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None or k in ("key", "value")}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)


class History:
    """An append-only list of entries, with the helpers clients need to record operations."""

    def __init__(self, entries: Iterable[HistoryEntry] = ()) -> None:
        self.entries: list[HistoryEntry] = []
        for entry in entries:
            self.append(entry)

    def append(self, entry: HistoryEntry) -> HistoryEntry:
        if entry.type not in _TYPES:
            raise ValueError(f"history entry type must be one of {_TYPES}, got {entry.type!r}")
        if entry.index != len(self.entries):
            entry = HistoryEntry(entry.process, entry.type, entry.f, entry.key, entry.value,
                                 entry.time_ns, len(self.entries), entry.node, entry.error)
        self.entries.append(entry)
        return entry

    def invoke(self, process: int, f: str, key: Any, value: Any, time_ns: int,
               node: str | None = None) -> HistoryEntry:
        return self.append(HistoryEntry(process, INVOKE, f, key, value, time_ns, node=node))

    def complete(self, invocation: HistoryEntry, type_: str, value: Any, time_ns: int,
                 error: str | None = None) -> HistoryEntry:
        """Record how ``invocation`` ended: ``ok`` with its result, ``fail`` or ``info``."""
        if type_ not in (OK, FAIL, INFO):
            raise ValueError(f"a completion is ok, fail or info, got {type_!r}")
        return self.append(HistoryEntry(invocation.process, type_, invocation.f, invocation.key,
                                        value, time_ns, node=invocation.node, error=error))

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def write_jsonl(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            for entry in self.entries:
                handle.write(entry.to_json() + "\n")

    def operations(self) -> list[Operation]:
        return pair_operations(self.entries)


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion (``completion`` None: never completed)."""

    process: int
    f: str
    key: Any
    argument: Any
    invoked_ns: int
    completion: str | None  # ok | fail | info | None
    result: Any
    completed_ns: int | None
    invoke_index: int
    complete_index: int | None
    error: str | None = None  # the completion's error, e.g. why it failed

    @property
    def outcome_known(self) -> bool:
        return self.completion in (OK, FAIL)


def pair_operations(entries: Iterable[HistoryEntry]) -> list[Operation]:
    """Pair each invocation with its process's next completion. Raises ValueError on a malformed
    history (a completion without an invocation, or two invocations open on one process)."""
    open_by_process: dict[int, HistoryEntry] = {}
    operations: dict[int, Operation] = {}
    for entry in entries:
        if entry.type == INVOKE:
            if entry.process in open_by_process:
                raise ValueError(f"entry {entry.index}: process {entry.process} invoked {entry.f} "
                                 f"while its previous operation is still open")
            open_by_process[entry.process] = entry
            continue
        invocation = open_by_process.pop(entry.process, None)
        if invocation is None:
            raise ValueError(f"entry {entry.index}: process {entry.process} completed {entry.f} "
                             f"({entry.type}) without an open invocation")
        operations[invocation.index] = Operation(
            entry.process, invocation.f, invocation.key, invocation.value, invocation.time_ns,
            entry.type, entry.value, entry.time_ns, invocation.index, entry.index, entry.error)
    for invocation in open_by_process.values():
        operations[invocation.index] = Operation(
            invocation.process, invocation.f, invocation.key, invocation.value, invocation.time_ns,
            None, None, None, invocation.index, None)
    return [operations[index] for index in sorted(operations)]
