"""Partitioning, the metadata service and the router, driven directly: no simulator.

Each test calls the sans-I/O logic with ``(now_ns, input)`` and inspects the effects. The last tests
join routers, the metadata service and fake replicas through a tiny in-order fake network.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
from collections import Counter
from typing import Any

import pytest

from systems.dynamo.config import Bugs, DynamoConfig, Mitigations, Timing
from systems.dynamo.effects import CancelTimer, Note, Send, SetTimer
from systems.dynamo.items import ItemOperation
from systems.dynamo.messages import (ClientReply, ClientRequest, LeaderChanged, MapReply,
                                     MapRequest, PartitionEntry, ReplicaReply, ReplicaRequest)
from systems.dynamo.metadata import SERVE_TIMER, MetadataService
from systems.dynamo.partitioning import (HASH_SPACE, build_partition_map, coverage_violations,
                                         find_partition, find_partition_by_hash, hash_key,
                                         partition_ranges, placement_violations, split)
from systems.dynamo.router import MAX_IMMEDIATE_RETRIES, Router

MS = 1_000_000
S = 1_000_000_000
AZS = {"az1": ["s1"], "az2": ["s2"], "az3": ["s3"]}
AZ_OF = {"s1": "az1", "s2": "az2", "s3": "az3"}
KEY = "user#1"


# -- helpers ---------------------------------------------------------------------------------------
def make_config(partitions: int = 4, mode: str = "legacy", never_invalidates: bool = False,
                **timing: Any) -> DynamoConfig:
    return DynamoConfig(partitions=partitions, timing=Timing(**timing),
                        mitigations=Mitigations(router_cache_mode=mode),
                        bugs=Bugs(router_never_invalidates=never_invalidates))


def sends(effects: list[Any], kind: type | None = None) -> list[Send]:
    return [e for e in effects if isinstance(e, Send) and (kind is None or
                                                           isinstance(e.message, kind))]


def timer(effects: list[Any], prefix: str) -> SetTimer:
    (found,) = [e for e in effects if isinstance(e, SetTimer) and e.name.startswith(prefix)]
    return found


class FixedRng:
    """randrange picks the first; uniform returns the top of its range and records the range."""

    def __init__(self) -> None:
        self.ranges: list[tuple[float, float]] = []

    def randrange(self, stop: int) -> int:
        return 0

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b


def with_leader(entries: tuple[PartitionEntry, ...], leader: str,
                ballot: tuple[int, str] = (1, "")) -> tuple[PartitionEntry, ...]:
    return tuple(dataclasses.replace(e, leader=leader, ballot=(ballot[0], ballot[1] or leader))
                 for e in entries)


def put(key: str = KEY) -> ItemOperation:
    return ItemOperation("put_item", key, item=(("v", 1),))


def ec_read(key: str = KEY) -> ItemOperation:
    return ItemOperation("get_item", key, consistent=False)


class RouterBench:
    """One router, a map, and shortcuts to feed it."""

    def __init__(self, config: DynamoConfig | None = None, rng: Any = None,
                 leader: str | None = "s2", **kwargs: Any) -> None:
        self.config = config or make_config()
        entries = build_partition_map(self.config.partitions, AZS)
        self.map = with_leader(entries, leader) if leader else entries
        self.router = Router("r1", "meta", self.config, rng or random.Random(7), **kwargs)
        self.next_client_id = 0

    def request(self, now_ns: int, operation: ItemOperation | None = None,
                client: str = "c1") -> list[Any]:
        self.next_client_id += 1
        message = ClientRequest(self.next_client_id, operation or put())
        return self.router.on_message(now_ns, client, message)

    def answer_map(self, now_ns: int, effects: list[Any],
                   entries: tuple[PartitionEntry, ...] | None = None) -> list[Any]:
        """Answer the (single) MapRequest in ``effects`` as the metadata service would."""
        (send,) = sends(effects, MapRequest)
        wanted = send.message.partition
        entries = entries if entries is not None else self.map
        if wanted is not None:
            entries = tuple(e for e in entries if e.partition == wanted)
        return self.router.on_message(now_ns, "meta", MapReply(send.message.request_id, True,
                                                               entries))

    def warm(self, now_ns: int = 0, operation: ItemOperation | None = None) -> ReplicaRequest:
        """A first request: miss, metadata answer, and the replica request it leads to."""
        effects = self.answer_map(now_ns, self.request(now_ns, operation))
        (send,) = sends(effects, ReplicaRequest)
        self.last_target = send.destination
        return send.message

    def reply(self, now_ns: int, source: str, request: ReplicaRequest, ok: bool = True,
              **fields: Any) -> list[Any]:
        message = ReplicaReply(request.partition, request.request_id, ok, **fields)
        return self.router.on_message(now_ns, source, message)


# -- partitioning ----------------------------------------------------------------------------------
def test_hash_is_stable_and_in_range() -> None:
    assert hash_key("user#1") == 2529378036  # pinned: a change would move every key
    assert hash_key("") == 3820012610
    assert all(0 <= hash_key(f"k{i}") < HASH_SPACE for i in range(1000))


@pytest.mark.parametrize("partitions", [1, 2, 3, 7, 12, 100])
def test_ranges_are_equal_contiguous_and_cover_the_space(partitions: int) -> None:
    ranges = partition_ranges(partitions)
    assert ranges[0][0] == 0 and ranges[-1][1] == HASH_SPACE
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = {end - start for start, end in ranges}
    assert max(sizes) - min(sizes) <= 1


def placement_cases() -> list[tuple[int, dict[str, list[str]]]]:
    cases = []
    for zones in range(3, 7):
        for nodes_per_zone in range(1, 5):
            for partitions in (1, 2, 5, 12, 37, 100):
                cases.append((partitions, {f"az{z}": [f"n{z}.{i}" for i in range(nodes_per_zone)]
                                           for z in range(zones)}))
    cases.append((30, {"a": ["a1"], "b": ["b1", "b2", "b3"], "c": ["c1", "c2"], "d": []}))
    return cases


def test_placement_never_puts_two_replicas_in_one_az_and_balances_nodes() -> None:
    for partitions, zones in placement_cases():
        entries = build_partition_map(partitions, zones)
        az_of = {node: zone for zone, nodes in zones.items() for node in nodes}
        assert placement_violations(entries, az_of) == [], (partitions, zones)
        assert coverage_violations(entries) == []
        load = Counter(node for entry in entries for node in entry.replicas)
        for nodes in zones.values():
            counts = [load[node] for node in nodes]
            assert not counts or max(counts) - min(counts) <= 1, (partitions, zones, counts)
        if len({len(nodes) for nodes in zones.values()}) == 1:  # equal AZs: balanced overall
            counts = [load[node] for node in az_of]
            assert max(counts) - min(counts) <= 1, (partitions, zones, counts)
            firsts = Counter(entry.replicas[0] for entry in entries)
            assert max(firsts[n] for n in az_of) - min(firsts[n] for n in az_of) <= 2


def test_default_cluster_gives_many_partitions_per_node_and_varied_groups() -> None:
    zones = {f"az{z}": [f"s{z}{i}" for i in range(3)] for z in range(3)}
    entries = build_partition_map(12, zones)
    assert set(Counter(node for e in entries for node in e.replicas).values()) == {4}
    assert len({frozenset(e.replicas) for e in entries}) >= 9


def test_placement_is_deterministic() -> None:
    zones = {"b": ["b1", "b2"], "a": ["a1", "a2"], "c": ["c1"], "d": ["d1", "d2"]}
    assert build_partition_map(20, zones) == build_partition_map(20, dict(sorted(zones.items())))


def test_placement_needs_three_azs() -> None:
    with pytest.raises(ValueError, match=r"at least 3 AZs; got 2: \['az1', 'az2'\]"):
        build_partition_map(4, {"az1": ["a", "b"], "az2": ["c"], "az3": []})
    with pytest.raises(ValueError, match="listed in AZ 'az1' and again in AZ 'az2'"):
        build_partition_map(4, {"az1": ["a"], "az2": ["a"], "az3": ["c"]})


def test_floor_lookup_finds_the_range_holding_the_hash() -> None:
    entries = build_partition_map(5, AZS)
    for entry in entries:
        assert find_partition_by_hash(entries, entry.start) is entry
        assert find_partition_by_hash(entries, entry.end - 1) is entry
    assert find_partition(entries, KEY).start <= hash_key(KEY) < find_partition(entries, KEY).end
    with pytest.raises(LookupError, match="no partition holds hash 4294967296"):
        find_partition_by_hash(entries, HASH_SPACE)


def test_split_makes_two_children_covering_the_parent() -> None:
    entries = with_leader(build_partition_map(2, AZS), "s1")
    left, right = split(entries[0], 1000, right_partition=2)
    assert (left.start, left.end, right.start, right.end) == (0, 1000, 1000, entries[0].end)
    assert (left.leader, right.leader, right.partition) == ("s1", None, 2)
    assert coverage_violations((left, right, entries[1])) == []
    assert find_partition_by_hash((left, right, entries[1]), 1000) is right
    with pytest.raises(ValueError, match="strictly inside"):
        split(entries[0], 0, right_partition=2)


# -- metadata service ------------------------------------------------------------------------------
def metadata(capacity: int = 3, service_ms: float = 2.0, per_entry_ms: float = 0.0
             ) -> MetadataService:
    config = make_config(metadata_queue_capacity=capacity, metadata_service_time_ms=service_ms,
                         metadata_service_time_per_entry_ms=per_entry_ms)
    return MetadataService("meta", build_partition_map(4, AZS), config)


def test_metadata_serves_one_at_a_time_in_fifo_order_after_the_service_time() -> None:
    service = metadata()
    first = service.on_message(0, "r1", MapRequest(1, None))
    assert first == [SetTimer(SERVE_TIMER, 2 * MS)]
    assert service.on_message(MS, "r2", MapRequest(7, 2)) == []  # queued behind the first
    served = service.on_timer(2 * MS, SERVE_TIMER)
    (reply,) = sends(served, MapReply)
    assert (reply.destination, reply.message.request_id, len(reply.message.entries)) == ("r1", 1, 4)
    assert timer(served, SERVE_TIMER).delay_ns == 2 * MS  # the next one starts at once
    (reply,) = sends(service.on_timer(4 * MS, SERVE_TIMER), MapReply)
    assert (reply.destination, reply.message.entries) == ("r2", (service.partition_map[2],))
    assert service.on_timer(5 * MS, SERVE_TIMER) == []


def test_metadata_whole_map_costs_more_service_time() -> None:
    service = metadata(service_ms=2.0, per_entry_ms=0.5)
    assert service.on_message(0, "r1", MapRequest(1, None)) == [SetTimer(SERVE_TIMER, 4 * MS)]
    service.on_message(0, "r1", MapRequest(2, 0))
    assert timer(service.on_timer(4 * MS, SERVE_TIMER), SERVE_TIMER).delay_ns == int(2.5 * MS)


def test_metadata_rejects_at_once_when_its_queue_is_full() -> None:
    service = metadata(capacity=2)
    for request_id in (1, 2):
        service.on_message(0, "r1", MapRequest(request_id, 0))
    rejected = service.on_message(0, "r2", MapRequest(3, 0))
    assert rejected == [Send("r2", MapReply(3, False))]
    stats = service.statistics()
    assert (stats["requests"], stats["rejected"], stats["peak_queue_depth"]) == (3, 1, 2)
    service.on_timer(2 * MS, SERVE_TIMER)  # one served: room for one more
    assert sends(service.on_message(2 * MS, "r2", MapRequest(4, 0))) == []
    assert service.statistics()["served"] == 1


def test_metadata_counts_requests_per_second_of_its_clock() -> None:
    service = metadata(capacity=1)
    for now_ns in (0, 10 * MS, int(1.5 * S), int(3.2 * S)):
        service.on_message(now_ns, "r1", MapRequest(now_ns, 0))
    assert service.requests_per_second() == {0: 2, 1: 1, 3: 1}
    assert service.rejected_per_second() == {0: 1, 1: 1, 3: 1}
    assert service.statistics()["requests_peak_per_s"] == 2


def test_metadata_takes_leader_pushes_only_from_newer_ballots() -> None:
    service = metadata()
    service.on_message(0, "s1", LeaderChanged(1, "s1", (2, "s1")))
    service.on_message(0, "s2", LeaderChanged(1, "s2", (1, "s2")))  # late, older
    service.on_message(0, "s3", LeaderChanged(1, "s3", (2, "s1")))  # same ballot
    assert (service.partition_map[1].leader, service.partition_map[1].ballot) == ("s1", (2, "s1"))
    service.on_message(0, "s3", LeaderChanged(1, "s3", (3, "s3")))
    assert service.partition_map[1].leader == "s3"
    assert service.statistics()["leader_updates"] == 2
    assert service.statistics()["stale_pushes"] == 2


# -- router: routing -------------------------------------------------------------------------------
def test_cold_router_fetches_the_map_then_sends_a_write_to_the_leader() -> None:
    bench = RouterBench()
    effects = bench.request(0)
    (fetch,) = sends(effects, MapRequest)
    assert fetch.destination == "meta" and fetch.message.partition is None  # legacy: whole map
    assert timer(effects, "router/attempt").delay_ns == 500 * MS  # metadata timeout
    assert timer(effects, "router/deadline").delay_ns == 2000 * MS
    request = bench.warm(0)
    assert bench.last_target == "s2"
    done = bench.reply(MS, "s2", request)
    assert sends(done, ClientReply)[0] == Send("c1", ClientReply(2, True))
    assert sum(isinstance(e, CancelTimer) for e in done) == 2
    assert bench.router.statistics()["replies_ok"] == 1


def test_strongly_consistent_reads_go_to_the_leader_and_unknown_leaders_to_some_replica() -> None:
    bench = RouterBench()
    bench.warm(0)
    sc_read = ItemOperation("get_item", KEY, consistent=True)
    assert sends(bench.request(MS, sc_read), ReplicaRequest)[0].destination == "s2"
    leaderless = RouterBench(leader=None, rng=FixedRng())
    leaderless.warm(0)
    entry = find_partition(leaderless.map, KEY)
    assert leaderless.last_target == entry.replicas[0]


def test_eventually_consistent_reads_go_to_any_replica() -> None:
    bench = RouterBench()
    bench.warm(0)
    targets = Counter(sends(bench.request(MS, ec_read()), ReplicaRequest)[0].destination
                      for _ in range(60))
    assert set(targets) == {"s1", "s2", "s3"}


def test_eventually_consistent_reads_prefer_the_routers_own_az() -> None:
    bench = RouterBench(az="az3", az_of=AZ_OF)
    bench.warm(0)
    targets = {sends(bench.request(MS, ec_read()), ReplicaRequest)[0].destination
               for _ in range(20)}
    assert targets == {"s3"}


def test_requests_are_tracked_per_client_and_duplicates_ignored() -> None:
    bench = RouterBench()
    bench.warm(0)
    router = bench.router
    first = sends(router.on_message(MS, "c7", ClientRequest(1, put())), ReplicaRequest)[0].message
    second = sends(router.on_message(MS, "c8", ClientRequest(1, put())), ReplicaRequest)[0].message
    assert first.request_id != second.request_id
    assert router.on_message(MS, "c7", ClientRequest(1, put())) == []  # duplicate in flight
    assert sends(bench.reply(2 * MS, "s2", second), ClientReply)[0].destination == "c8"
    assert bench.reply(3 * MS, "s2", second) == []  # late duplicate
    stats = router.statistics()
    assert (stats["duplicate_requests"], stats["late_replies"], stats["pending"]) == (1, 1, 2)


def test_condition_failed_is_a_final_answer() -> None:
    bench = RouterBench()
    request = bench.warm(0)
    done = bench.reply(MS, "s2", request, ok=False, error="condition_failed")
    assert sends(done, ClientReply)[0].message == ClientReply(1, False, None, "condition_failed")
    assert bench.router.statistics()["condition_failed"] == 1


# -- router: misroutes, retries, timeouts ----------------------------------------------------------
def test_not_leader_with_a_hint_retries_at_once_at_the_hinted_leader() -> None:
    bench = RouterBench()
    request = bench.warm(0)
    effects = bench.reply(MS, "s2", request, ok=False, error="not_leader", leader_hint="s3",
                          ballot=(2, "s3"))
    (retry,) = sends(effects, ReplicaRequest)
    assert retry.destination == "s3" and retry.message.request_id == request.request_id
    assert any(isinstance(e, Note) and e.kind == "misrouted" for e in effects)
    assert bench.router.cached_entry(request.partition).leader == "s3"
    assert sends(bench.request(2 * MS), ReplicaRequest)[0].destination == "s3"  # cache updated
    stats = bench.router.statistics()
    assert (stats["misroutes"], stats["retries"]) == (1, 1)


def test_look_up_again_invalidates_and_fetches_before_retrying() -> None:
    bench = RouterBench(config=make_config(mode="constant_work"))
    request = bench.warm(0)
    effects = bench.reply(MS, "s2", request, ok=False, error="look_up_again")
    (fetch,) = sends(effects, MapRequest)
    assert fetch.message.partition == request.partition
    assert bench.router.cached_entry(request.partition) is None
    moved = with_leader(bench.map, "s1", (5, "s1"))
    (retry,) = sends(bench.answer_map(2 * MS, effects, moved), ReplicaRequest)
    assert retry.destination == "s1"


def test_hints_that_ping_pong_fall_back_to_backoff() -> None:
    bench = RouterBench()
    request = bench.warm(0)
    source, hint = "s2", "s3"
    for _ in range(MAX_IMMEDIATE_RETRIES):
        effects = bench.reply(MS, source, request, ok=False, error="not_leader",
                              leader_hint=hint, ballot=(1, "s2"))
        assert sends(effects, ReplicaRequest)[0].destination == hint
        source, hint = hint, source
    effects = bench.reply(MS, source, request, ok=False, error="not_leader", leader_hint=hint,
                          ballot=(1, "s2"))
    assert sends(effects) == [] and timer(effects, "router/attempt")


def test_unavailable_answers_back_off_with_full_jitter_then_the_request_fails() -> None:
    rng = FixedRng()
    bench = RouterBench(config=make_config(router_backoff_ms_min=20, router_backoff_ms_max=400),
                        rng=rng)
    request = bench.warm(0)
    deadline = timer(bench.request(0), "router/deadline")  # (a second request, unanswered)
    now_ns, target, attempts = 0, "s2", 0
    while now_ns < 2000 * MS:
        effects = bench.reply(now_ns, target, request, ok=False, error="no_lease")
        now_ns += timer(effects, "router/attempt").delay_ns
        if now_ns >= 2000 * MS:
            break
        (retry,) = sends(bench.router.on_timer(now_ns, f"router/attempt/{request.request_id}"),
                         ReplicaRequest)
        target, attempts = retry.destination, attempts + 1
    assert [b for _, b in rng.ranges[:7]] == [20, 40, 80, 160, 320, 400, 400]
    assert all(a == 0 for a, _ in rng.ranges)  # full jitter: anywhere from zero
    gave_up = bench.router.on_timer(2000 * MS, f"router/deadline/{request.request_id}")
    assert sends(gave_up, ClientReply)[0].message == ClientReply(1, False, error="unavailable")
    assert bench.router.on_timer(2001 * MS, f"router/attempt/{request.request_id}") == []
    assert deadline.delay_ns == 2000 * MS and attempts >= 6


def test_a_silent_replica_times_out_and_the_request_fails_over() -> None:
    bench = RouterBench(rng=FixedRng())
    request = bench.warm(0)
    effects = bench.router.on_timer(500 * MS, f"router/attempt/{request.request_id}")
    (retry,) = sends(effects, ReplicaRequest)
    assert retry.destination != "s2"
    assert bench.router.statistics()["attempt_timeouts"] == 1
    late_ok = bench.reply(501 * MS, "s2", request)  # the first attempt answers after all
    assert sends(late_ok, ClientReply)[0].message.ok


def test_metadata_overload_and_silence_back_off_then_ask_again() -> None:
    bench = RouterBench(rng=FixedRng())
    effects = bench.request(0)
    (fetch,) = sends(effects, MapRequest)
    backoff = bench.router.on_message(MS, "meta", MapReply(fetch.message.request_id, False))
    assert sends(backoff) == [] and timer(backoff, "router/attempt").delay_ns == 20 * MS
    again = bench.router.on_timer(21 * MS, "router/attempt/1")
    assert len(sends(again, MapRequest)) == 1
    silence = bench.router.on_timer(521 * MS, "router/attempt/1")  # metadata timeout
    assert timer(silence, "router/attempt").delay_ns == 40 * MS
    (_retry,) = sends(bench.answer_map(600 * MS, bench.router.on_timer(561 * MS,
                                                                      "router/attempt/1")),
                     ReplicaRequest)
    stats = bench.router.statistics()
    assert (stats["metadata_rejections"], stats["metadata_timeouts"]) == (1, 1)
    assert stats["metadata_requests"] == 3


# -- router: cache modes, TTL, pushes, the planted bug ---------------------------------------------
@pytest.mark.parametrize("mode, expected", [("legacy", 1), ("constant_work", 50)])
def test_metadata_traffic_legacy_vs_constant_work(mode: str, expected: int) -> None:
    bench = RouterBench(config=make_config(mode=mode))
    request = bench.warm(0)
    bench.reply(MS, "s2", request)
    for i in range(1, 50):  # 49 more requests, all cache hits
        effects = bench.request(i * MS, put(f"key-{i}") if mode == "legacy" else put())
        bench.reply(i * MS, "s2", sends(effects, ReplicaRequest)[0].message)
    stats = bench.router.statistics()
    assert stats["metadata_requests"] == expected
    assert (stats["cache_misses"], stats["cache_hits"]) == (1, 49)
    assert stats["replies_ok"] == 50


def test_legacy_cold_start_sends_one_whole_map_request_per_waiting_request() -> None:
    bench = RouterBench()
    fetches = [sends(bench.request(0, put(f"k{i}")), MapRequest) for i in range(10)]
    assert all(len(f) == 1 and f[0].message.partition is None for f in fetches)
    assert bench.router.metadata_requests_per_second() == {0: 10}


def test_cache_entries_expire_after_the_ttl() -> None:
    bench = RouterBench(config=make_config(router_cache_ttl_s=30))
    bench.warm(0)
    assert sends(bench.request(30 * S), MapRequest) == []  # exactly at the TTL: still fresh
    assert len(sends(bench.request(30 * S + 1), MapRequest)) == 1
    bench.router.flush_cache()
    assert bench.router.cached_entry(0) is None


def test_pushes_update_the_cached_leader_only_when_newer() -> None:
    bench = RouterBench()
    partition = bench.warm(0).partition
    router = bench.router
    router.on_message(MS, "s3", LeaderChanged(partition, "s3", (2, "s3")))
    router.on_message(MS, "s1", LeaderChanged(partition, "s1", (1, "s1")))  # older: ignored
    assert router.cached_entry(partition).leader == "s3"
    assert sends(bench.request(2 * MS), ReplicaRequest)[0].destination == "s3"
    stale_map = with_leader(bench.map, "s2", (1, "s2"))  # metadata still says s2
    router.on_message(3 * MS, "meta", MapReply(999, True, stale_map))
    assert router.cached_entry(partition).leader == "s3"
    assert (router.statistics()["pushes_applied"], router.statistics()["pushes_ignored"]) == (1, 1)


def test_never_invalidating_router_keeps_using_a_stale_leader_until_timeout() -> None:
    bench = RouterBench(config=make_config(mode="constant_work", never_invalidates=True),
                        rng=FixedRng())
    request = bench.warm(0)
    router = bench.router
    router.on_message(MS, "s3", LeaderChanged(request.partition, "s3", (2, "s3")))
    effects = bench.reply(MS, "s2", request, ok=False, error="not_leader", leader_hint="s3",
                          ballot=(2, "s3"))
    assert sends(effects, ReplicaRequest) == []  # the hint is ignored: back off
    now_ns = MS + timer(effects, "router/attempt").delay_ns
    (retry,) = sends(router.on_timer(now_ns, f"router/attempt/{request.request_id}"),
                     ReplicaRequest)
    assert retry.destination == "s2"  # the stale leader again
    effects = bench.reply(now_ns, "s2", request, ok=False, error="look_up_again")
    assert sends(effects) == []
    router.on_message(now_ns, "meta", MapReply(99, True, with_leader(bench.map, "s3", (2, "s3"))))
    assert router.cached_entry(request.partition).leader == "s2"
    assert sends(bench.request(3600 * S), ReplicaRequest)[0].destination == "s2"  # never expires
    gave_up = router.on_timer(2000 * MS, f"router/deadline/{request.request_id}")
    assert sends(gave_up, ClientReply)[0].message.error == "unavailable"


# -- router and metadata through a fake network ----------------------------------------------------
class FakeReplica:
    """Answers every request ok after a fixed delay (a healthy storage node)."""

    def on_message(self, now_ns: int, source: str, message: Any) -> list[Any]:
        if isinstance(message, ReplicaRequest):
            return [Send(source, ReplicaReply(message.partition, message.request_id, True))]
        return []

    def on_timer(self, now_ns: int, name: str) -> list[Any]:
        return []


class FakeNetwork:
    """Delivers sends after ``latency_ns`` and fires timers, in (time, sequence) order."""

    def __init__(self, nodes: dict[str, Any], latency_ns: int = MS) -> None:
        self.nodes = nodes
        self.latency_ns = latency_ns
        self.queue: list[tuple[int, int, str, Any]] = []
        self.timers: dict[tuple[str, str], int] = {}  # (node, name) → sequence of the live one
        self.sequence = 0
        self.inbox: dict[str, list[Any]] = {}

    def push(self, time_ns: int, node: str, event: Any) -> None:
        self.sequence += 1
        heapq.heappush(self.queue, (time_ns, self.sequence, node, event))

    def apply(self, now_ns: int, node: str, effects: list[Any]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.push(now_ns + self.latency_ns, effect.destination, ("message", node,
                                                                         effect.message))
            elif isinstance(effect, SetTimer):
                self.push(now_ns + effect.delay_ns, node, ("timer", effect.name))
                self.timers[(node, effect.name)] = self.sequence
            elif isinstance(effect, CancelTimer):
                self.timers.pop((node, effect.name), None)

    def run(self, until_ns: int) -> None:
        while self.queue and self.queue[0][0] <= until_ns:
            now_ns, sequence, node, event = heapq.heappop(self.queue)
            if event[0] == "timer":
                if self.timers.get((node, event[1])) != sequence:
                    continue  # replaced or cancelled
                del self.timers[(node, event[1])]
                self.apply(now_ns, node, self.nodes[node].on_timer(now_ns, event[1]))
            elif node in self.nodes:
                self.apply(now_ns, node, self.nodes[node].on_message(now_ns, event[1], event[2]))
            else:
                self.inbox.setdefault(node, []).append(event[2])


def cold_start(mode: str, routers: int = 20, requests_each: int = 10) -> dict[str, Any]:
    """Fresh routers under a burst of requests, against a small metadata service (S17)."""
    config = make_config(mode=mode, metadata_queue_capacity=10, metadata_service_time_ms=2.0)
    entries = with_leader(build_partition_map(4, AZS), "s2")
    nodes: dict[str, Any] = {"meta": MetadataService("meta", entries, config)}
    nodes.update({f"s{i}": FakeReplica() for i in (1, 2, 3)})
    rng = random.Random(3)
    for r in range(routers):
        nodes[f"r{r}"] = Router(f"r{r}", "meta", config, rng)
    network = FakeNetwork(nodes)
    for r in range(routers):
        for i in range(requests_each):
            network.push(i * 50 * MS, f"r{r}", ("message", f"c{r}",
                                                 ClientRequest(i, put(f"k{r}.{i}"))))
    network.run(until_ns=10 * S)
    replies = [m for inbox in network.inbox.values() for m in inbox]
    return {"ok": sum(m.ok for m in replies), "replies": len(replies),
            "metadata": nodes["meta"].statistics()}


def test_cold_legacy_routers_overload_the_metadata_service_and_recover_by_backoff() -> None:
    legacy = cold_start("legacy")
    assert legacy["replies"] == 200 and legacy["ok"] == 200  # backoff rides out the overload
    assert legacy["metadata"]["rejected"] > 0
    assert legacy["metadata"]["peak_queue_depth"] == 10


def test_constant_work_routers_send_one_metadata_request_per_client_request() -> None:
    constant = cold_start("constant_work", routers=2)
    assert constant["ok"] == 20
    assert constant["metadata"]["requests"] == 20 and constant["metadata"]["rejected"] == 0
