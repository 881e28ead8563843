"""The request router: a partition-map cache, routing, misroute correction and retries (M12, M13,
M19, M21; S17, S18, S20).

Rules:
1. A client's ``ClientRequest`` is tracked under a router-local request id (client request ids are
   only unique per client); replicas answer ``ReplicaReply(request_id=<router id>)``. Every attempt
   of one request reuses its router id, so replicas can recognise a retried write. A duplicate of a
   request still in flight is ignored; replies for finished requests are counted and ignored.
2. The key's partition comes from the hash ranges (``config.partitions`` equal ranges, replaced by
   the ranges of any whole map the metadata service sends). Its replicas and leader come from the
   cache.
3. Cache modes (``mitigations.router_cache_mode``), counted once per client request on arrival:
   - ``legacy``: a miss fetches the WHOLE map (``MapRequest(partition=None)``); a hit costs nothing.
     Misses are not coalesced: during a cold start every request is a metadata request (S17).
   - ``constant_work``: a miss fetches that partition; a hit is served from the cache AND sends a
     background refresh of that partition, so metadata load equals the request rate whatever the
     hit ratio.
   A cached entry older than ``router_cache_ttl_s`` is a miss. ``flush_cache()`` empties the cache.
4. Writes and strongly consistent reads go to the cached leader, or to a random replica if the
   leader is unknown. Eventually consistent reads go to a replica in the router's own AZ if ``az``
   and ``az_of`` were given, else to a random replica.
5. Answers: ``ok`` or ``condition_failed`` (from any attempt) finish the request with a
   ``ClientReply``. ``not_leader`` with a hint updates the cache (if the hint's ballot is not older)
   and retries at once at the hinted leader; without a hint it forgets that leader and backs off.
   ``look_up_again`` invalidates the entry, refetches it and retries. Every other error
   (``no_lease``, ``unavailable``, ``corrupt``…) backs off. At most ``MAX_IMMEDIATE_RETRIES``
   retries in a row skip the backoff, so two nodes hinting at each other cannot spin. Refusals from
   an earlier attempt's target are ignored. (``out_of_service``: a storage node without a membership
   lease, S20, is one of those other errors.)
6. Backoff is exponential with full jitter: the n-th wait is uniform in
   [0, min(router_backoff_ms_max, router_backoff_ms_min * 2**(n-1))].
7. An attempt at a replica that gets no answer within ``router_attempt_timeout_ms`` is retried at
   once at another replica (that replica is avoided for this request). A metadata request unanswered
   within ``metadata_timeout_ms``, or answered ``ok=False`` (overload), backs off and asks again.
8. A request not finished within ``router_request_timeout_ms`` is answered
   ``ClientReply(ok=False, error="unavailable")`` (for a write the outcome is unknown).
9. ``LeaderChanged`` pushes (M12, sent only when ``membership_push`` is on) update a cached entry if
   their ballot is newer. A metadata reply never replaces a cached leader with an older ballot.
10. Planted bug ``router_never_invalidates``: pushes, hints and ``look_up_again`` are ignored (the
    request backs off and goes to the cached leader again until it times out), entries never
    expire, a cached entry is never replaced by a metadata reply, and writes and strongly
    consistent reads always go to the cached leader.

Timers: ``router/attempt/<id>`` (the current attempt, metadata wait or backoff) and
``router/deadline/<id>`` per request. Messages are returned unsealed; the node adapter seals them.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from systems.dynamo.config import DynamoConfig
from systems.dynamo.effects import CancelTimer, Effect, Note, Send, SetTimer
from systems.dynamo.items import ItemOperation
from systems.dynamo.messages import (ClientReply, ClientRequest, LeaderChanged, MapReply,
                                     MapRequest, PartitionEntry, ReplicaReply, ReplicaRequest)
from systems.dynamo.partitioning import coverage_violations, hash_key, partition_ranges
from systems.dynamo.rates import PerSecondCounter

__all__ = ["Router", "RandomSource", "MAX_IMMEDIATE_RETRIES"]

MAX_IMMEDIATE_RETRIES = 3
_MIN_BACKOFF_BASE_MS = 1.0  # a zero base would retry in a tight loop at one instant
_COUNTERS = ("requests", "duplicate_requests", "replies_ok", "replies_failed", "condition_failed",
             "unavailable", "misroutes", "retries", "attempt_timeouts", "backoffs", "late_replies",
             "cache_hits", "cache_misses", "metadata_requests", "metadata_rejections",
             "metadata_timeouts", "pushes_applied", "pushes_ignored")


class RandomSource(Protocol):
    def randrange(self, stop: int) -> int: ...

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True, slots=True)
class _Cached:
    entry: PartitionEntry
    fetched_ns: int  # local time of the metadata reply that brought it


@dataclass(slots=True)
class _Request:
    """One client request in flight (mutable state of the router, never sent anywhere)."""

    request_id: int  # router-local; what replicas answer to
    client: str
    client_request_id: int
    operation: ItemOperation
    partition: int
    target: str | None = None  # replica of the current attempt
    metadata_request_id: int | None = None  # the metadata request it waits for
    attempts: int = 0  # replica attempts so far
    backoffs: int = 0  # backoffs so far (the exponent of rule 6)
    immediate: int = 0  # retries without backoff since the last backoff
    avoid: set[str] = field(default_factory=set)  # replicas that timed out (membership test only)


class Router:
    """A stateless request router with a partition-map cache (sans-I/O)."""

    def __init__(self, name: str, metadata: str, config: DynamoConfig, rng: RandomSource, *,
                 az: str | None = None, az_of: Mapping[str, str] | None = None,
                 first_request_id: int = 0) -> None:
        timing = config.timing
        self.name = name
        self.metadata = metadata
        self._rng = rng
        self._az = az
        self._az_of = dict(az_of or {})
        self._mode = config.mitigations.router_cache_mode
        self._never_invalidates = config.bugs.router_never_invalidates
        self._request_timeout_ns = _ns(timing.router_request_timeout_ms)
        self._attempt_timeout_ns = _ns(timing.router_attempt_timeout_ms)
        self._metadata_timeout_ns = _ns(timing.metadata_timeout_ms)
        self._ttl_ns = _ns(timing.router_cache_ttl_s * 1000.0)
        self._backoff_base_ms = max(timing.router_backoff_ms_min, _MIN_BACKOFF_BASE_MS)
        self._backoff_cap_ms = max(timing.router_backoff_ms_max, self._backoff_base_ms)
        self._starts = [start for start, _ in partition_ranges(config.partitions)]
        self._numbers = list(range(config.partitions))
        self._cache: dict[int, _Cached] = {}
        self._pending: dict[int, _Request] = {}
        self._by_client: dict[tuple[str, int], int] = {}
        self._waiting: dict[int, int] = {}  # metadata request id → router request id
        # Replicas recognise a retried write by (router, request id): ids must never repeat, not even
        # across the router's restarts, so each incarnation starts from its own base.
        self._next_id = first_request_id
        self._metadata_sent = PerSecondCounter()
        self._counts = dict.fromkeys(_COUNTERS, 0)

    # -- inputs ---------------------------------------------------------------------------------
    def on_message(self, now_ns: int, source: str, message: Any) -> list[Effect]:
        if isinstance(message, ClientRequest):
            return self._on_client_request(now_ns, source, message)
        if isinstance(message, ReplicaReply):
            return self._on_replica_reply(now_ns, source, message)
        if isinstance(message, MapReply):
            return self._on_map_reply(now_ns, message)
        if isinstance(message, LeaderChanged):
            self._on_push(message)
        return []

    def on_timer(self, now_ns: int, name: str) -> list[Effect]:
        kind, _, number = name.rpartition("/")
        request = self._pending.get(int(number)) if number.isdigit() else None
        if request is None:
            return []
        if kind == "router/deadline":
            return self._give_up(request)
        if kind == "router/attempt":
            return self._on_attempt_timer(now_ns, request)
        return []

    def flush_cache(self) -> None:
        """Forget every cached entry (S17: a fleet of routers whose caches were flushed)."""
        self._cache.clear()

    def cached_entry(self, partition: int) -> PartitionEntry | None:
        """The cached entry of ``partition``, expired or not (for inspection and tests)."""
        cached = self._cache.get(partition)
        return None if cached is None else cached.entry

    # -- client requests ------------------------------------------------------------------------
    def _on_client_request(self, now_ns: int, client: str,
                           message: ClientRequest) -> list[Effect]:
        key = (client, message.request_id)
        if key in self._by_client:
            self._count("duplicate_requests")
            return []
        request = _Request(self._new_id(), client, message.request_id, message.operation,
                           self._partition_of(message.operation.key))
        self._pending[request.request_id] = request
        self._by_client[key] = request.request_id
        self._count("requests")
        effects: list[Effect] = [SetTimer(_deadline(request), self._request_timeout_ns)]
        entry = self._lookup(now_ns, request.partition)
        self._count("cache_hits" if entry is not None else "cache_misses")
        if entry is None:
            return effects + self._fetch(now_ns, request)
        if self._mode == "constant_work":
            effects.append(self._map_request(now_ns, self._new_id(), request.partition))
        return effects + self._attempt(request, entry)

    def _partition_of(self, key: str) -> int:
        index = bisect.bisect_right(self._starts, hash_key(key)) - 1  # floor lookup
        return self._numbers[index]

    # -- attempts -------------------------------------------------------------------------------
    def _attempt(self, request: _Request, entry: PartitionEntry,
                 target: str | None = None) -> list[Effect]:
        """Send the request to a replica (rule 4) and arm the attempt timeout (rule 7)."""
        request.target = target or self._choose(request, entry)
        request.metadata_request_id = None
        request.attempts += 1
        if request.attempts > 1:
            self._count("retries")
        message = ReplicaRequest(request.partition, request.request_id, request.operation)
        return [Send(request.target, message),
                SetTimer(_attempt(request), self._attempt_timeout_ns)]

    def _choose(self, request: _Request, entry: PartitionEntry) -> str:
        candidates = [node for node in entry.replicas if node not in request.avoid]
        candidates = candidates or list(entry.replicas)
        if _needs_leader(request.operation):
            leader = entry.leader
            if leader is not None and (self._never_invalidates or leader not in request.avoid):
                return leader
            return self._pick(candidates)
        local = [node for node in candidates
                 if self._az is not None and self._az_of.get(node) == self._az]
        return self._pick(local or candidates)

    def _pick(self, nodes: list[str]) -> str:
        return nodes[self._rng.randrange(len(nodes))]

    def _on_attempt_timer(self, now_ns: int, request: _Request) -> list[Effect]:
        if request.target is not None:  # the replica never answered: try another at once
            self._count("attempt_timeouts")
            request.avoid.add(request.target)
            request.target = None
            return self._resume(now_ns, request)
        if request.metadata_request_id is not None:
            self._count("metadata_timeouts")
            return self._back_off(request)
        return self._resume(now_ns, request)  # the backoff is over

    def _resume(self, now_ns: int, request: _Request, target: str | None = None) -> list[Effect]:
        entry = self._lookup(now_ns, request.partition)
        if entry is None:
            return self._fetch(now_ns, request)
        return self._attempt(request, entry, target)

    def _back_off(self, request: _Request) -> list[Effect]:
        """Wait a full-jitter exponential backoff (rule 6), then resume."""
        self._forget_wait(request)
        request.target = None
        request.immediate = 0
        request.backoffs += 1
        self._count("backoffs")
        exponent = min(request.backoffs - 1, 30)
        ceiling_ms = min(self._backoff_cap_ms, self._backoff_base_ms * 2 ** exponent)
        return [SetTimer(_attempt(request), _ns(self._rng.uniform(0.0, ceiling_ms)))]

    def _retry_now(self, now_ns: int, request: _Request, target: str | None) -> list[Effect]:
        if request.immediate >= MAX_IMMEDIATE_RETRIES:
            return self._back_off(request)
        request.immediate += 1
        return self._resume(now_ns, request, target)

    # -- replica answers ------------------------------------------------------------------------
    def _on_replica_reply(self, now_ns: int, source: str, reply: ReplicaReply) -> list[Effect]:
        request = self._pending.get(reply.request_id)
        if request is None or reply.partition != request.partition:
            self._count("late_replies")
            return []
        if reply.ok or reply.error == "condition_failed":
            return self._finish(request, ClientReply(request.client_request_id, reply.ok,
                                                     reply.item, reply.error))
        if source != request.target:
            self._count("late_replies")  # an earlier attempt's refusal: the current one decides
            return []
        return self._on_refusal(now_ns, source, request, reply)

    def _on_refusal(self, now_ns: int, source: str, request: _Request,
                    reply: ReplicaReply) -> list[Effect]:
        if reply.error not in ("not_leader", "look_up_again"):
            return self._back_off(request)  # no_lease, unavailable, corrupt…: try again later
        effects = self._misrouted(request, source, reply)
        if self._never_invalidates:
            return effects + self._back_off(request)
        if reply.error == "look_up_again":
            self._cache.pop(request.partition, None)
            return effects + self._retry_now(now_ns, request, None)
        hint = reply.leader_hint
        if hint is None or hint == source:
            self._forget_leader(request.partition, source)
            request.avoid.add(source)
            return effects + self._back_off(request)
        self._learn_leader(request.partition, hint, reply.ballot)
        return effects + self._retry_now(now_ns, request, hint)

    def _misrouted(self, request: _Request, source: str, reply: ReplicaReply) -> list[Effect]:
        self._count("misroutes")
        detail = (request.partition, source, reply.error, reply.leader_hint or "")
        return [Note("misrouted", detail)]

    def _finish(self, request: _Request, reply: ClientReply) -> list[Effect]:
        self._forget_wait(request)
        del self._pending[request.request_id]
        del self._by_client[(request.client, request.client_request_id)]
        self._count("replies_ok" if reply.ok else "replies_failed")
        if reply.error in ("condition_failed", "unavailable"):
            self._count(reply.error)
        return [CancelTimer(_attempt(request)), CancelTimer(_deadline(request)),
                Send(request.client, reply)]

    def _give_up(self, request: _Request) -> list[Effect]:
        note = Note("request-unavailable", (request.partition, request.attempts))
        reply = ClientReply(request.client_request_id, False, error="unavailable")
        return [note] + self._finish(request, reply)

    # -- the cache and the metadata service -----------------------------------------------------
    def _lookup(self, now_ns: int, partition: int) -> PartitionEntry | None:
        cached = self._cache.get(partition)
        if cached is None:
            return None
        if not self._never_invalidates and now_ns - cached.fetched_ns > self._ttl_ns:
            return None
        return cached.entry

    def _fetch(self, now_ns: int, request: _Request) -> list[Effect]:
        """Ask the metadata service for the request's partition (or the whole map, legacy)."""
        self._forget_wait(request)
        request.target = None
        request.metadata_request_id = self._new_id()
        self._waiting[request.metadata_request_id] = request.request_id
        send = self._map_request(now_ns, request.metadata_request_id, request.partition)
        return [send, SetTimer(_attempt(request), self._metadata_timeout_ns)]

    def _map_request(self, now_ns: int, metadata_request_id: int, partition: int) -> Send:
        self._count("metadata_requests")
        self._metadata_sent.add(now_ns)
        wanted = None if self._mode == "legacy" else partition
        return Send(self.metadata, MapRequest(metadata_request_id, wanted))

    def _forget_wait(self, request: _Request) -> None:
        if request.metadata_request_id is not None:
            self._waiting.pop(request.metadata_request_id, None)
            request.metadata_request_id = None

    def _on_map_reply(self, now_ns: int, reply: MapReply) -> list[Effect]:
        if reply.ok:
            self._merge(now_ns, reply.entries)
        else:
            self._count("metadata_rejections")
        request_id = self._waiting.pop(reply.request_id, None)
        request = None if request_id is None else self._pending.get(request_id)
        if request is None or request.metadata_request_id != reply.request_id:
            return []  # a background refresh, or a request that moved on
        request.metadata_request_id = None
        entry = self._lookup(now_ns, request.partition) if reply.ok else None
        return self._back_off(request) if entry is None else self._attempt(request, entry)

    def _merge(self, now_ns: int, entries: tuple[PartitionEntry, ...]) -> None:
        """Cache what the metadata service sent, keeping a newer cached leader (rule 9)."""
        if len(entries) > 1 and not coverage_violations(entries):
            self._starts = [entry.start for entry in entries]
            self._numbers = [entry.partition for entry in entries]
        for entry in entries:
            cached = self._cache.get(entry.partition)
            if cached is not None and self._never_invalidates:
                continue
            if cached is not None and cached.entry.ballot > entry.ballot:
                entry = dataclasses.replace(entry, leader=cached.entry.leader,
                                            ballot=cached.entry.ballot)
            self._cache[entry.partition] = _Cached(entry, now_ns)

    def _on_push(self, push: LeaderChanged) -> None:
        cached = self._cache.get(push.partition)
        if self._never_invalidates or cached is None or push.ballot <= cached.entry.ballot:
            self._count("pushes_ignored")
            return
        self._set_leader(cached, push.leader, push.ballot)
        self._count("pushes_applied")

    def _learn_leader(self, partition: int, leader: str, ballot: tuple[int, str]) -> None:
        cached = self._cache.get(partition)
        if cached is not None and ballot >= cached.entry.ballot:
            self._set_leader(cached, leader, ballot)

    def _forget_leader(self, partition: int, node: str) -> None:
        cached = self._cache.get(partition)
        if cached is not None and cached.entry.leader == node:
            self._set_leader(cached, None, cached.entry.ballot)

    def _set_leader(self, cached: _Cached, leader: str | None, ballot: tuple[int, str]) -> None:
        entry = dataclasses.replace(cached.entry, leader=leader, ballot=ballot)
        self._cache[entry.partition] = _Cached(entry, cached.fetched_ns)

    # -- visibility -----------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        return dict(self._counts, pending=len(self._pending), cached_partitions=len(self._cache),
                    metadata_requests_peak_per_s=self._metadata_sent.peak(),
                    metadata_requests_mean_per_s=self._metadata_sent.mean())

    def metadata_requests_per_second(self) -> dict[int, int]:
        """Metadata requests sent per second of the local clock (second → count)."""
        return self._metadata_sent.buckets()

    def _count(self, name: str) -> None:
        self._counts[name] += 1

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _needs_leader(operation: ItemOperation) -> bool:
    return operation.is_write or operation.consistent


def _attempt(request: _Request) -> str:
    return f"router/attempt/{request.request_id}"


def _deadline(request: _Request) -> str:
    return f"router/deadline/{request.request_id}"


def _ns(milliseconds: float) -> int:
    return round(milliseconds * 1_000_000)
