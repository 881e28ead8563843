"""A replication group's configuration: who votes, who is a log replica, who is catching up (M8, M9).

A partition's group starts as the three storage replicas of the partition map (epoch 0) and changes
only through the replicated log: a ``LogEntry`` whose ``config`` is set carries the group's next
configuration (``healing.py`` decides when, ``replica.py`` applies it). The rules that keep two
configurations from ever committing conflicting writes:

1. A configuration names its *voters*, the storage replicas (full copies, WAL and items; they serve
   reads and may lead) and the log replicas (M8: the WAL only; they accept, persist and vote, count
   toward the write quorum and toward durability, but never serve reads and never stand for
   leadership), and its *learners*: replicas being built, which receive the log but neither vote nor
   count. The quorum is a majority of the voters.
2. A replica uses the latest configuration in its log, committed or not (it takes effect when it is
   appended, and is undone if a conflicting leader truncates it); with none, the partition map's.
3. Consecutive configurations differ by at most one voter (``single_step``): one voter added, one
   removed, or a voter's kind changed. Any majority of one and any majority of the next then share a
   replica, so a write committed under one is seen by every election held under the other.
4. A leader proposes a configuration only after an entry of its own ballot has committed (its no-op)
   and while no earlier configuration in its log is uncommitted: at most one change is in flight.
5. Epochs increase along the log by one per change; a committed configuration's epoch orders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GroupConfig", "single_step"]

STORAGE, LOG, LEARNER = "storage", "log", "learner"


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """One configuration of a partition's replication group (see the rules above)."""

    epoch: int
    storage: tuple[str, ...]  # storage-replica voters
    log: tuple[str, ...] = ()  # log-replica voters (M9)
    learners: tuple[str, ...] = ()  # being built: receive the log, do not vote or count

    def __post_init__(self) -> None:
        everyone = self.storage + self.log + self.learners
        if len(set(everyone)) != len(everyone):
            raise ValueError(f"a replica appears twice in {self!r}")

    @property
    def voters(self) -> tuple[str, ...]:
        return self.storage + self.log

    @property
    def members(self) -> tuple[str, ...]:
        return self.storage + self.log + self.learners

    @property
    def quorum(self) -> int:
        """A majority of the voters (2 of 3, 3 of 4)."""
        return len(self.voters) // 2 + 1

    def kind_of(self, name: str) -> str | None:
        """"storage", "log", "learner", or None for a replica outside the group."""
        if name in self.storage:
            return STORAGE
        if name in self.log:
            return LOG
        if name in self.learners:
            return LEARNER
        return None

    def next(self, storage: tuple[str, ...] | None = None, log: tuple[str, ...] | None = None,
             learners: tuple[str, ...] | None = None) -> GroupConfig:
        """The following configuration (epoch + 1), with the given lists replaced."""
        return GroupConfig(self.epoch + 1, self.storage if storage is None else storage,
                           self.log if log is None else log,
                           self.learners if learners is None else learners)

    def describe(self) -> str:
        parts = [f"storage {','.join(self.storage) or '-'}"]
        if self.log:
            parts.append(f"log {','.join(self.log)}")
        if self.learners:
            parts.append(f"learners {','.join(self.learners)}")
        return f"epoch {self.epoch}: " + "; ".join(parts)

    # -- the WAL's JSON form ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "storage": list(self.storage), "log": list(self.log),
                "learners": list(self.learners)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GroupConfig:
        return cls(int(data["epoch"]), tuple(str(name) for name in data["storage"]),
                   tuple(str(name) for name in data["log"]),
                   tuple(str(name) for name in data["learners"]))


def single_step(old: GroupConfig, new: GroupConfig) -> bool:
    """Rule 3: the voter sets differ by at most one replica, and the epoch grows by one."""
    return (new.epoch == old.epoch + 1
            and len(set(old.voters) ^ set(new.voters)) <= 1)
