"""The network: every link property and every network fault takes effect, deterministically."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.network import GrayLink, LinkConfig, message_size, message_type
from harness.node import NodeContext
from harness.trace import Trace, read_trace
from harness.world import Topology, World

MS = 1_000_000
SECOND = 1_000_000_000
AZS = {"az-a": ["n1", "n2"], "az-b": ["n3"]}
CONSTANT_1MS = LinkConfig(delay_distribution="constant", delay_ms_min=1, delay_ms_max=1)

Received = tuple[int, str, Any]  # (true time of delivery, source, message)


@dataclass(frozen=True)
class Msg:
    kind: str
    number: int = 0


@dataclass(frozen=True)
class Heartbeat:
    number: int = 0


class Recorder:
    """A program that records every message it receives, with the true time of delivery."""

    def __init__(self, context: NodeContext, world: World, inbox: list[Received]) -> None:
        self.world, self.inbox = world, inbox

    def on_message(self, source: str, message: Any) -> None:
        self.inbox.append((self.world.kernel.now_ns, source, message))


def make_world(link: LinkConfig = CONSTANT_1MS, seed: int = 1, azs: dict[str, list[str]] = AZS,
               trace: Trace | None = None) -> tuple[World, dict[str, list[Received]]]:
    world = World(seed, Topology.from_azs(azs), link=link, trace=trace)
    inboxes: dict[str, list[Received]] = {name: [] for name in world.nodes}
    for name, node in world.nodes.items():
        node.install(lambda context, box=inboxes[name]: Recorder(context, world, box))
        node.start()
    return world, inboxes


def send_at(world: World, time_ns: int, source: str, destination: str, message: Any,
            size_bytes: int | None = None) -> None:
    world.kernel.call_at(time_ns, world.network.send, source, destination, message, size_bytes)


def numbers(inbox: list[Received]) -> list[int]:
    return [message.number for _, _, message in inbox]


def spaced_delays(link: LinkConfig, count: int = 400, seed: int = 1) -> list[int]:
    """Delays of ``count`` messages sent 1 s apart (far enough that FIFO never holds one back)."""
    world, inboxes = make_world(link, seed)
    for i in range(count):
        send_at(world, i * SECOND, "n1", "n2", Msg("m", i))
    world.kernel.run()
    return [time - message.number * SECOND for time, _, message in inboxes["n2"]]


def check_totals(world: World) -> dict[str, Any]:
    """Every copy ends in one bucket, and the totals are the sums over the links."""
    stats = world.network.statistics()
    dropped = sum(stats[name] for name in stats if name.startswith("dropped_"))
    assert stats["messages_sent"] + stats["duplicated"] == (
        stats["delivered"] + stats["in_flight"] + stats["held"] + dropped)
    for name in ("messages_sent", "delivered", "bytes_sent"):
        assert stats[name] == sum(link[name] for link in stats["links"].values())
    return stats


# -- configuration and message rules ---------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("delay_distribution", "pareto"), ("delay_ms_min", -1.0), ("delay_ms_max", float("inf")),
    ("loss_probability", 1.5), ("duplicate_probability", -0.1), ("reorder_probability", "often"),
    ("bandwidth_bytes_per_s", 2.5), ("queue_capacity_messages", 0), ("delay_lognormal_sigma", 0.0),
    ("loss_probability", True)])
def test_link_config_rejects_bad_values_naming_field_and_value(field: str, value: Any) -> None:
    with pytest.raises(ValueError) as caught:
        LinkConfig(**{field: value})
    assert f"LinkConfig.{field} = {value!r}" in str(caught.value) and "must be" in str(caught.value)


def test_link_config_checks_the_delay_range_and_mean() -> None:
    with pytest.raises(ValueError, match="delay_ms_max = 1 .* >= delay_ms_min"):
        LinkConfig(delay_ms_min=2, delay_ms_max=1)
    with pytest.raises(ValueError, match="delay_ms_mean = 9 .*within"):
        LinkConfig(delay_ms_min=1, delay_ms_max=3, delay_ms_mean=9)
    assert LinkConfig(delay_ms_min=2, delay_ms_max=4).mean_delay_ms == 3


@pytest.mark.parametrize("field, value", [("source", ""), ("destination", 3), ("message_type", ""),
                                          ("drop_probability", 2.0), ("extra_delay_ms", -5.0),
                                          ("flap_period_ms", float("nan")), ("flap_duty", 1.5)])
def test_gray_link_rejects_bad_values(field: str, value: Any) -> None:
    values: dict[str, Any] = {"source": "n1", "destination": "n2", field: value}
    with pytest.raises(ValueError, match=f"GrayLink.{field} = "):
        GrayLink(**values)


def test_message_type_and_size_rules() -> None:
    assert message_type(Msg("vote")) == "vote"
    assert message_type(Heartbeat()) == "Heartbeat"
    assert message_type(b"raw") == "bytes"
    assert message_size(b"12345") == 5

    @dataclass
    class Sized:
        size_bytes: int

    assert message_size(Sized(4096)) == 4096
    assert message_size(Heartbeat()) == 128


def test_the_network_tells_type_and_size_as_the_rules_do_whatever_the_class() -> None:
    """``Network.send`` learns a class's type and size once when its instances cannot differ in
    them; every other class is asked message by message. Either way, the same answers."""

    @dataclass(frozen=True, slots=True)
    class Fixed:  # no kind, no size: its class name, the default size
        body: int = 0

    class Tagged:
        __slots__ = ()
        kind, size_bytes = "tag", 7

    @dataclass(frozen=True, slots=True)
    class PerInstance:  # slots named kind and size_bytes: each message says
        kind: str
        size_bytes: int

    class Plain:  # an instance dict: anything may be set on a message
        def __init__(self, kind: str | None = None) -> None:
            if kind is not None:
                self.kind = kind

    messages = [Fixed(), Tagged(), PerInstance("a", 10), PerInstance("b", 20), Plain(), Plain("p"),
                b"12345", "text", (1, 2)]
    for repeat in range(2):  # the second time from what was learnt
        world, _ = make_world()
        for message in messages:
            world.network.send("n1", "n2", message)
        world.kernel.run()
        link = world.network._links["n1"]["n2"]
        assert link.bytes_sent == sum(message_size(message) for message in messages)
        kinds = [record[3][2] for record in world.kernel.trace.tail() if record[2] == "deliver"]
        assert kinds == [message_type(message) for message in messages] == [
            "Fixed", "tag", "a", "b", "Plain", "p", "bytes", "str", "tuple"]


def test_unknown_nodes_are_named_with_the_known_ones() -> None:
    world, _ = make_world()
    with pytest.raises(ValueError, match=r"unknown node 'n9'; known nodes are \['n1', 'n2', 'n3'\]"):
        world.network.send("n1", "n9", Msg("m"))
    with pytest.raises(ValueError, match="'n7'"):
        world.network.partition(["n1"], ["n7"])
    with pytest.raises(ValueError, match="unknown availability zone 'az-z'"):
        world.network.isolate_az("az-z")


def test_delivery_event_is_owned_by_the_destination_with_plain_detail(tmp_path: Path) -> None:
    world, inboxes = make_world(trace=Trace(tmp_path / "trace.jsonl"))
    world.network.send("n1", "n2", Msg("vote"))
    world.network.send("n2", "n2", Heartbeat())  # to itself: allowed, with the link's delay
    world.kernel.run()
    world.kernel.trace.close()
    delivers = [(e["t_ns"], e["node"], e["detail"]) for e in read_trace(tmp_path / "trace.jsonl")
                if e["kind"] == "deliver"]
    assert delivers == [(MS, "n2", ["n1", "n2", "vote"]), (MS, "n2", ["n2", "n2", "Heartbeat"])]
    assert [source for _, source, _ in inboxes["n2"]] == ["n1", "n2"]


# -- delays ----------------------------------------------------------------------------------------
def test_constant_delay_is_exact() -> None:
    delays = spaced_delays(LinkConfig(delay_distribution="constant", delay_ms_min=1, delay_ms_max=9,
                                      delay_ms_mean=4), count=20)
    assert set(delays) == {4 * MS}


@pytest.mark.parametrize("distribution, mean_ms", [("uniform", 6.0), ("exponential", 4.0),
                                                   ("lognormal", 5.0)])
def test_random_delays_stay_in_bounds_around_their_mean(distribution: str, mean_ms: float) -> None:
    mean = None if distribution == "uniform" else mean_ms
    link = LinkConfig(delay_distribution=distribution, delay_ms_min=2, delay_ms_max=10,
                      delay_ms_mean=mean)
    delays = spaced_delays(link, count=600)
    assert 2 * MS <= min(delays) and max(delays) <= 10 * MS
    assert len(set(delays)) > 300  # really drawn, not constant
    assert abs(statistics.fmean(delays) / MS - mean_ms) < 0.5


def test_exponential_delay_is_cut_at_the_maximum() -> None:
    link = LinkConfig(delay_distribution="exponential", delay_ms_min=1, delay_ms_max=3,
                      delay_ms_mean=2.5)
    delays = spaced_delays(link, count=300)
    assert max(delays) == 3 * MS and min(delays) >= 1 * MS


# -- loss, duplication, reordering -----------------------------------------------------------------
def test_loss_drops_about_the_given_fraction() -> None:
    world, inboxes = make_world(LinkConfig(loss_probability=0.3))
    for i in range(3000):
        send_at(world, i * MS, "n1", "n2", Msg("m", i))
    world.kernel.run()
    stats = check_totals(world)
    assert 0.27 < stats["dropped_loss"] / 3000 < 0.33
    assert stats["delivered"] == len(inboxes["n2"]) == 3000 - stats["dropped_loss"]


def test_duplication_delivers_some_messages_twice() -> None:
    world, inboxes = make_world(LinkConfig(duplicate_probability=0.25))
    for i in range(2000):
        send_at(world, i * MS, "n1", "n2", Msg("m", i))
    world.kernel.run()
    stats = check_totals(world)
    copies = numbers(inboxes["n2"])
    assert len(copies) == 2000 + stats["duplicated"] and sorted(set(copies)) == list(range(2000))
    assert 0.22 < stats["duplicated"] / 2000 < 0.28
    assert max(copies.count(n) for n in range(2000)) == 2


def test_links_are_fifo_without_reordering_even_with_spread_delays() -> None:
    world, inboxes = make_world(LinkConfig(delay_ms_min=1, delay_ms_max=50))
    for i in range(500):
        send_at(world, i * MS, "n1", "n2", Msg("m", i))
    world.kernel.run()
    assert numbers(inboxes["n2"]) == list(range(500))
    assert world.network.statistics()["reordered"] == 0


def test_reordering_lets_messages_overtake() -> None:
    world, inboxes = make_world(LinkConfig(delay_ms_min=1, delay_ms_max=2, reorder_probability=0.2,
                                           reorder_delay_ms_max=20))
    for i in range(500):
        send_at(world, i * MS, "n1", "n2", Msg("m", i))
    world.kernel.run()
    received = numbers(inboxes["n2"])
    assert sorted(received) == list(range(500)) and received != list(range(500))
    assert 70 < check_totals(world)["reordered"] < 130


# -- bandwidth and queue capacity ------------------------------------------------------------------
def test_bandwidth_serializes_messages_one_after_another() -> None:
    link = LinkConfig(delay_distribution="constant", delay_ms_min=1, delay_ms_max=1,
                      bandwidth_bytes_per_s=1000)
    world, inboxes = make_world(link)
    for i in range(5):
        world.network.send("n1", "n2", Msg("m", i), size_bytes=100)  # 100 ms each on the wire
    world.network.send("n1", "n3", b"x" * 50)  # another link: not queued behind n1->n2
    world.kernel.run()
    assert [time for time, _, _ in inboxes["n2"]] == [(k * 100 + 1) * MS for k in range(1, 6)]
    assert inboxes["n3"][0][0] == 51 * MS
    assert world.network.statistics()["bytes_sent"] == 550


def test_queue_capacity_drops_what_does_not_fit_and_frees_on_delivery() -> None:
    link = LinkConfig(delay_distribution="constant", delay_ms_min=10, delay_ms_max=10,
                      queue_capacity_messages=5)
    world, inboxes = make_world(link)
    for i in range(8):
        world.network.send("n1", "n2", Msg("m", i))
    send_at(world, 10 * MS, "n1", "n2", Msg("m", 8))  # the first five have landed: room again
    world.kernel.run()
    assert numbers(inboxes["n2"]) == [0, 1, 2, 3, 4, 8]
    assert check_totals(world)["dropped_queue_full"] == 3


def test_queue_capacity_is_exact_with_reordered_copies() -> None:
    link = LinkConfig(delay_ms_min=1, delay_ms_max=1, reorder_probability=0.5,
                      reorder_delay_ms_max=50, queue_capacity_messages=70)
    world, inboxes = make_world(link)
    for i in range(3000):
        send_at(world, i * MS // 10, "n1", "n2", Msg("m", i))
    world.kernel.run()
    stats = check_totals(world)
    assert stats["dropped_queue_full"] > 0 and stats["delivered"] == len(inboxes["n2"])
    # Replay: a copy was refused exactly when 70 earlier copies were still on their way.
    arrival = {message.number: time for time, _, message in inboxes["n2"]}
    for i in range(3000):
        sent = i * MS // 10
        in_flight = sum(1 for j in range(max(0, i - 600), i) if arrival.get(j, 0) > sent)
        assert in_flight < 70 if i in arrival else in_flight == 70


# -- partitions ------------------------------------------------------------------------------------
def exchange(world: World, time_ns: int, pairs: list[tuple[str, str]], number: int) -> None:
    for source, destination in pairs:
        send_at(world, time_ns, source, destination, Msg("m", number))


ALL_PAIRS = [(a, b) for a in ("n1", "n2", "n3") for b in ("n1", "n2", "n3") if a != b]


def heard(inboxes: dict[str, list[Received]], number: int) -> set[tuple[str, str]]:
    return {(source, name) for name, inbox in inboxes.items() for _, source, message in inbox
            if message.number == number}


def test_symmetric_partition_cuts_both_ways_until_healed() -> None:
    world, inboxes = make_world()
    cut = world.network.partition(["n1"], ["n2", "n3"])
    exchange(world, 0, ALL_PAIRS, 1)
    world.kernel.run(until_ns=10 * MS)
    assert heard(inboxes, 1) == {("n2", "n3"), ("n3", "n2")}
    assert world.network.statistics()["dropped_partition"] == 4
    cut.heal()
    assert not cut.active
    exchange(world, 20 * MS, ALL_PAIRS, 2)
    world.kernel.run()
    assert heard(inboxes, 2) == set(ALL_PAIRS)


def test_one_way_partition_cuts_one_direction_only() -> None:
    world, inboxes = make_world()
    world.network.partition_one_way(["n1"], ["n2"])
    exchange(world, 0, ALL_PAIRS, 1)
    world.kernel.run()
    assert heard(inboxes, 1) == set(ALL_PAIRS) - {("n1", "n2")}


def test_isolating_an_az_cuts_it_from_the_others_only() -> None:
    world, inboxes = make_world(azs={"az-a": ["n1", "n2"], "az-b": ["n3", "n4"]})
    isolation = world.network.isolate_az("az-b")
    pairs = [(a, b) for a in inboxes for b in inboxes if a != b]
    exchange(world, 0, pairs, 1)
    world.kernel.run(until_ns=10 * MS)
    assert heard(inboxes, 1) == {("n1", "n2"), ("n2", "n1"), ("n3", "n4"), ("n4", "n3")}
    isolation.heal()
    exchange(world, 20 * MS, pairs, 2)
    world.kernel.run()
    assert heard(inboxes, 2) == set(pairs)


def test_a_cut_loses_the_messages_in_flight_even_if_healed_before_they_land() -> None:
    world, inboxes = make_world(LinkConfig(delay_distribution="constant", delay_ms_min=10,
                                           delay_ms_max=10))
    world.network.send("n1", "n2", Msg("m", 1))
    world.network.send("n1", "n3", Msg("m", 2))
    world.kernel.run(until_ns=5 * MS)
    cut = world.network.partition(["n1"], ["n2"])
    world.kernel.run(until_ns=6 * MS)
    cut.heal()
    world.kernel.run()
    assert inboxes["n2"] == [] and numbers(inboxes["n3"]) == [2]
    assert check_totals(world)["dropped_partition"] == 1


def test_partition_groups_must_be_disjoint_lists() -> None:
    world, _ = make_world()
    with pytest.raises(ValueError, match=r"disjoint; both contain \['n2'\]"):
        world.network.partition(["n1", "n2"], ["n2"])
    with pytest.raises(ValueError, match="list of node names"):
        world.network.partition("n1", ["n2"])


# -- gray links ------------------------------------------------------------------------------------
def test_gray_link_drops_one_message_type_in_one_direction() -> None:
    world, inboxes = make_world()
    world.network.add_gray_link(GrayLink("n1", "n2", message_type="Heartbeat"))
    for source, destination in [("n1", "n2"), ("n2", "n1"), ("n1", "n3")]:
        world.network.send(source, destination, Heartbeat(1))
        world.network.send(source, destination, Msg("write", 2))
    world.kernel.run()
    assert [type(m).__name__ for _, _, m in inboxes["n2"]] == ["Msg"]
    assert [type(m).__name__ for _, _, m in inboxes["n1"]] == ["Heartbeat", "Msg"]
    assert len(inboxes["n3"]) == 2
    stats = world.network.statistics()
    assert stats["dropped_gray"] == 1 and stats["links"]["n1->n2"]["dropped_gray"] == 1


def test_gray_link_wildcard_matches_any_source_and_kind_attribute() -> None:
    world, inboxes = make_world()
    world.network.add_gray_link(GrayLink("*", "n2", message_type="vote"))
    world.network.send("n1", "n2", Msg("vote"))
    world.network.send("n3", "n2", Msg("vote"))
    world.network.send("n3", "n2", Msg("append"))
    world.network.send("n2", "n1", Msg("vote"))
    world.kernel.run()
    assert [m.kind for _, _, m in inboxes["n2"]] == ["append"] and len(inboxes["n1"]) == 1


def test_gray_link_drops_with_its_probability() -> None:
    world, inboxes = make_world()
    world.network.add_gray_link(GrayLink("n1", "n2", drop_probability=0.5))
    for i in range(2000):
        send_at(world, i * MS, "n1", "n2", Msg("m", i))
    world.kernel.run()
    assert 900 < world.network.statistics()["dropped_gray"] < 1100
    assert len(inboxes["n2"]) == 2000 - world.network.statistics()["dropped_gray"]


def test_slow_but_alive_gray_link_adds_delay_and_drops_nothing() -> None:
    world, inboxes = make_world()
    rule = world.network.add_gray_link(GrayLink("n1", "n2", drop_probability=0.0,
                                                extra_delay_ms=200))
    world.network.send("n1", "n2", Msg("m", 1))
    world.network.send("n2", "n1", Msg("m", 2))
    world.kernel.run()
    rule.heal()
    send_at(world, 300 * MS, "n1", "n2", Msg("m", 3))
    world.kernel.run()
    assert [time for time, _, _ in inboxes["n2"]] == [201 * MS, 301 * MS]
    assert inboxes["n1"][0][0] == 1 * MS


def test_flapping_gray_link_is_on_for_the_duty_fraction_of_each_period() -> None:
    world, inboxes = make_world()
    world.kernel.run(until_ns=5 * MS)  # flapping is measured from when the rule is added
    world.network.add_gray_link(GrayLink("n1", "n2", flap_period_ms=100, flap_duty=0.3))
    for i in range(100):
        send_at(world, 5 * MS + i * 10 * MS, "n1", "n2", Msg("m", i))
    world.kernel.run()
    assert numbers(inboxes["n2"]) == [i for i in range(100) if i % 10 >= 3]


# -- clogging --------------------------------------------------------------------------------------
def test_clogged_link_holds_messages_and_delivers_them_in_order_when_unclogged() -> None:
    world, inboxes = make_world()
    network = world.network
    network.clog_link("n1", "n2")
    network.clog_link("n1", "n2")  # clogs nest: it takes two unclogs
    for i in range(5):
        send_at(world, i * MS, "n1", "n2", Msg("m", i))
    send_at(world, 0, "n2", "n1", Msg("m", 99))  # the other direction is not clogged
    world.kernel.call_at(30 * MS, network.unclog_link, "n1", "n2")
    world.kernel.call_at(60 * MS, network.unclog_link, "n1", "n2")
    world.kernel.run(until_ns=50 * MS)
    assert inboxes["n2"] == [] and numbers(inboxes["n1"]) == [99]
    assert network.statistics()["held"] == 5
    world.kernel.run()
    assert numbers(inboxes["n2"]) == [0, 1, 2, 3, 4]
    assert {time for time, _, _ in inboxes["n2"]} == {61 * MS}
    assert check_totals(world)["clogged_held"] == 5


def test_a_cut_loses_the_messages_held_by_a_clog() -> None:
    world, inboxes = make_world()
    world.network.clog_link("n1", "n2")
    world.network.send("n1", "n2", Msg("m", 1))
    world.network.partition(["n1"], ["n2"]).heal()
    world.network.unclog_link("n1", "n2")
    world.kernel.run()
    assert inboxes["n2"] == [] and check_totals(world)["dropped_partition"] == 1


def swizzle_events(tmp_path: Path, seed: int) -> tuple[list[tuple[int, list[str]]], Any, list[int]]:
    world, inboxes = make_world(seed=seed, trace=Trace(tmp_path / f"swizzle-{seed}.jsonl"))
    swizzle = world.network.swizzle_clog(["n1"], interval_ms=10)
    for i in range(10):
        send_at(world, i * 10 * MS + 5 * MS, "n1", "n2", Msg("m", i))
    world.kernel.run()
    world.kernel.trace.close()
    events = [(e["t_ns"], e["detail"]) for e in read_trace(tmp_path / f"swizzle-{seed}.jsonl")
              if e["kind"] == "fault" and e["node"] is None]
    return events, swizzle, [time for time, _, _ in inboxes["n2"]]


def test_swizzle_clogs_links_one_by_one_then_unclogs_in_reverse(tmp_path: Path) -> None:
    events, swizzle, arrivals = swizzle_events(tmp_path, seed=1)
    order = swizzle.order
    assert sorted(order) == [("n1", "n2"), ("n1", "n3"), ("n2", "n1"), ("n3", "n1")]
    names = [f"{a}->{b}" for a, b in order]
    assert events == ([(i * 10 * MS, ["clog", name]) for i, name in enumerate(names)]
                      + [((4 + i) * 10 * MS, ["unclog", name])
                         for i, name in enumerate(reversed(names))])
    assert swizzle.finishes_at_ns == 70 * MS and not swizzle.active
    # n1->n2 is clogged from its clog step to its unclog step; messages sent meanwhile wait for it.
    clogged_at = names.index("n1->n2") * 10 * MS
    unclogged_at = (7 - names.index("n1->n2")) * 10 * MS
    expected = sorted(max(sent, unclogged_at) + MS if clogged_at <= sent < unclogged_at
                      else sent + MS for sent in (i * 10 * MS + 5 * MS for i in range(10)))
    assert arrivals == expected


def test_swizzle_order_is_drawn_from_the_seed(tmp_path: Path) -> None:
    orders = {tuple(swizzle_events(tmp_path, seed)[1].order) for seed in range(1, 6)}
    assert len(orders) > 1
    assert swizzle_events(tmp_path, 3)[0] == swizzle_events(tmp_path, 3)[0]


def test_healing_a_swizzle_unclogs_at_once_and_cancels_its_steps() -> None:
    world, inboxes = make_world()
    swizzle = world.network.swizzle_clog(["n1", "n2", "n3"], interval_ms=10)
    world.kernel.run(until_ns=25 * MS)  # three links clogged
    for source, destination in ALL_PAIRS:
        world.network.send(source, destination, Msg("m", 1))
    swizzle.heal()
    world.kernel.run()
    assert heard(inboxes, 1) == set(ALL_PAIRS) and not swizzle.active
    assert world.network.statistics()["clogged_held"] == 3


# -- healing, statistics, determinism, crashes -----------------------------------------------------
def test_heal_all_restores_every_link_and_releases_held_messages() -> None:
    world, inboxes = make_world()
    network = world.network
    network.partition(["n1"], ["n2"])
    network.partition_one_way(["n3"], ["n1"])
    network.clog_link("n2", "n3")
    network.send("n2", "n3", Msg("m", 0))  # held by the clog
    network.add_gray_link(GrayLink("*", "*"))  # a black hole for everything sent from now on
    network.send("n1", "n3", Msg("m", 0))
    network.heal_all()
    assert network.active_faults() == []
    exchange(world, MS, ALL_PAIRS, 1)
    world.kernel.run()
    assert heard(inboxes, 1) == set(ALL_PAIRS) and heard(inboxes, 0) == {("n2", "n3")}


def test_statistics_count_every_outcome_per_link() -> None:
    world, _ = make_world(LinkConfig(loss_probability=0.1, duplicate_probability=0.1,
                                     reorder_probability=0.1))
    world.network.partition_one_way(["n3"], ["n1"])
    world.network.clog_link("n2", "n3")
    for i in range(300):
        for source, destination in ALL_PAIRS:
            send_at(world, i * MS, source, destination, Msg("m", i))
    world.kernel.run(until_ns=150 * MS - 1)
    stats = check_totals(world)
    assert stats["in_flight"] > 0 and stats["held"] == stats["clogged_held"] == 150
    world.network.unclog_link("n2", "n3")
    world.kernel.run()
    stats = check_totals(world)
    assert stats["messages_sent"] == 1800 and stats["links"]["n3->n1"]["dropped_partition"] == 300
    assert sorted(stats["links"]) == sorted(f"{a}->{b}" for a, b in ALL_PAIRS)
    assert stats["dropped_loss"] > 0 and stats["duplicated"] > 0 and stats["reordered"] > 0
    assert stats["bytes_sent"] == 1800 * 128 and stats["in_flight"] == stats["held"] == 0
    assert stats["clogged_held"] == 150  # held until the unclog, then sent on


def lossy_run(seed: int) -> tuple[list[tuple[int, str, int]], str]:
    world, inboxes = make_world(LinkConfig(delay_ms_min=1, delay_ms_max=30, loss_probability=0.2,
                                           duplicate_probability=0.1, reorder_probability=0.1),
                                seed=seed)
    for i in range(200):
        exchange(world, i * MS, ALL_PAIRS, i)
    world.kernel.run()
    received = [(time, source + name, message.number) for name, inbox in inboxes.items()
                for time, source, message in inbox]
    return received, world.kernel.trace.digest()


def test_same_seed_same_deliveries_different_seed_different() -> None:
    assert lossy_run(7) == lossy_run(7)
    assert lossy_run(7)[0] != lossy_run(8)[0]
    assert lossy_run(7)[1] != lossy_run(8)[1]


def test_messages_to_a_crashed_node_are_not_delivered() -> None:
    world, inboxes = make_world(LinkConfig(delay_distribution="constant", delay_ms_min=10,
                                           delay_ms_max=10))
    world.network.send("n1", "n2", Msg("m", 1))  # in flight when n2 crashes
    world.kernel.run(until_ns=5 * MS)
    world.nodes["n2"].crash()
    world.network.send("n1", "n2", Msg("m", 2))  # arrives while n2 is down
    world.kernel.run(until_ns=50 * MS)
    world.nodes["n2"].start()
    world.network.send("n1", "n2", Msg("m", 3))
    world.kernel.run()
    assert numbers(inboxes["n2"]) == [3]
    assert world.kernel.dropped_stale == 1 and world.nodes["n2"].stats.messages_dropped_down == 1


def test_configure_link_overrides_one_direction_only() -> None:
    world, inboxes = make_world()
    slow = LinkConfig(delay_distribution="constant", delay_ms_min=7, delay_ms_max=7)
    world.network.configure_link("n1", "n2", slow)
    assert world.network.link_config("n1", "n2") is slow
    assert world.network.link_config("n2", "n1") is CONSTANT_1MS
    world.network.send("n1", "n2", Msg("m"))
    world.network.send("n2", "n1", Msg("m"))
    world.kernel.run()
    assert inboxes["n2"][0][0] == 7 * MS and inboxes["n1"][0][0] == 1 * MS
    with pytest.raises(TypeError, match="LinkConfig"):
        world.network.configure_link("n1", "n2", {"delay_ms_min": 1})  # type: ignore[arg-type]


def test_set_link_defaults_changes_links_without_an_override() -> None:
    world, inboxes = make_world()
    world.network.send("n1", "n3", Msg("m"))  # creates the link with the old default
    world.network.configure_link("n1", "n2", CONSTANT_1MS)
    world.network.set_link_defaults(LinkConfig(delay_distribution="constant", delay_ms_min=3,
                                               delay_ms_max=3))
    send_at(world, 10 * MS, "n1", "n3", Msg("m"))
    send_at(world, 10 * MS, "n1", "n2", Msg("m"))
    world.kernel.run()
    assert [time for time, _, _ in inboxes["n3"]] == [1 * MS, 13 * MS]
    assert inboxes["n2"][0][0] == 11 * MS
