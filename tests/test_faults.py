"""Every fault kind, applied through the timeline as a scenario would apply it, takes effect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from harness import FAULT_KINDS, DiskFullError, NodeContext, ScheduledFault, Topology, World
from harness import faults as f
from harness.timeline import FaultProfile, FaultTimeline, expand_profile

MS = 1_000_000
SECOND = 1_000_000_000
TESTED_KINDS: set[str] = set()


def covers(kind: str):  # type: ignore[no-untyped-def]
    """Mark a test as the proof for one fault kind (``test_every_fault_kind_is_tested`` checks)."""
    TESTED_KINDS.add(kind)
    return lambda test: test


@dataclass(frozen=True)
class Ping:
    sent_local_ns: int


@dataclass(frozen=True)
class Other:
    pass


class Pinger:
    """Sends a Ping and an Other to every other node every 10 ms; records what it receives."""

    def __init__(self, ctx: NodeContext, log: list[tuple[int, str, str, str]]) -> None:
        self.ctx, self.log = ctx, log

    def on_start(self) -> None:
        self.ctx.set_timer(10 * MS, self.tick)

    def tick(self) -> None:
        for peer in self.ctx.nodes:
            if peer != self.ctx.name:
                self.ctx.send(peer, Ping(self.ctx.now_ns()))
                self.ctx.send(peer, Other())
        self.ctx.set_timer(10 * MS, self.tick)

    def on_message(self, source: str, message: Any) -> None:
        self.log.append((self.ctx.now_ns(), source, self.ctx.name, type(message).__name__))


def make_world(seed: int = 1) -> tuple[World, list[tuple[int, str, str, str]], FaultTimeline]:
    world = World(seed, Topology.from_azs({"az-a": ["n1"], "az-b": ["n2"], "az-c": ["n3"]}))
    log: list[tuple[int, str, str, str]] = []
    for name in world.node_names():
        world.node(name).install(lambda ctx: Pinger(ctx, log))
        world.node(name).start()
    return world, log, FaultTimeline(world)


def received(log: list[tuple[int, str, str, str]], source: str, destination: str,
             start_ns: int, end_ns: int, kind: str | None = None) -> int:
    """Messages source→destination received in [start, end) of the destination's local time."""
    return sum(1 for at, src, dst, k in log if src == source and dst == destination
               and start_ns <= at < end_ns and (kind is None or k == kind))


def strike(timeline: FaultTimeline, at_s: float, fault: f.Fault) -> None:
    timeline.schedule(ScheduledFault(at_s, fault))


# -- network ------------------------------------------------------------------------------------
@covers("partition")
def test_partition_cuts_both_directions_then_heals() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.Partition(side_a=("n1",), duration_s=1.0))
    world.kernel.run(until_ns=3 * SECOND)
    during = (1 * SECOND + 20 * MS, 2 * SECOND)
    assert received(log, "n1", "n2", *during) == 0 and received(log, "n2", "n1", *during) == 0
    assert received(log, "n2", "n3", *during) > 0
    assert received(log, "n1", "n2", 2 * SECOND + 20 * MS, 3 * SECOND) > 0
    assert world.network.statistics()["dropped_partition"] > 0


@covers("one_way_partition")
def test_one_way_partition_cuts_one_direction() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.OneWayPartition(sources=("n1",), destinations=("n2",), duration_s=1.0))
    world.kernel.run(until_ns=2 * SECOND)
    assert received(log, "n1", "n2", 1 * SECOND + 20 * MS, 2 * SECOND) == 0
    assert received(log, "n2", "n1", 1 * SECOND + 20 * MS, 2 * SECOND) > 0


@covers("isolate_az")
def test_isolate_az_cuts_the_zone_off() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.IsolateAz(az="az-c"))
    world.kernel.run(until_ns=2 * SECOND)
    window = (1 * SECOND + 20 * MS, 2 * SECOND)
    assert received(log, "n3", "n1", *window) == 0 and received(log, "n1", "n3", *window) == 0
    assert received(log, "n1", "n2", *window) > 0


@covers("gray_link")
def test_gray_link_drops_one_type_in_one_direction() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.GrayLinkFault(source="n1", destination="n2", message_type="Ping"))
    world.kernel.run(until_ns=2 * SECOND)
    window = (1 * SECOND + 20 * MS, 2 * SECOND)
    assert received(log, "n1", "n2", *window, kind="Ping") == 0
    assert received(log, "n1", "n2", *window, kind="Other") > 0
    assert received(log, "n2", "n1", *window, kind="Ping") > 0


def test_gray_link_can_corrupt_messages_in_flight() -> None:
    world, log, timeline = make_world()
    damaged: list[Any] = []

    @dataclass(frozen=True)
    class Fragile:
        intact: bool = True

        def corrupted(self, rng: Any) -> "Fragile":
            return Fragile(intact=False)

    strike(timeline, 0.5, f.GrayLinkFault(source="n1", destination="n2", drop_probability=0.0,
                                          corrupt_probability=1.0))
    world.kernel.run(until_ns=1 * SECOND)
    world.node("n2").on_message = lambda source, message: damaged.append(message)
    world.network.send("n1", "n2", Fragile())
    world.network.send("n1", "n2", b"\x00\x00")
    world.network.send("n2", "n1", Fragile())  # the other direction is untouched
    world.kernel.run(until_ns=2 * SECOND)
    assert Fragile(intact=False) in damaged and Fragile() not in damaged
    assert any(isinstance(m, bytes) and m != b"\x00\x00" and len(m) == 2 for m in damaged)
    assert world.network.statistics()["corrupted"] > 0


@covers("swizzle_clog")
def test_swizzle_clog_holds_messages_and_releases_them() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.SwizzleClog(nodes=("n1",), interval_ms=100))
    world.kernel.run(until_ns=int(1.45 * SECOND))
    assert world.network.statistics()["held"] > 0
    world.kernel.run(until_ns=4 * SECOND)
    stats = world.network.statistics()
    assert stats["held"] == 0 and stats["clogged_held"] > 0


@covers("degrade_link")
def test_degrade_link_adds_loss_and_delay() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.DegradeLink(source="n1", destination="n2", delay_ms_min=50,
                                        delay_ms_max=60, loss_probability=0.5, duration_s=2.0))
    world.kernel.run(until_ns=4 * SECOND)
    assert world.network.statistics()["dropped_loss"] > 0
    assert world.network.link_config("n1", "n2").loss_probability == 0.0  # undone after 2 s


# -- process -------------------------------------------------------------------------------------
@covers("crash")
def test_crash_stops_the_node_and_restarts_it_after_the_duration() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.Crash(node="n2", duration_s=1.0))
    world.kernel.run(until_ns=int(1.5 * SECOND))
    assert not world.node("n2").is_up
    assert received(log, "n2", "n1", int(1.02 * SECOND), int(1.5 * SECOND)) == 0
    world.kernel.run(until_ns=3 * SECOND)
    assert world.node("n2").is_up and world.node("n2").stats.starts == 2


@covers("restart")
def test_restart_boots_a_fresh_incarnation() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.Restart(node="n1"))
    world.kernel.run(until_ns=2 * SECOND)
    node = world.node("n1")
    assert node.is_up and node.stats.starts == 2 and node.stats.crashes == 1 and node.epoch == 1


@covers("pause")
def test_pause_stalls_a_node_then_it_resumes() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.Pause(node="n1", duration_s=1.0))
    world.kernel.run(until_ns=3 * SECOND)
    assert received(log, "n1", "n2", int(1.02 * SECOND), 2 * SECOND) == 0  # its timers stalled
    assert received(log, "n1", "n2", int(2.05 * SECOND), 3 * SECOND) > 0
    # Messages sent to it during the pause are delivered after it resumes, none lost.
    late = [at for at, src, dst, _ in log if dst == "n1" and at >= 2 * SECOND]
    assert late and world.node("n1").stats.pauses == 1


@covers("power_off")
def test_power_off_keeps_the_node_down_until_power_on() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.PowerOff(node="n3", duration_s=2.0))
    world.kernel.run(until_ns=2 * SECOND)
    assert world.node("n3").state == "off"
    world.kernel.run(until_ns=4 * SECOND)
    assert world.node("n3").is_up


@covers("power_off_az")
def test_power_off_az_takes_down_every_node_in_the_zone() -> None:
    world = World(1, Topology.from_azs({"az-a": ["n1", "n2"], "az-b": ["n3"]}))
    log: list[tuple[int, str, str, str]] = []
    for name in world.node_names():
        world.node(name).install(lambda ctx: Pinger(ctx, log))
        world.node(name).start()
    timeline = FaultTimeline(world)
    strike(timeline, 1.0, f.PowerOffAz(az="az-a"))
    world.kernel.run(until_ns=2 * SECOND)
    assert [world.node(n).state for n in ("n1", "n2", "n3")] == ["off", "off", "running"]
    timeline.undo_all()
    assert all(world.node(n).is_up for n in ("n1", "n2", "n3"))


# Power losses stack: a node stays off while any power loss covering it is in force.
def az_world() -> tuple[World, FaultTimeline]:
    world = World(1, Topology.from_azs({"az-a": ["s1", "s2"], "az-b": ["s3"]}))
    log: list[tuple[int, str, str, str]] = []
    for name in world.node_names():
        world.node(name).install(lambda ctx: Pinger(ctx, log))
        world.node(name).start()
    return world, FaultTimeline(world)


# Two faults on one node, (start, duration) each: the second inside the first, or outlasting it.
overlapping = pytest.mark.parametrize(
    "first, second", [((1.0, 4.0), (2.0, 1.0)), ((1.0, 2.0), (2.0, 3.0))],
    ids=["inner-ends-first", "outer-ends-first"])


def state_at(world: World, at_s: float, *names: str) -> list[str]:
    world.kernel.run(until_ns=round(at_s * SECOND))
    return [world.node(name).state for name in names]


@overlapping
def test_overlapping_power_offs_hold_the_node_off_until_the_last_one_ends(
        first: tuple[float, float], second: tuple[float, float]) -> None:
    world, log, timeline = make_world()
    for at_s, duration_s in (first, second):
        strike(timeline, at_s, f.PowerOff(node="n1", duration_s=duration_s))
    assert state_at(world, 3.5, "n1") == ["off"]  # one of the two has ended, the other holds
    assert received(log, "n1", "n2", 3 * SECOND, int(4.9 * SECOND)) == 0
    assert state_at(world, 5.5, "n1") == ["running"]
    node = world.node("n1")
    assert (node.stats.power_offs, node.stats.starts) == (1, 2)  # one outage, one boot
    assert received(log, "n1", "n2", int(5.1 * SECOND), int(5.5 * SECOND)) > 0


def test_a_node_powered_off_inside_its_dark_az_stays_off_until_the_az_returns() -> None:
    world, timeline = az_world()
    strike(timeline, 5.0, f.PowerOff(node="s1", duration_s=10.0))  # 5 s to 15 s
    strike(timeline, 10.0, f.PowerOffAz(az="az-a", duration_s=20.0))  # 10 s to 30 s
    assert state_at(world, 12.0, "s1", "s2", "s3") == ["off", "off", "running"]
    assert state_at(world, 20.0, "s1", "s2", "s3") == ["off", "off", "running"]  # s1's own ended
    assert state_at(world, 30.5, "s1", "s2", "s3") == ["running"] * 3
    assert world.node("s1").stats.starts == 2 and world.node("s2").stats.starts == 2


def test_a_dark_az_returns_but_a_node_whose_own_power_loss_lasts_stays_off() -> None:
    world, timeline = az_world()
    strike(timeline, 1.0, f.PowerOffAz(az="az-a", duration_s=2.0))  # 1 s to 3 s
    strike(timeline, 2.0, f.PowerOff(node="s1", duration_s=3.0))  # 2 s to 5 s
    assert state_at(world, 4.0, "s1", "s2") == ["off", "running"]
    assert state_at(world, 5.5, "s1", "s2") == ["running", "running"]


def test_the_heal_phase_powers_on_nodes_held_by_several_power_losses() -> None:
    world, timeline = az_world()
    strike(timeline, 1.0, f.PowerOff(node="s1"))
    strike(timeline, 2.0, f.PowerOffAz(az="az-a"))
    assert state_at(world, 3.0, "s1", "s2") == ["off", "off"]
    timeline.undo_all()
    assert world.node("s1").is_up and world.node("s2").is_up


def test_a_restart_or_crash_of_a_powered_off_node_is_skipped_and_does_not_power_it_on() -> None:
    world, _, timeline = make_world()
    strike(timeline, 1.0, f.PowerOff(node="n1", duration_s=4.0))  # 1 s to 5 s
    strike(timeline, 2.0, f.Restart(node="n1"))
    strike(timeline, 2.5, f.Crash(node="n1", duration_s=1.0))  # would restart it at 3.5 s
    assert state_at(world, 4.5, "n1") == ["off"]
    assert [entry.description for entry in timeline.log[1:]] == [
        "skipped restart(node=n1): n1 is powered off; the restart is skipped",
        "skipped crash(node=n1, duration_s=1): n1 is powered off; the crash is skipped"]
    assert state_at(world, 5.5, "n1") == ["running"]
    node = world.node("n1")
    assert (node.stats.starts, node.stats.crashes, node.stats.power_offs) == (2, 0, 1)


def test_a_crash_that_outlasts_a_later_power_loss_ends_when_the_power_returns() -> None:
    # Documented, unchanged: powering a machine on boots it, whatever crashed its process before.
    world, _, timeline = make_world()
    strike(timeline, 1.0, f.Crash(node="n1", duration_s=4.0))  # would restart it at 5 s
    strike(timeline, 2.0, f.PowerOff(node="n1", duration_s=1.0))
    assert state_at(world, 2.5, "n1") == ["off"]
    assert state_at(world, 3.5, "n1") == ["running"]
    assert state_at(world, 5.5, "n1") == ["running"] and world.node("n1").stats.starts == 2


def test_a_second_crash_of_a_crashed_node_is_skipped_and_does_not_restart_it_early() -> None:
    world, _, timeline = make_world()
    strike(timeline, 1.0, f.Crash(node="n1", duration_s=5.0))  # 1 s to 6 s
    strike(timeline, 2.0, f.Crash(node="n1", duration_s=1.0))  # would restart it at 3 s
    strike(timeline, 2.5, f.Restart(node="n1"))
    assert state_at(world, 4.0, "n1") == ["crashed"]
    assert [entry.description for entry in timeline.log[1:]] == [
        "skipped crash(node=n1, duration_s=1): n1 is down (crashed); the crash is skipped",
        "skipped restart(node=n1): n1 is down (crashed); the restart is skipped"]
    assert state_at(world, 6.5, "n1") == ["running"]
    node = world.node("n1")
    assert (node.stats.crashes, node.stats.starts) == (1, 2)
    assert node.outages == [[1 * SECOND, 6 * SECOND]]


def test_a_crashed_node_losing_power_has_one_outage() -> None:
    world, _, timeline = make_world()
    strike(timeline, 1.0, f.Crash(node="n1", duration_s=1.0))  # its restart is refused: no power
    strike(timeline, 1.5, f.PowerOff(node="n1", duration_s=2.0))
    assert state_at(world, 4.0, "n1") == ["running"]
    assert world.node("n1").outages == [[1 * SECOND, round(3.5 * SECOND)]]


@overlapping
def test_overlapping_pauses_stall_the_node_until_the_last_one_ends(
        first: tuple[float, float], second: tuple[float, float]) -> None:
    world, log, timeline = make_world()
    for at_s, duration_s in (first, second):
        strike(timeline, at_s, f.Pause(node="n1", duration_s=duration_s))
    world.kernel.run(until_ns=round(3.5 * SECOND))  # one of the two has ended, the other holds
    assert world.node("n1").paused
    assert received(log, "n1", "n2", int(1.1 * SECOND), int(4.9 * SECOND)) == 0
    world.kernel.run(until_ns=round(5.5 * SECOND))
    assert not world.node("n1").paused and world.node("n1").stats.pauses == 1
    assert received(log, "n1", "n2", int(5.1 * SECOND), int(5.5 * SECOND)) > 0


def test_a_crash_ends_every_pause_and_the_next_incarnation_runs() -> None:
    world, log, timeline = make_world()
    strike(timeline, 1.0, f.Pause(node="n1", duration_s=10.0))
    strike(timeline, 2.0, f.Restart(node="n1"))
    world.kernel.run(until_ns=3 * SECOND)
    assert not world.node("n1").paused and world.node("n1").pause_holds == {}
    assert received(log, "n1", "n2", int(2.1 * SECOND), 3 * SECOND) > 0


def multiplier_at(world: World, at_s: float) -> float:
    world.kernel.run(until_ns=round(at_s * SECOND))
    return world.node("n1").disk.latency_multiplier


def test_overlapping_disk_fail_slows_compose_the_slowest_holds() -> None:
    world, _, timeline = make_world()
    strike(timeline, 1.0, f.DiskFailSlow(node="n1", latency_multiplier=10, duration_s=9.0))
    strike(timeline, 5.0, f.DiskFailSlow(node="n1", latency_multiplier=50, duration_s=7.0))
    strike(timeline, 6.0, f.DiskFailSlow(node="n1", latency_multiplier=2, duration_s=1.0))
    assert [multiplier_at(world, t) for t in (2, 5.5, 6.5, 7.5, 11, 13)] == [
        10, 50, 50, 50, 50, 1]  # the first's end (10 s) leaves the second's x50 until 12 s
    assert world.node("n1").fault_holds == {}


def test_overlapping_drifts_the_newest_still_held_applies_then_the_base_returns() -> None:
    world, _, timeline = make_world()
    world.node("n1").clock.set_drift(0, 30.0)  # the node's own drift, before any fault
    strike(timeline, 1.0, f.ClockDrift(node="n1", drift_ppm=-5000, duration_s=11.0))  # to 12 s
    strike(timeline, 10.0, f.ClockDrift(node="n1", drift_ppm=1000, duration_s=5.0))  # to 15 s
    rates = []
    for t in (5, 11, 13, 16):
        world.kernel.run(until_ns=t * SECOND)
        rates.append(world.node("n1").clock.drift_ppm)
    assert rates == [-5000, 1000, 1000, 30.0]


def test_overlapping_link_degradations_the_newest_holds_then_the_link_heals() -> None:
    world, _, timeline = make_world()
    network = world.network
    healthy = network.link_config("n1", "n2")
    strike(timeline, 1.0, f.DegradeLink(source="n1", destination="n2", loss_probability=0.5,
                                        duration_s=2.0))  # 1 s to 3 s
    strike(timeline, 2.0, f.DegradeLink(source="n1", destination="n2", loss_probability=0.1,
                                        duration_s=3.0))  # 2 s to 5 s
    seen = []
    for t in (1.5, 2.5, 4, 6):
        world.kernel.run(until_ns=round(t * SECOND))
        seen.append(network.link_config("n1", "n2").loss_probability)
    assert seen == [0.5, 0.1, 0.1, healthy.loss_probability]
    assert network.link_config("n1", "n2") == healthy


def test_overlapping_torn_writes_the_likeliest_loss_holds_then_whole_writes_again() -> None:
    world, _, timeline = make_world()
    disk = world.node("n1").disk
    strike(timeline, 1.0, f.TornWrites(node="n1", sector_lost_probability=0.9, duration_s=2.0))
    strike(timeline, 2.0, f.TornWrites(node="n1", sector_lost_probability=0.2, duration_s=3.0))
    seen = []
    for t in (1.5, 2.5, 4, 6):
        world.kernel.run(until_ns=round(t * SECOND))
        seen.append(disk.torn_sector_lost_probability)
    assert seen == [0.9, 0.9, 0.2, None]


# -- disk ----------------------------------------------------------------------------------------
@covers("disk_fail_slow")
def test_disk_fail_slow_multiplies_fsync_latency() -> None:
    world, _, timeline = make_world()
    disk = world.node("n1").disk
    strike(timeline, 1.0, f.DiskFailSlow(node="n1", latency_multiplier=50))
    world.kernel.run(until_ns=int(1.001 * SECOND))
    disk.append("f", b"x")
    started = world.kernel.now_ns
    done = disk.fsync("f")
    world.kernel.run(until_ns=started + 10 * world.node("n1").disk.config.fsync_latency_ms * MS)
    assert not done.done()  # 10x the normal latency is not enough at 50x
    world.kernel.run(until_ns=started + 60 * int(world.node("n1").disk.config.fsync_latency_ms * MS))
    assert done.done()


@covers("torn_writes")
def test_torn_writes_lose_some_unsynced_sectors_at_a_crash() -> None:
    world, _, timeline = make_world(seed=3)
    disk = world.node("n1").disk
    disk.write("wal", 0, b"\0" * 4096)
    disk.fsync_now("wal")
    strike(timeline, 0.5, f.TornWrites(node="n1", sector_lost_probability=0.5))
    world.kernel.run(until_ns=1 * SECOND)
    disk.write("wal", 0, b"\xff" * 4096)
    world.node("n1").crash()
    after = disk.read("wal")
    sectors = {after[i:i + 512] for i in range(0, 4096, 512)}
    assert sectors == {b"\0" * 512, b"\xff" * 512}  # some sectors landed, some did not


@covers("bit_rot")
def test_bit_rot_flips_a_stored_bit() -> None:
    world, _, timeline = make_world()
    disk = world.node("n2").disk
    disk.write("data", 0, b"\0" * 64)
    disk.fsync_now("data")
    strike(timeline, 1.0, f.BitRotAtRest(node="n2", path="data"))
    world.kernel.run(until_ns=2 * SECOND)
    stored = disk.read("data")
    assert stored != b"\0" * 64 and sum(bin(byte).count("1") for byte in stored) == 1


@covers("read_corruption")
def test_read_corruption_returns_flipped_bits_but_keeps_data() -> None:
    world, _, timeline = make_world()
    disk = world.node("n2").disk
    disk.write("data", 0, b"\0" * 64)
    strike(timeline, 1.0, f.BitRotOnRead(node="n2", probability=1.0, duration_s=1.0))
    world.kernel.run(until_ns=int(1.5 * SECOND))
    assert disk.read("data") != b"\0" * 64
    world.kernel.run(until_ns=3 * SECOND)
    assert disk.read("data") == b"\0" * 64


@covers("misdirected_writes")
def test_misdirected_writes_land_elsewhere() -> None:
    world, _, timeline = make_world()
    disk = world.node("n2").disk
    disk.write("data", 0, b"\0" * 2048)
    strike(timeline, 1.0, f.MisdirectedWrites(node="n2", probability=1.0))
    world.kernel.run(until_ns=2 * SECOND)
    disk.write("data", 0, b"\xff" * 512)
    assert disk.read("data", 0, 512) == b"\0" * 512
    assert b"\xff" * 512 in disk.read("data")


@covers("disk_full")
def test_disk_full_refuses_writes_with_enospc() -> None:
    world, _, timeline = make_world()
    disk = world.node("n1").disk
    strike(timeline, 1.0, f.DiskFull(node="n1", duration_s=1.0))
    world.kernel.run(until_ns=int(1.5 * SECOND))
    with pytest.raises(DiskFullError):
        disk.append("wal", b"x")
    world.kernel.run(until_ns=3 * SECOND)
    disk.append("wal", b"x")


@covers("wipe_disk")
def test_wipe_disk_replaces_the_node_with_an_empty_one() -> None:
    world, _, timeline = make_world()
    disk = world.node("n3").disk
    disk.write("data", 0, b"keep")
    disk.fsync_now("data")
    strike(timeline, 1.0, f.WipeDisk(node="n3"))
    world.kernel.run(until_ns=2 * SECOND)
    assert disk.list() == [] and world.node("n3").is_up and world.node("n3").stats.starts == 2


# -- clock ---------------------------------------------------------------------------------------
@covers("clock_skew")
def test_clock_skew_offsets_local_time() -> None:
    world, _, timeline = make_world()
    strike(timeline, 1.0, f.ClockSkew(node="n1", offset_ms=250))
    world.kernel.run(until_ns=2 * SECOND)
    assert world.node("n1").local_now_ns() - world.kernel.now_ns == 250 * MS
    assert world.node("n2").local_now_ns() == world.kernel.now_ns


@covers("clock_drift")
def test_clock_drift_makes_a_clock_run_fast() -> None:
    world, _, timeline = make_world()
    strike(timeline, 1.0, f.ClockDrift(node="n1", drift_ppm=100_000))
    world.kernel.run(until_ns=11 * SECOND)
    assert world.node("n1").local_now_ns() == 1 * SECOND + 11 * SECOND  # 10 s at +10%


@covers("clock_jump")
def test_clock_jump_moves_pending_timers() -> None:
    world, log, timeline = make_world()
    fired: list[int] = []
    node = world.node("n1")
    world.kernel.run(until_ns=1 * SECOND)
    node.set_timer(10 * SECOND, lambda: fired.append(world.kernel.now_ns))
    strike(timeline, 2.0, f.ClockJump(node="n1", by_ms=5000))
    world.kernel.run(until_ns=20 * SECOND)
    assert fired == [6 * SECOND]  # due at local 11 s; local jumped 5 s ahead at true 2 s


# -- profiles and the catalogue ------------------------------------------------------------------
def test_random_profile_draws_the_same_schedule_from_the_same_seed() -> None:
    profile = FaultProfile(crash_per_minute=6, pause_per_minute=6, partition_per_minute=3,
                           gray_link_per_minute=3, clock_jump_per_minute=2, clock_skew_ms_max=50)
    world, _, _ = make_world()

    def schedule(seed: int) -> list[str]:
        from harness.rng import Rng

        return [s.describe() for s in expand_profile(profile, world, Rng(seed), 0.0, 60.0)]

    assert schedule(1) == schedule(1)
    assert schedule(1) != schedule(2)
    assert {"crash", "pause", "partition", "gray_link", "clock_jump", "clock_skew"} <= {
        entry.split("(")[0].split()[-1] for entry in schedule(1)}


def test_turning_one_family_on_does_not_shift_another() -> None:
    world, _, _ = make_world()
    from harness.rng import Rng

    crashes_only = expand_profile(FaultProfile(crash_per_minute=6), world, Rng(5), 0, 60)
    with_pauses = expand_profile(FaultProfile(crash_per_minute=6, pause_per_minute=6), world,
                                 Rng(5), 0, 60)
    assert crashes_only == [s for s in with_pauses if s.fault.kind == "crash"]


def test_profile_drift_gives_every_target_its_own_rate_for_the_whole_phase() -> None:
    from harness.rng import Rng

    world, _, _ = make_world()
    profile = FaultProfile(clock_drift_ppm_max=20_000, crash_per_minute=6)
    drawn = expand_profile(profile, world, Rng(3), 2.0, 60.0)
    drifts = [s for s in drawn if s.fault.kind == "clock_drift"]
    servers = sorted(n.name for n in world.nodes.values() if n.role == "server")
    assert sorted(s.fault.node for s in drifts) == servers  # one rate per node
    assert all(s.at_s == 2.0 and s.fault.duration_s is None for s in drifts)  # until the heal
    rates = [s.fault.drift_ppm for s in drifts]
    assert all(-20_000 <= rate <= 20_000 for rate in rates) and len(set(rates)) == len(rates)
    # turning drift on shifts no other family's draws
    assert [s for s in drawn if s.fault.kind != "clock_drift"] == expand_profile(
        FaultProfile(crash_per_minute=6), world, Rng(3), 2.0, 60.0)


# -- deployments (more in test_deploy.py) -----------------------------------------------------------
@covers("deploy")
def test_deploy_restarts_nodes_into_the_installed_version() -> None:
    from deployable_system import deployable_world

    world, system, timeline = deployable_world()
    strike(timeline, 1.0, f.Deploy(version="v2", nodes=("s1",), handoff=False, downtime_s=0.5))
    world.kernel.run(until_ns=5 * SECOND)
    assert system.boots[-1] == (round(1.5 * SECOND), "s1", "v2", True)
    assert world.node("s1").outages == [[1 * SECOND, round(1.5 * SECOND)]]


@covers("rollback")
def test_rollback_restores_the_previous_version() -> None:
    from deployable_system import deployable_world

    world, system, timeline = deployable_world()
    strike(timeline, 1.0, f.Deploy(version="v2", name="d", nodes=("s1",), handoff=False))
    strike(timeline, 3.0, f.Rollback(deployment="d"))
    world.kernel.run(until_ns=10 * SECOND)
    assert [b[2:] for b in system.boots if b[1] == "s1"] == [("v1", False), ("v2", True),
                                                            ("v1", False)]


def test_every_fault_kind_is_tested() -> None:
    assert TESTED_KINDS == set(FAULT_KINDS), sorted(set(FAULT_KINDS) ^ TESTED_KINDS)
