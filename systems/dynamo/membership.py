"""The membership agent of a storage node: a lease on membership, renewed from the metadata service
(S20, the 2015 event), sans-I/O.

Rules:
1. A storage node may serve client requests only while it holds a membership lease. It boots
   with one (the membership it was provisioned with, valid ``membership_lease_s`` from boot), so a
   fleet's start is not itself a storm; each successful fetch renews the lease for
   ``membership_lease_s`` from the moment the reply arrives.
2. The node fetches the whole partition map (``MapRequest(partition=None)``: a large reply, which
   the metadata service takes ``metadata_service_time_per_entry_ms`` per entry to build) every
   ``membership_refresh_s``. The first fetch comes at a random point of the first period, so the
   fleet's refreshes are spread out, as they are when machines booted at different times.
3. At most one fetch is outstanding. It fails if no reply comes within ``membership_timeout_ms``,
   if the service answers ``ok=False`` (overloaded), or if the map does not list this node as a
   replica of every partition it hosts. A reply to a fetch the node gave up on is counted and
   ignored: the metadata service did that work for nothing (it never drops a queued request).
4. After a failure the node fetches again. Without ``mitigations.membership_retry_jitter`` it waits
   exactly ``membership_retry_ms`` every time: every node that failed keeps retrying at the same
   fixed rate, in lockstep, whatever the service can take. With it, the n-th consecutive failure
   waits a full-jitter exponential backoff, uniform in
   [0, min(membership_backoff_ms_max, membership_retry_ms * 2**(n-1))].
5. When the lease runs out the node leaves service ("left-service"): its replicas refuse client
   requests (the node adapter answers ``out_of_service``) but keep replicating. The next successful
   fetch brings it back ("rejoined-service").

Timers: ``membership/fetch`` (the next fetch, periodic or retry), ``membership/timeout`` (the wait
for the outstanding reply) and ``membership/lease`` (the lease's end). Notes: left-service,
rejoined-service, membership-fetch-failed (why, consecutive failures).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from systems.dynamo.config import DynamoConfig
from systems.dynamo.effects import CancelTimer, Effect, Note, Send, SetTimer
from systems.dynamo.messages import MapReply, MapRequest

__all__ = ["MembershipAgent", "FETCH_TIMER", "TIMEOUT_TIMER", "LEASE_TIMER"]

FETCH_TIMER = "membership/fetch"
TIMEOUT_TIMER = "membership/timeout"
LEASE_TIMER = "membership/lease"
_MAX_EXPONENT = 30  # 2**30 times any base is far past any cap: no overflow, no float infinity
_COUNTERS = ("requests", "replies_ok", "rejections", "timeouts", "unconfirmed", "late_replies",
             "left_service", "rejoined_service")


class RandomSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


class MembershipAgent:
    """Keeps one storage node's membership lease (see the rules above)."""

    def __init__(self, name: str, metadata: str, partitions_hosted: Iterable[int],
                 config: DynamoConfig, rng: RandomSource) -> None:
        timing = config.timing
        self.name = name
        self.metadata = metadata
        self.partitions_hosted = tuple(sorted(partitions_hosted))
        self._rng = rng
        self._jitter = config.mitigations.membership_retry_jitter
        self._refresh_ns = _ns(timing.membership_refresh_s * 1000.0)
        self._timeout_ns = _ns(timing.membership_timeout_ms)
        self._lease_ns = _ns(timing.membership_lease_s * 1000.0)
        self._retry_ms = timing.membership_retry_ms
        self._backoff_cap_ms = max(timing.membership_backoff_ms_max, timing.membership_retry_ms)
        self._lease_until_ns = 0
        self._in_service = True
        self._outstanding: int | None = None  # request id of the fetch awaiting its reply
        self._next_id = 0
        self.failures = 0  # consecutive failed fetches (the exponent of rule 4)
        self._counts = dict.fromkeys(_COUNTERS, 0)

    # -- inputs ---------------------------------------------------------------------------------
    def start(self, now_ns: int) -> list[Effect]:
        """Boot: a lease from now (rule 1) and the first fetch somewhere in the first period."""
        self._lease_until_ns = now_ns + self._lease_ns
        first_ns = _ns(self._rng.uniform(0.0, self._refresh_ns / 1e6))
        return [SetTimer(LEASE_TIMER, self._lease_ns), SetTimer(FETCH_TIMER, first_ns)]

    def on_message(self, now_ns: int, source: str, message: Any) -> list[Effect]:
        if not isinstance(message, MapReply):
            return []
        if message.request_id != self._outstanding:
            self._count("late_replies")
            return []
        self._outstanding = None
        effects: list[Effect] = [CancelTimer(TIMEOUT_TIMER)]
        if not message.ok:
            self._count("rejections")
            return effects + self._failed("overloaded")
        if not self._confirms_me(message):
            self._count("unconfirmed")
            return effects + self._failed("unconfirmed")
        return effects + self._renewed(now_ns)

    def on_timer(self, now_ns: int, name: str) -> list[Effect]:
        if name == FETCH_TIMER:
            return self._fetch()
        if name == TIMEOUT_TIMER and self._outstanding is not None:
            self._outstanding = None
            self._count("timeouts")
            return self._failed("timeout")
        if name == LEASE_TIMER and self._in_service and now_ns >= self._lease_until_ns:
            self._in_service = False
            self._count("left_service")
            return [Note("left-service", (self.failures,))]
        return []

    def in_service(self, now_ns: int) -> bool:
        """True while the membership lease holds (rule 5)."""
        return now_ns < self._lease_until_ns

    # -- fetching -------------------------------------------------------------------------------
    def _fetch(self) -> list[Effect]:
        self._next_id += 1
        self._outstanding = self._next_id
        self._count("requests")
        return [Send(self.metadata, MapRequest(self._next_id, None)),
                SetTimer(TIMEOUT_TIMER, self._timeout_ns)]

    def _confirms_me(self, reply: MapReply) -> bool:
        listed = {entry.partition for entry in reply.entries if self.name in entry.replicas}
        return all(partition in listed for partition in self.partitions_hosted)

    def _renewed(self, now_ns: int) -> list[Effect]:
        self.failures = 0
        self._count("replies_ok")
        self._lease_until_ns = now_ns + self._lease_ns
        effects: list[Effect] = [SetTimer(LEASE_TIMER, self._lease_ns),
                                 SetTimer(FETCH_TIMER, self._refresh_ns)]
        if not self._in_service:
            self._in_service = True
            self._count("rejoined_service")
            effects.append(Note("rejoined-service", ()))
        return effects

    def _failed(self, why: str) -> list[Effect]:
        self.failures += 1
        return [Note("membership-fetch-failed", (why, self.failures)),
                SetTimer(FETCH_TIMER, _ns(self.retry_delay_ms(self.failures)))]

    def retry_delay_ms(self, failures: int) -> float:
        """How long to wait after the ``failures``-th consecutive failure (rule 4)."""
        if not self._jitter:
            return self._retry_ms
        exponent = min(failures - 1, _MAX_EXPONENT)
        return self._rng.uniform(0.0, min(self._backoff_cap_ms, self._retry_ms * 2 ** exponent))

    # -- visibility -----------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        return dict(self._counts, in_service=self._in_service, failures=self.failures,
                    outstanding=self._outstanding is not None)

    def _count(self, name: str) -> None:
        self._counts[name] += 1


def _ns(milliseconds: float) -> int:
    return round(milliseconds * 1_000_000)
