"""The trace: every dispatched event, folded into a running digest.

Theory of operation. The kernel calls ``record(time_ns, node, kind, detail)`` once per dispatched event.
Records are buffered as tuples and folded into a BLAKE2b digest a chunk at a time (hashing one record
at a time would dominate the kernel's cost). The digest is defined over fixed chunks of the record
sequence, records ``[0, 256)``, ``[256, 512)``, … and the last, partial chunk, each encoded whole with
``marshal`` version 2: that version writes values only (no back-references, so how objects are shared
leaves no mark) and is many times faster than ``repr``. Because chunk boundaries depend only on record
numbers, reading the digest mid-run or running in pieces does not change it: ``digest()`` hashes the
partial chunk into a copy of the running hash. A chunk holding something ``marshal`` refuses (an object
of a class of its own) is encoded as ``repr`` lines instead.

Determinism rule for callers: ``node``, ``kind`` and ``detail`` must be built only from ``str``, ``int``,
``float``, ``bool``, ``None`` and tuples of these, whose encoding is stable across processes. Never put
a set (its order depends on ``PYTHONHASHSEED``) or an object whose ``repr`` shows its ``id()`` into a trace.

When a path is given, every record is also written as one JSON line (``{"i", "t_ns", "node", "kind",
"detail"}``); ``first_divergence`` compares two such files.
"""

from __future__ import annotations

import hashlib
import json
import marshal
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["Trace", "TraceRecord", "Divergence", "first_divergence", "read_trace"]

# Records per digest chunk; the kernel asks for a fold every 256 events. Small, so that few records
# wait in memory: each is a new object, and thousands of them would set off the garbage collector.
_BATCH = 256
_MARSHAL_VALUES_ONLY = 2  # the last marshal version without back-references
TraceRecord = tuple[int, "str | None", str, Any]


class Trace:
    """A running digest of events, with an optional JSONL copy and a short in-memory tail."""

    def __init__(self, path: str | Path | None = None, *, tail: int = 200) -> None:
        self._hash = hashlib.blake2b(digest_size=16)
        self._buffer: list[TraceRecord] = []  # recorded, not yet folded
        self._unhashed: list[TraceRecord] = []  # folded, waiting for their chunk to fill up
        self.count = 0
        self._tail: deque[TraceRecord] = deque(maxlen=tail)  # the last events, for failure reports
        self._file: IO[str] | None = open(path, "w", encoding="utf-8") if path else None
        self.record = self._buffer.append  # the hot path: one list append per event

    def _fold(self) -> None:
        buffer = self._buffer
        if not buffer:
            return
        self._tail.extend(buffer[-self._tail.maxlen :] if self._tail.maxlen else ())
        if self._file is not None:
            base = self.count
            write = self._file.write
            for offset, (time_ns, node, kind, detail) in enumerate(buffer):
                line = {"i": base + offset, "t_ns": time_ns, "node": node, "kind": kind,
                        "detail": _jsonable(detail)}
                write(json.dumps(line, separators=(",", ":")) + "\n")
        self.count += len(buffer)
        unhashed = self._unhashed
        unhashed += buffer
        buffer.clear()
        full = len(unhashed) - len(unhashed) % _BATCH
        for start in range(0, full, _BATCH):
            self._hash.update(_encode(unhashed[start : start + _BATCH]))
        del unhashed[:full]

    def maybe_fold(self) -> None:
        """Called by the kernel every few events; folds when the buffer is full."""
        if len(self._buffer) >= _BATCH:
            self._fold()

    def digest(self) -> str:
        """The hex digest of everything recorded so far."""
        self._fold()
        digest = self._hash.copy()  # the partial chunk is hashed again once it is full
        if self._unhashed:
            digest.update(_encode(self._unhashed))
        return digest.hexdigest()

    def events(self) -> int:
        return self.count + len(self._buffer)

    def tail(self) -> list[TraceRecord]:
        """The most recent events (up to ``tail`` of them), oldest first."""
        self._fold()
        return list(self._tail)

    def close(self) -> None:
        self._fold()
        if self._file is not None:
            self._file.close()
            self._file = None


def _encode(records: list[TraceRecord]) -> bytes:
    """One chunk's canonical bytes (see the module docstring)."""
    try:
        return marshal.dumps(records, _MARSHAL_VALUES_ONLY)
    except ValueError:  # an object marshal cannot write: its repr must be stable (see the rule above)
        return ("\n".join(map(repr, records)) + "\n").encode()


def _jsonable(detail: Any) -> Any:
    if isinstance(detail, tuple):
        return [_jsonable(part) for part in detail]
    return detail


def read_trace(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first event at which two traces differ (``None`` on a side that ended first)."""

    index: int
    left: dict[str, Any] | None
    right: dict[str, Any] | None

    def describe(self) -> str:
        return (f"traces diverge at event #{self.index}:\n"
                f"  first run:  {_describe_event(self.left)}\n"
                f"  second run: {_describe_event(self.right)}")


def _describe_event(event: dict[str, Any] | None) -> str:
    if event is None:
        return "(trace ended)"
    return f"t={event['t_ns'] / 1e9:.9f}s node={event['node']} {event['kind']} {event['detail']}"


def first_divergence(left: str | Path, right: str | Path) -> Divergence | None:
    """Walk two JSONL traces side by side; the first differing event, or None if they are equal."""
    left_events, right_events = read_trace(left), read_trace(right)
    index = 0
    while True:
        a, b = next(left_events, None), next(right_events, None)
        if a is None and b is None:
            return None
        if a != b:
            return Divergence(index, a, b)
        index += 1
