"""The metadata service: the authoritative partition map, with finite capacity (M19, M21; S17, S20).

Rules:
1. The service holds the partition map: ranges and replicas from placement, leaders from pushes.
2. A ``LeaderChanged`` push (M12) updates a partition's leader only if its ballot is newer than the
   one held; older or equal ballots are ignored (pushes can arrive late and out of order).
3. A ``MapRequest`` asks for the whole map (``partition is None``, the legacy cold fetch) or for one
   partition (the constant-work lookup). An unknown partition is answered with no entries.
4. Capacity is finite: requests wait in one FIFO queue of at most ``metadata_queue_capacity``
   requests (the one in service included), served one at a time. A request that finds the queue full
   is answered at once with ``MapReply(ok=False)``: overloaded.
5. Serving takes ``metadata_service_time_ms`` plus ``metadata_service_time_per_entry_ms`` per entry
   in the reply (a whole-map reply costs more). The reply is built when service ends, so it carries
   the map as it is then. One timer, ``metadata/serve``, marks the end of the current service.
6. A queued request is always served, even if its sender gave up on it long ago: the service cannot
   know. That work is wasted, and under retries it is what keeps an overload going (S20).

Statistics count requests, served and rejected requests, the queue depth and its peak, and requests
and rejections per second of the local clock (``requests_per_second()``, ``rejected_per_second()``).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from typing import Any

from systems.dynamo.config import DynamoConfig
from systems.dynamo.effects import Effect, Send, SetTimer
from systems.dynamo.messages import LeaderChanged, MapReply, MapRequest, PartitionEntry
from systems.dynamo.rates import PerSecondCounter

__all__ = ["MetadataService", "SERVE_TIMER"]

SERVE_TIMER = "metadata/serve"


class MetadataService:
    """The authoritative partition map behind a bounded queue."""

    def __init__(self, name: str, partition_map: Sequence[PartitionEntry],
                 config: DynamoConfig) -> None:
        self.name = name
        self._entries = {entry.partition: entry for entry in partition_map}
        self._capacity = config.timing.metadata_queue_capacity
        self._base_ns = _ns(config.timing.metadata_service_time_ms)
        self._per_entry_ns = _ns(config.timing.metadata_service_time_per_entry_ms)
        self._queue: deque[tuple[str, MapRequest]] = deque()  # the head is in service
        self._requests = PerSecondCounter()
        self._rejected = PerSecondCounter()
        self._served = 0
        self._peak_depth = 0
        self._leader_updates = 0
        self._stale_pushes = 0

    # -- inputs ---------------------------------------------------------------------------------
    def on_message(self, now_ns: int, source: str, message: Any) -> list[Effect]:
        if isinstance(message, MapRequest):
            return self._on_map_request(now_ns, source, message)
        if isinstance(message, LeaderChanged):
            self._on_leader_changed(message)
        return []

    def on_timer(self, now_ns: int, name: str) -> list[Effect]:
        if name != SERVE_TIMER or not self._queue:
            return []
        source, request = self._queue.popleft()
        self._served += 1
        effects: list[Effect] = [Send(source, MapReply(request.request_id, True,
                                                       self._answer(request)))]
        return effects + self._start_service()

    # -- the map --------------------------------------------------------------------------------
    @property
    def partition_map(self) -> tuple[PartitionEntry, ...]:
        """The current map, sorted by range start."""
        return tuple(sorted(self._entries.values(), key=lambda entry: entry.start))

    def _answer(self, request: MapRequest) -> tuple[PartitionEntry, ...]:
        if request.partition is None:
            return self.partition_map
        entry = self._entries.get(request.partition)
        return () if entry is None else (entry,)

    def _on_leader_changed(self, push: LeaderChanged) -> None:
        entry = self._entries.get(push.partition)
        if entry is None or push.ballot <= entry.ballot:
            self._stale_pushes += 1
            return
        self._entries[push.partition] = dataclasses.replace(entry, leader=push.leader,
                                                            ballot=push.ballot)
        self._leader_updates += 1

    # -- the queue ------------------------------------------------------------------------------
    def _on_map_request(self, now_ns: int, source: str, request: MapRequest) -> list[Effect]:
        self._requests.add(now_ns)
        if len(self._queue) >= self._capacity:
            self._rejected.add(now_ns)
            return [Send(source, MapReply(request.request_id, False))]
        self._queue.append((source, request))
        self._peak_depth = max(self._peak_depth, len(self._queue))
        return self._start_service() if len(self._queue) == 1 else []

    def _start_service(self) -> list[Effect]:
        """Arm the service timer for the request at the head of the queue, if any."""
        if not self._queue:
            return []
        _, request = self._queue[0]
        entries = len(self._entries) if request.partition is None else 1
        return [SetTimer(SERVE_TIMER, self._base_ns + self._per_entry_ns * entries)]

    # -- visibility -----------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        return {
            "requests": self._requests.total,
            "served": self._served,
            "rejected": self._rejected.total,
            "queue_depth": len(self._queue),
            "peak_queue_depth": self._peak_depth,
            "requests_peak_per_s": self._requests.peak(),
            "requests_mean_per_s": self._requests.mean(),
            "rejected_peak_per_s": self._rejected.peak(),
            "leader_updates": self._leader_updates,
            "stale_pushes": self._stale_pushes,
        }

    def requests_per_second(self) -> dict[int, int]:
        """Requests received per second of the local clock (second → count)."""
        return self._requests.buckets()

    def rejected_per_second(self) -> dict[int, int]:
        """Requests rejected as overload per second of the local clock."""
        return self._rejected.buckets()


def _ns(milliseconds: float) -> int:
    return round(milliseconds * 1_000_000)
