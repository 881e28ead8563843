"""Every message of the reference system, and the checksum envelope they all share (M14, M24).

Each message is a frozen dataclass with ``format_version`` (M24: a node that cannot decode a format
rejects and counts it) and ``checksum`` (M14: computed by the sender with ``seal``, checked by the
receiver with ``verify``; a corrupt message is rejected, counted, and never applied). The network can
corrupt a message in flight through its ``corrupted(rng)`` method, which changes the payload but not
the checksum, as a flipped bit on the wire would.

Message type names are what gray-link faults filter on (``message_type: Heartbeat``).

Flows:
- client → router: ``ClientRequest``; router → client: ``ClientReply``.
- router → replica: ``ReplicaRequest``; replica → router: ``ReplicaReply`` (may say ``not_leader`` with a
  hint, or ``look_up_again``: M13).
- leader → followers: ``Heartbeat`` (no entries) and ``Append`` (entries); followers → leader:
  ``AppendReply`` once persisted.
- would-be candidate ↔ peers: ``LeaderCheck`` / ``LeaderCheckReply`` (M10).
- candidate ↔ voters: ``RequestVote`` / ``Vote`` (M3); old leader → successor: ``TimeoutNow`` (M11).
- leader → routers and metadata: ``LeaderChanged`` (M12).
- router ↔ metadata: ``MapRequest`` / ``MapReply`` (M19, M21); storage node (membership agent) ↔
  metadata: the same, always for the whole map (S20).
"""

from __future__ import annotations

import dataclasses
import operator
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from systems.dynamo.group import GroupConfig
from systems.dynamo.items import ItemOperation

__all__ = [
    "CURRENT_FORMAT", "LogEntry", "PartitionEntry", "ClientRequest", "ClientReply", "ReplicaRequest",
    "ReplicaReply", "Heartbeat", "Append", "AppendReply", "LeaderCheck", "LeaderCheckReply",
    "RequestVote", "Vote", "TimeoutNow", "LeaderChanged", "MapRequest", "MapReply", "seal", "verify",
    "checksum_of", "corrupt",
]

CURRENT_FORMAT = 1
M = TypeVar("M")


class _Random(Protocol):
    def randrange(self, stop: int) -> int: ...


# -- payloads ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LogEntry:
    """One replicated write (or a no-op, ``operation is None``, that a new leader commits first, or
    a change of the replication group, ``config`` set: see ``group.py``)."""

    lsn: int  # log sequence number, from 1, dense
    ballot: tuple[int, str]  # (round, leader name) of the leader that created the entry
    operation: ItemOperation | None
    request_id: int = 0  # the router's request this entry answers (0: none)
    router: str = ""  # where to send the answer once committed
    format_version: int = CURRENT_FORMAT
    checksum: int = 0
    config: GroupConfig | None = None  # the group's next configuration (M9); operation is None


@dataclass(frozen=True, slots=True)
class PartitionEntry:
    """The partition map's entry for one partition (M1, M2)."""

    partition: int
    start: int  # inclusive start of the hashed-key range
    end: int  # exclusive end of the hashed-key range
    replicas: tuple[str, ...]  # three storage nodes in three AZs
    leader: str | None = None  # last known leader (a hint; storage nodes are authoritative)
    ballot: tuple[int, str] = (0, "")


# -- client and routing ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClientRequest:
    request_id: int
    operation: ItemOperation
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class ClientReply:
    request_id: int
    ok: bool
    item: tuple[tuple[str, Any], ...] | None = None
    error: str = ""  # condition_failed | unavailable | timeout | …
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaRequest:
    partition: int
    request_id: int
    operation: ItemOperation
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaReply:
    partition: int
    request_id: int
    ok: bool
    item: tuple[tuple[str, Any], ...] | None = None
    error: str = ""  # not_leader | look_up_again | condition_failed | no_lease | out_of_service | …
    leader_hint: str | None = None
    ballot: tuple[int, str] = (0, "")
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


# -- replication ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Heartbeat:
    partition: int
    ballot: tuple[int, str]
    commit_lsn: int
    last_lsn: int  # the leader's last log position (followers behind it ask for catch-up)
    round: int  # heartbeat round, echoed in AppendReply: a majority of echoes renews the lease
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class Append:
    partition: int
    ballot: tuple[int, str]
    prev_lsn: int
    prev_ballot: tuple[int, str]
    entries: tuple[LogEntry, ...]
    commit_lsn: int
    round: int = 0
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class AppendReply:
    partition: int
    ballot: tuple[int, str]
    follower: str
    success: bool
    match_lsn: int  # on success: the follower's persisted log ends here; else a hint where to resume
    round: int = 0
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


# -- election -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LeaderCheck:
    partition: int
    candidate: str
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class LeaderCheckReply:
    partition: int
    responder: str
    healthy: bool  # the responder heard the leader recently (peer_healthy_within_ms)
    leader: str | None
    ballot: tuple[int, str]
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class RequestVote:
    partition: int
    ballot: tuple[int, str]
    candidate: str
    last_lsn: int
    last_ballot: tuple[int, str]
    handoff: bool = False  # the old leader released its lease: no need to wait it out (M11)
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class Vote:
    partition: int
    ballot: tuple[int, str]
    voter: str
    granted: bool
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    partition: int
    ballot: tuple[int, str]  # the relinquishing leader's ballot
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class LeaderChanged:
    partition: int
    leader: str
    ballot: tuple[int, str]
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


# -- metadata -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MapRequest:
    request_id: int
    partition: int | None  # None: the whole map (legacy cold fetch); else one partition
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class MapReply:
    request_id: int
    ok: bool  # False: the metadata service is overloaded (its queue was full)
    entries: tuple[PartitionEntry, ...] = ()
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


# -- the checksum envelope ------------------------------------------------------------------------------
def checksum_of(message: Any) -> int:
    """CRC-32 of the message's content (every field but ``checksum``), canonically rendered."""
    kind = type(message)
    content = _CONTENT.get(kind)
    if content is None:
        content = _CONTENT[kind] = _content_getter(kind)
    return zlib.crc32(repr((kind.__name__, content(message))).encode())


def _content_getter(kind: type) -> Callable[[Any], tuple[Any, ...]]:
    names = [f.name for f in dataclasses.fields(kind) if f.name != "checksum"]
    getter = operator.attrgetter(*names)
    return (lambda message: (getter(message),)) if len(names) == 1 else getter


_CONTENT: dict[type, Callable[[Any], tuple[Any, ...]]] = {}  # per message class, built on first use


def seal(message: M) -> M:
    """The message with its checksum filled in (the sender's side of M14).

    Sealed in place: the checksum is a function of the content, so writing it into a message that
    others may also hold changes nothing they could observe (and saves a copy per message sent).
    """
    object.__setattr__(message, "checksum", checksum_of(message))
    return message


def verify(message: Any) -> bool:
    """True if the message's content matches its checksum (the receiver's side of M14)."""
    return getattr(message, "checksum", None) == checksum_of(message)


def corrupt(message: M, rng: _Random) -> M:
    """A copy with one payload field damaged and the checksum left as it was (a bit flip in flight).
    An optional extension that is not there (``LogEntry.config`` of an ordinary entry, absent from
    its WAL record too) has no bits to flip."""
    names = [f.name for f in dataclasses.fields(message)  # type: ignore[arg-type]
             if f.name not in ("checksum", "format_version", "partition")
             and not (f.name in _EXTENSIONS and getattr(message, f.name) is None)]
    if not names:
        return message
    name = names[rng.randrange(len(names))]
    return dataclasses.replace(message, **{name: _damage(getattr(message, name), rng)})  # type: ignore[type-var]


_EXTENSIONS = frozenset({"config"})  # optional fields, absent when None (see ``corrupt``)


def _damage(value: Any, rng: _Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value ^ (1 << rng.randrange(8))
    if isinstance(value, str):
        return (value[:-1] + chr(ord(value[-1]) ^ 1)) if value else "\x01"
    if isinstance(value, tuple) and value:
        index = rng.randrange(len(value))
        return value[:index] + (_damage(value[index], rng),) + value[index + 1:]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return corrupt(value, rng)
    return value


def _attach_corrupted() -> None:
    """Give every message class ``corrupted(rng)``, the hook the network's corruption fault calls."""
    for cls in (ClientRequest, ClientReply, ReplicaRequest, ReplicaReply, Heartbeat, Append,
                AppendReply, LeaderCheck, LeaderCheckReply, RequestVote, Vote, TimeoutNow,
                LeaderChanged, MapRequest, MapReply):
        cls.corrupted = corrupt  # type: ignore[attr-defined]


_attach_corrupted()
