"""The register's replica: callback style, one leader (the primary) and two followers (backups).

Rules (the whole protocol):
1. The primary is fixed by configuration. It orders writes by giving each a version number.
2. A write is appended to the primary's write-ahead log and fsynced; then it is sent to every backup,
   which appends it to its own log, fsyncs, and acknowledges. The client gets its acknowledgement once a
   quorum (a majority, the primary included) has persisted the write.
3. Reads are served by the primary from its state, which always includes every acknowledged write.
4. On start, a replica recovers its state from its log; a torn or corrupt tail is cut off.

The planted bug ``ack_before_fsync`` breaks rule 2: the primary acknowledges as soon as the write is in
its page cache. A crash of the primary then loses acknowledged writes, which the client's check sees.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from harness import DiskFullError, NodeContext

WAL_PATH = "register.wal"
_HEADER_BYTES = 8


# -- messages ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Write:
    request_id: int
    value: int


@dataclass(frozen=True, slots=True)
class Read:
    request_id: int


@dataclass(frozen=True, slots=True)
class Replicate:
    version: int
    value: int


@dataclass(frozen=True, slots=True)
class Persisted:
    version: int


@dataclass(frozen=True, slots=True)
class Reply:
    request_id: int
    ok: bool
    version: int = 0
    value: int | None = None
    error: str = ""


# -- the write-ahead log ----------------------------------------------------------------------------
def encode_record(version: int, value: int) -> bytes:
    payload = json.dumps({"version": version, "value": value}).encode()
    header = len(payload).to_bytes(4, "big") + zlib.crc32(payload).to_bytes(4, "big")
    return header + payload


def decode_log(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """The records of a log, and the length of its valid prefix (a torn or corrupt tail is ignored)."""
    records, offset = [], 0
    while offset + _HEADER_BYTES <= len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        checksum = int.from_bytes(data[offset + 4:offset + 8], "big")
        payload = data[offset + _HEADER_BYTES:offset + _HEADER_BYTES + length]
        if len(payload) < length or zlib.crc32(payload) != checksum:
            break
        try:
            record = json.loads(payload)
        except ValueError:
            break
        records.append((record["version"], record["value"]))
        offset += _HEADER_BYTES + length
    return records, offset


# -- the replica ----------------------------------------------------------------------------------
class Replica:
    """One replica of the register. A fresh instance is created at every start of its node."""

    def __init__(self, ctx: NodeContext, primary: str, backups: list[str],
                 ack_before_fsync: bool) -> None:
        self.ctx = ctx
        self.is_primary = ctx.name == primary
        self.backups = backups
        self.quorum = (len(backups) + 1) // 2 + 1
        self.ack_before_fsync = ack_before_fsync
        self.version = 0
        self.value: int | None = None
        self.persisted_by: dict[int, set[str]] = {}  # version → replicas that fsynced it
        self.waiting_client: dict[int, tuple[str, int]] = {}  # version → (client, request id)

    def on_start(self) -> None:
        data = self.ctx.disk.read(WAL_PATH) if self.ctx.disk.exists(WAL_PATH) else b""
        records, valid_bytes = decode_log(data)
        if valid_bytes < len(data):
            self.ctx.log("wal-tail-cut", (len(data) - valid_bytes,))
            self.ctx.disk.truncate(WAL_PATH, valid_bytes)
        if records:
            self.version, self.value = records[-1]
        self.ctx.log("recovered", (self.version,))

    def on_message(self, source: str, message: Any) -> None:
        if isinstance(message, Write):
            self._on_write(source, message)
        elif isinstance(message, Read):
            self._on_read(source, message)
        elif isinstance(message, Replicate):
            self._on_replicate(source, message)
        elif isinstance(message, Persisted):
            self._count_persisted(message.version, source)

    # -- primary --------------------------------------------------------------------------------
    def _on_write(self, client: str, write: Write) -> None:
        if not self.is_primary:
            self.ctx.send(client, Reply(write.request_id, False, error="not the primary"))
            return
        version = self.version + 1
        if not self._append(version, write.value):
            self.ctx.send(client, Reply(write.request_id, False, error="disk full"))
            return
        self.version, self.value = version, write.value
        if self.ack_before_fsync:  # the planted bug: acknowledged before anything is durable
            self.ctx.send(client, Reply(write.request_id, True, version, write.value))
        else:
            self.waiting_client[version] = (client, write.request_id)
        self.ctx.disk.fsync(WAL_PATH).add_done_callback(
            lambda done: self._count_persisted(version, self.ctx.name) if done.exception() is None else None)
        for backup in self.backups:
            self.ctx.send(backup, Replicate(version, write.value))

    def _count_persisted(self, version: int, replica: str) -> None:
        persisted = self.persisted_by.setdefault(version, set())
        persisted.add(replica)
        if len(persisted) >= self.quorum and version in self.waiting_client:
            client, request_id = self.waiting_client.pop(version)
            self.ctx.send(client, Reply(request_id, True, version, self.value_at(version)))
            self.persisted_by.pop(version, None)

    def value_at(self, version: int) -> int | None:
        return self.value if version == self.version else None

    def _on_read(self, client: str, read: Read) -> None:
        if not self.is_primary:
            self.ctx.send(client, Reply(read.request_id, False, error="not the primary"))
            return
        self.ctx.send(client, Reply(read.request_id, True, self.version, self.value))

    # -- backup ---------------------------------------------------------------------------------
    def _on_replicate(self, primary: str, replicate: Replicate) -> None:
        if not self._append(replicate.version, replicate.value):
            return
        self.version, self.value = replicate.version, replicate.value
        self.ctx.disk.fsync(WAL_PATH).add_done_callback(
            lambda done: self.ctx.send(primary, Persisted(replicate.version))
            if done.exception() is None else None)

    def _append(self, version: int, value: int) -> bool:
        try:
            self.ctx.disk.append(WAL_PATH, encode_record(version, value))
        except DiskFullError:
            self.ctx.log("disk-full", (version,))
            return False
        return True
