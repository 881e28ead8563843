"""The replica's write-ahead log: the record codec (M14, M24) and the in-memory mirror of the file.

File format. A WAL or ballot file is a sequence of records, each a header of 8 bytes (big-endian
payload length, then the CRC-32 of the payload) followed by the payload, UTF-8 JSON. A WAL record holds
one ``LogEntry`` (with its ``ItemOperation``); a ballot record holds one promised ballot. JSON is turned
back into dataclasses field by field: no eval, no pickle.

Decoding reads records in order and stops at the first one that is torn (shorter than its header
says), corrupt (CRC mismatch, undecodable payload, a hole or repeat in the log sequence numbers) or of a
format this node cannot read (M24). Everything before it is the valid prefix; the replica truncates
the file there. A cut never skips a record: a log must stay dense. Format 2 (``COMPACT_FORMAT``, the
``v2`` version's) lays an entry's record out differently; a record's format is its entry's.

``WriteAheadLog`` mirrors the WAL file in memory: the entries, the byte offset where each record
starts (so a conflicting suffix can be cut with one ``Truncate``), and how much of it is durable. A
``generation`` counts truncations, so that a durability report about bytes that were later cut away
is recognised and ignored.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from systems.dynamo.effects import Persist, Truncate
from systems.dynamo.group import GroupConfig
from systems.dynamo.items import Condition, ItemOperation
from systems.dynamo.messages import CURRENT_FORMAT, LogEntry

__all__ = [
    "NO_BALLOT",
    "Ballot",
    "DecodedBallot",
    "DecodedLog",
    "WriteAheadLog",
    "COMPACT_FORMAT",
    "decode_ballot_file",
    "decode_records",
    "decode_wal",
    "encode_ballot",
    "encode_entry",
    "encode_records",
]

Ballot = tuple[int, str]
NO_BALLOT: Ballot = (0, "")
HEADER_BYTES = 8
MAX_RECORD_BYTES = 1 << 24  # a longer length field can only be damage
Readable = Callable[[int], bool]  # may this node decode format version v?


class _Unreadable(Exception):
    """A record of a format version this node cannot decode (M24)."""


# -- framing ------------------------------------------------------------------------------------------
def _frame(payload: dict[str, Any], checksums: bool) -> bytes:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    crc = zlib.crc32(body) if checksums else 0
    return len(body).to_bytes(4, "big") + crc.to_bytes(4, "big") + body


def _records(data: bytes, checksums: bool) -> Iterator[tuple[int, Any]]:
    """(offset, payload) for each intact record; then (offset, "torn" | "corrupt") if data remains."""
    offset = 0
    while offset < len(data):
        header = data[offset:offset + HEADER_BYTES]
        length = int.from_bytes(header[:4], "big")
        body = data[offset + HEADER_BYTES:offset + HEADER_BYTES + length]
        if len(header) < HEADER_BYTES or len(body) < length:
            yield offset, "torn"
            return
        if length > MAX_RECORD_BYTES or (checksums and zlib.crc32(body) != int.from_bytes(header[4:], "big")):
            yield offset, "corrupt"
            return
        try:
            payload = json.loads(body)
        except ValueError:
            yield offset, "corrupt"
            return
        if not isinstance(payload, dict):
            yield offset, "corrupt"
            return
        yield offset, payload
        offset += HEADER_BYTES + length


# -- log entries -------------------------------------------------------------------------------------
def _thaw(value: Any) -> Any:
    """JSON lists back to the tuples they were (items are stored as sorted pairs)."""
    if isinstance(value, list):
        return tuple(_thaw(element) for element in value)
    if isinstance(value, dict):
        return {key: _thaw(element) for key, element in value.items()}
    return value


def _operation_json(operation: ItemOperation) -> dict[str, Any]:
    condition = operation.condition
    return {"kind": operation.kind, "key": operation.key, "item": operation.item,
            "set": operation.set_attributes, "add": operation.add_attributes,
            "condition": None if condition is None else {
                "kind": condition.kind, "attribute": condition.attribute, "value": condition.value},
            "consistent": operation.consistent}


def _operation(data: dict[str, Any]) -> ItemOperation:
    condition = data["condition"]
    return ItemOperation(
        kind=str(data["kind"]), key=str(data["key"]), item=_thaw(data["item"]),
        set_attributes=_thaw(data["set"]), add_attributes=_thaw(data["add"]),
        condition=None if condition is None else Condition(
            str(condition["kind"]), condition["attribute"], _thaw(condition["value"])),
        consistent=bool(data["consistent"]))


def encode_entry(entry: LogEntry, checksums: bool = True) -> bytes:
    """One WAL record holding ``entry``, in the entry's own format (``COMPACT_FORMAT``: v2's)."""
    if entry.format_version >= COMPACT_FORMAT:
        return _frame(_compact_payload(entry), checksums)
    operation = None if entry.operation is None else _operation_json(entry.operation)
    payload = {"format": entry.format_version, "lsn": entry.lsn, "ballot": entry.ballot,
               "operation": operation, "request_id": entry.request_id,
               "router": entry.router, "checksum": entry.checksum}
    if entry.config is not None:  # a change of the replication group (M9); absent otherwise
        payload["config"] = entry.config.to_json()
    return _frame(payload, checksums)


def _entry(payload: dict[str, Any], readable: Readable) -> LogEntry:
    version = payload.get("format")
    if not isinstance(version, int) or not readable(version):
        raise _Unreadable(version)
    if version >= COMPACT_FORMAT:
        return _compact_entry(payload, version)
    operation = payload["operation"]
    round_, leader = payload["ballot"]
    config = payload.get("config")
    return LogEntry(lsn=int(payload["lsn"]), ballot=(int(round_), str(leader)),
                    operation=None if operation is None else _operation(operation),
                    request_id=int(payload["request_id"]), router=str(payload["router"]),
                    format_version=version, checksum=int(payload["checksum"]),
                    config=None if config is None else GroupConfig.from_json(config))


# Format 2 (M24): the record layout the ``v2`` version introduced (see ``versions.py``). The payload
# is ``{"format": 2, "entry": [lsn, round, leader, request id, router, checksum, operation, config]}``:
# one positional list instead of named fields. A node whose version reads only format 1 finds a
# format it cannot decode and stops there (never guessing at the fields); v2 reads both.
COMPACT_FORMAT = 2


def _compact_payload(entry: LogEntry) -> dict[str, Any]:
    operation = None if entry.operation is None else _operation_json(entry.operation)
    config = None if entry.config is None else entry.config.to_json()
    return {"format": entry.format_version,
            "entry": [entry.lsn, entry.ballot[0], entry.ballot[1], entry.request_id, entry.router,
                      entry.checksum, operation, config]}


def _compact_entry(payload: dict[str, Any], version: int) -> LogEntry:
    lsn, round_, leader, request_id, router, checksum, operation, config = payload["entry"]
    return LogEntry(lsn=int(lsn), ballot=(int(round_), str(leader)),
                    operation=None if operation is None else _operation(operation),
                    request_id=int(request_id), router=str(router), format_version=version,
                    checksum=int(checksum),
                    config=None if config is None else GroupConfig.from_json(config))


def encode_records(entries: tuple[LogEntry, ...], checksums: bool = True) -> bytes:
    """Entries as consecutive WAL records (v2's ``CompactAppend`` ships its entries this way)."""
    return b"".join(encode_entry(entry, checksums) for entry in entries)


def decode_records(data: bytes, readable: Readable,
                   checksums: bool = True) -> tuple[LogEntry, ...] | str:
    """The entries of ``encode_records``, or what is wrong: "torn", "corrupt" or "format"."""
    entries: list[LogEntry] = []
    for _, payload in _records(data, checksums):
        if isinstance(payload, str):
            return payload
        try:
            entries.append(_entry(payload, readable))
        except _Unreadable:
            return "format"
        except (KeyError, TypeError, ValueError):
            return "corrupt"
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """What recovery found in a WAL file."""

    entries: tuple[LogEntry, ...]
    offsets: tuple[int, ...]  # byte offset of each entry's record
    valid_bytes: int  # length of the valid prefix; the file is cut here if it is longer
    problem: str = ""  # "" (clean) | "torn" | "corrupt" | "sequence" | "format"


def decode_wal(data: bytes, readable: Readable = lambda v: v == CURRENT_FORMAT,
               checksums: bool = True) -> DecodedLog:
    """The entries of a WAL up to the first torn, corrupt, out-of-sequence or unreadable record."""
    entries: list[LogEntry] = []
    offsets: list[int] = []
    for offset, payload in _records(data, checksums):
        if isinstance(payload, str):
            return DecodedLog(tuple(entries), tuple(offsets), offset, payload)
        try:
            entry = _entry(payload, readable)
        except _Unreadable:
            return DecodedLog(tuple(entries), tuple(offsets), offset, "format")
        except (KeyError, TypeError, ValueError):
            return DecodedLog(tuple(entries), tuple(offsets), offset, "corrupt")
        if entry.lsn != len(entries) + 1:
            return DecodedLog(tuple(entries), tuple(offsets), offset, "sequence")
        entries.append(entry)
        offsets.append(offset)
    return DecodedLog(tuple(entries), tuple(offsets), len(data))


# -- ballots -------------------------------------------------------------------------------------------
def encode_ballot(ballot: Ballot, checksums: bool = True, format_version: int = CURRENT_FORMAT) -> bytes:
    """One ballot-file record: the replica has promised ``ballot`` (and rejects lower ones)."""
    return _frame({"format": format_version, "round": ballot[0], "leader": ballot[1]}, checksums)


@dataclass(frozen=True, slots=True)
class DecodedBallot:
    ballot: Ballot  # the last promise recorded (NO_BALLOT if none)
    valid_bytes: int
    problem: str = ""


def decode_ballot_file(data: bytes, readable: Readable = lambda v: v == CURRENT_FORMAT,
                       checksums: bool = True) -> DecodedBallot:
    """The highest intact promise in a ballot file, and the length of its valid prefix."""
    ballot = NO_BALLOT
    for offset, payload in _records(data, checksums):
        if isinstance(payload, str):
            return DecodedBallot(ballot, offset, payload)
        version = payload.get("format")
        if not isinstance(version, int) or not readable(version):
            return DecodedBallot(ballot, offset, "format")
        try:
            ballot = max(ballot, (int(payload["round"]), str(payload["leader"])))
        except (KeyError, TypeError, ValueError):
            return DecodedBallot(ballot, offset, "corrupt")
    return DecodedBallot(ballot, len(data))


# -- the in-memory mirror ------------------------------------------------------------------------------
class WriteAheadLog:
    """The log in memory, kept byte-for-byte in step with the WAL file through the effects it returns.

    Invariants: ``entries[i].lsn == i + 1``; ``offsets[i]`` is where entry ``i + 1``'s record starts;
    ``durable_lsn <= last_lsn``; a durability token from an older ``generation`` is ignored.
    """

    def __init__(self, file: str, checksums: bool) -> None:
        self.file = file
        self.checksums = checksums
        self.entries: list[LogEntry] = []
        self.offsets: list[int] = []
        self.size_bytes = 0
        self.durable_lsn = 0
        self.generation = 0

    def load(self, decoded: DecodedLog) -> None:
        """Adopt what recovery read from disk: all of it is durable."""
        self.entries = list(decoded.entries)
        self.offsets = list(decoded.offsets)
        self.size_bytes = decoded.valid_bytes
        self.durable_lsn = len(self.entries)

    @property
    def last_lsn(self) -> int:
        return len(self.entries)

    @property
    def last_ballot(self) -> Ballot:
        return self.entries[-1].ballot if self.entries else NO_BALLOT

    def ballot_at(self, lsn: int) -> Ballot | None:
        """The ballot of entry ``lsn`` (NO_BALLOT for 0; None if the log is shorter)."""
        if lsn == 0:
            return NO_BALLOT
        return self.entries[lsn - 1].ballot if lsn <= len(self.entries) else None

    def entry(self, lsn: int) -> LogEntry:
        return self.entries[lsn - 1]

    def slice(self, first_lsn: int, limit: int) -> tuple[LogEntry, ...]:
        """At most ``limit`` entries from ``first_lsn`` on."""
        return tuple(self.entries[first_lsn - 1:first_lsn - 1 + limit])

    def append(self, entries: list[LogEntry]) -> Persist:
        """Add entries (whose lsns continue the log) and the effect that writes and fsyncs them."""
        data = bytearray()
        for entry in entries:
            assert entry.lsn == len(self.entries) + 1, (entry.lsn, len(self.entries))
            record = encode_entry(entry, self.checksums)
            self.entries.append(entry)
            self.offsets.append(self.size_bytes + len(data))
            data += record
        self.size_bytes += len(data)
        return Persist(self.file, bytes(data), ("wal", self.generation, self.last_lsn))

    def truncate_after(self, lsn: int) -> Truncate:
        """Keep entries up to ``lsn``; the effect that cuts the file to match."""
        length = self.offsets[lsn] if lsn < len(self.entries) else self.size_bytes
        del self.entries[lsn:]
        del self.offsets[lsn:]
        self.size_bytes = length
        self.durable_lsn = min(self.durable_lsn, lsn)
        self.generation += 1
        return Truncate(self.file, length)

    def mark_durable(self, generation: int, lsn: int) -> bool:
        """Record that the file is durable up to entry ``lsn``. False if the report is stale."""
        if generation != self.generation:
            return False
        self.durable_lsn = max(self.durable_lsn, min(lsn, self.last_lsn))
        return True
