"""The reference system's versions (M24): what each build reads and writes, and what v2 added.

Three builds, declared as ``harness.deploy.Version`` data (``DynamoSystem.VERSIONS``):

- ``v1``: the original. It reads and writes format 1 only.
- ``v2``: reads formats 1 and 2. With its emission flag on (M24, ``write_new_format``; switched by a
  deployment's phase W), it writes format 2: WAL records in the compact layout (``wal.py``,
  ``COMPACT_FORMAT``), heartbeats and append replies stamped format 2, and entries replicated with a
  new message type, ``CompactAppend``, that ships them as format-2 WAL records. Flag off, it speaks
  and writes format 1 exactly as v1 does.
- ``v2-bad``: v2 with a defect that shows only under load (S16): its router, once it has received
  more than ``deployment.bad_build_threshold_per_s`` client requests in the last second of its clock,
  rejects each new one with probability ``bad_build_reject_probability`` (``LoadDefect``). A light
  functional test (M27) passes it; a canary under production load does not.

A node never misreads: a message of a format above its version's (``EffectRunner.accept``), an entry
inside one (``Replica._well_formed``) or a WAL record (recovery) is rejected and counted as a decode
failure. Recovery stops at the first unreadable record and cuts the log there: what v2 wrote stays
on disk after a rollback to v1, and v1 cannot use it (S15).

``Installed`` is what a node runs (version and flag). ``VersionRecord`` keeps, in true time, what each
node ran since each boot or flag switch, for the metrics and the report's version bands.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness import Version
from systems.dynamo.effects import Send
from systems.dynamo.messages import CURRENT_FORMAT, Append, ClientReply, ClientRequest, corrupt
from systems.dynamo.wal import COMPACT_FORMAT, decode_records, encode_records

if TYPE_CHECKING:
    from harness import World

__all__ = [
    "DEFECTIVE",
    "VERSIONS",
    "CompactAppend",
    "Installed",
    "LoadDefect",
    "VersionRecord",
    "pack_append",
    "unpack_append",
]

VERSIONS: dict[str, Version] = {
    "v1": Version(1, 1, "the original: reads and writes format 1"),
    "v2": Version(2, COMPACT_FORMAT, "reads formats 1-2; with its emission flag on, writes WAL "
                                     "records in format 2 and replicates with CompactAppend"),
    "v2-bad": Version(2, COMPACT_FORMAT, "v2 with a defect under load: its router rejects a share "
                                         "of requests above a request rate"),
}
DEFECTIVE = frozenset({"v2-bad"})


@dataclass(frozen=True, slots=True)
class Installed:
    """What a node runs (or will run from its next start): a version and its emission flag."""

    version: str
    writes: bool = False

    @property
    def reads_format(self) -> int:
        return VERSIONS[self.version].reads_format

    @property
    def emit_format(self) -> int:
        return VERSIONS[self.version].writes_format if self.writes else CURRENT_FORMAT

    @property
    def defective(self) -> bool:
        return self.version in DEFECTIVE

    def label(self) -> str:
        """``v2 (writes format 2)``, ``v2 (reads format 2)``, ``v1``."""
        version = VERSIONS[self.version]
        if version.writes_format == CURRENT_FORMAT:
            return self.version
        verb = "writes" if self.writes else "reads"
        return f"{self.version} ({verb} format {version.writes_format})"


class VersionRecord:
    """What each node ran over true time: a change at every boot and every flag switch."""

    def __init__(self) -> None:
        self.changes: dict[str, list[tuple[int, Installed]]] = defaultdict(list)

    def ran(self, node: str, now_ns: int, installed: Installed) -> None:
        self.changes[node].append((now_ns, installed))

    def intervals(self, world: World) -> dict[str, list[tuple[int, int, Installed]]]:
        """Per node, [start, end) of each version it ran, cut where the node went down."""
        end_of_run = world.kernel.now_ns
        result: dict[str, list[tuple[int, int, Installed]]] = {}
        for node, changes in sorted(self.changes.items()):
            downs = sorted(down for down, _ in world.node(node).outages if down is not None)
            spans = []
            for index, (start, installed) in enumerate(changes):
                end = changes[index + 1][0] if index + 1 < len(changes) else end_of_run
                end = min([end] + [down for down in downs if down >= start])
                if end > start:
                    spans.append((start, end, installed))
            result[node] = spans
        return result

    def node_seconds(self, world: World) -> dict[str, float]:
        """Node-seconds run on each version (any flag)."""
        totals: dict[str, float] = defaultdict(float)
        for spans in self.intervals(world).values():
            for start, end, installed in spans:
                totals[installed.version] += (end - start) / 1e9
        return {version: round(seconds, 3) for version, seconds in sorted(totals.items())}


# -- what v2 added to the wire ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CompactAppend:
    """v2's replication message (format 2): an ``Append`` whose entries travel as WAL records."""

    partition: int
    ballot: tuple[int, str]
    prev_lsn: int
    prev_ballot: tuple[int, str]
    records: bytes  # the entries, as ``wal.encode_records`` writes them
    commit_lsn: int
    round: int = 0
    format_version: int = COMPACT_FORMAT
    checksum: int = 0

    def corrupted(self, rng: Any) -> CompactAppend:
        """A bit flipped in flight (the network's corruption fault): in the records, or elsewhere."""
        if self.records and rng.randrange(2) == 0:
            index = rng.randrange(len(self.records))
            flipped = self.records[index] ^ (1 << rng.randrange(8))
            records = self.records[:index] + bytes([flipped]) + self.records[index + 1:]
            return dataclasses.replace(self, records=records)
        return corrupt(self, rng)


def pack_append(append: Append, checksums: bool) -> CompactAppend:
    return CompactAppend(append.partition, append.ballot, append.prev_lsn, append.prev_ballot,
                         encode_records(append.entries, checksums), append.commit_lsn,
                         append.round, max(append.format_version, COMPACT_FORMAT))


def unpack_append(message: CompactAppend, readable: Any, checksums: bool) -> Append | str:
    """The ``Append`` a ``CompactAppend`` carries, or why it cannot be read."""
    if not readable(message.format_version):
        return "format"
    entries = decode_records(message.records, readable, checksums)
    if isinstance(entries, str):
        return entries
    return Append(message.partition, message.ballot, message.prev_lsn, message.prev_ballot,
                  entries, message.commit_lsn, message.round, message.format_version)


# -- v2-bad's defect ------------------------------------------------------------------------------------
class LoadDefect:
    """A router component with v2-bad's defect (see the module docstring); otherwise the router."""

    def __init__(self, router: Any, threshold_per_s: float, reject_probability: float,
                 rng: Any) -> None:
        self.router = router
        self.threshold_per_s = threshold_per_s
        self.reject_probability = reject_probability
        self.rng = rng
        self.recent: deque[int] = deque()  # local arrival times of client requests, last second
        self.rejected = 0

    def start(self, now_ns: int) -> list[Any]:
        start = getattr(self.router, "start", None)
        return start(now_ns) if start is not None else []

    def on_message(self, now_ns: int, source: str, message: Any) -> list[Any]:
        if type(message) is ClientRequest:
            self.recent.append(now_ns)
            while self.recent and self.recent[0] <= now_ns - 1_000_000_000:
                self.recent.popleft()
            if len(self.recent) > self.threshold_per_s and self.rng.chance(self.reject_probability):
                self.rejected += 1
                return [Send(source, ClientReply(message.request_id, False,
                                                 error="internal_error"))]
        return self.router.on_message(now_ns, source, message)

    def on_timer(self, now_ns: int, name: str) -> list[Any]:
        return self.router.on_timer(now_ns, name)
