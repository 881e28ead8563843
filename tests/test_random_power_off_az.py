"""Random power losses of whole availability zones (``FaultProfile.power_off_az_per_minute``, S12)."""

from __future__ import annotations

from typing import Any

import pytest

from harness import ScenarioError, Topology, World, parse_scenario
from harness.faults import PowerOffAz
from harness.rng import Rng
from harness.timeline import FaultProfile, FaultTimeline, expand_profile

SECOND = 1_000_000_000
TOPOLOGY = {"az-a": ["n1", "n2"], "az-b": ["n3"], "az-c": ["n4"]}


class Idle:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def on_message(self, source: str, message: Any) -> None:
        pass


def make_world(seed: int = 1) -> World:
    world = World(seed, Topology.from_azs(TOPOLOGY))
    for name in world.node_names():
        world.node(name).install(Idle)
        world.node(name).start()
    return world


def test_az_power_losses_are_drawn_from_the_seed_within_their_bounds() -> None:
    profile = FaultProfile(power_off_az_per_minute=6, power_off_az_s_min=2, power_off_az_s_max=4)
    world = make_world()
    drawn = expand_profile(profile, world, Rng(3), 0.0, 120.0)
    assert drawn == expand_profile(profile, world, Rng(3), 0.0, 120.0)
    assert drawn != expand_profile(profile, world, Rng(4), 0.0, 120.0)
    faults = [scheduled.fault for scheduled in drawn]
    assert 4 <= len(faults) <= 30 and all(isinstance(fault, PowerOffAz) for fault in faults)
    assert {fault.az for fault in faults} == {"az-a", "az-b", "az-c"}
    assert all(2 <= fault.duration_s <= 4 for fault in faults)  # type: ignore[operator]


def test_only_the_zones_of_the_target_nodes_lose_power() -> None:
    profile = FaultProfile(power_off_az_per_minute=6, nodes=("n2", "n4"))
    drawn = expand_profile(profile, make_world(), Rng(3), 0.0, 120.0)
    assert drawn and {scheduled.fault.az for scheduled in drawn} == {"az-a", "az-c"}


def test_adding_az_power_losses_shifts_no_other_family() -> None:
    world = make_world()
    nodes_only = expand_profile(FaultProfile(power_off_per_minute=6), world, Rng(5), 0, 60)
    both = expand_profile(FaultProfile(power_off_per_minute=6, power_off_az_per_minute=6), world,
                          Rng(5), 0, 60)
    assert nodes_only == [s for s in both if s.fault.kind == "power_off"]
    assert any(s.fault.kind == "power_off_az" for s in both)


def test_a_drawn_az_power_loss_darkens_the_whole_zone_for_its_duration() -> None:
    world = make_world()
    profile = FaultProfile(power_off_az_per_minute=6, power_off_az_s_min=1, power_off_az_s_max=1)
    first = expand_profile(profile, world, Rng(3), 0.0, 120.0)[0]
    timeline = FaultTimeline(world)
    timeline.schedule(first)
    strike_ns = round(first.at_s * SECOND)
    world.kernel.run(until_ns=strike_ns + SECOND // 2)
    zone = first.fault.az
    assert all(node.state == "off" for node in world.nodes_in_az(zone))
    assert all(node.is_up for node in world.nodes.values() if node.az != zone)
    world.kernel.run(until_ns=strike_ns + 2 * SECOND)
    assert all(node.is_up for node in world.nodes.values())


BASE = """name: chaos
topology: {az-a: [n1], az-b: [n2], az-c: [n3]}
system: {use: "systems.register:RegisterSystem"}
"""


def test_the_scenario_format_takes_az_power_losses() -> None:
    scenario = parse_scenario(BASE + "random_faults: {power_off_az_per_minute: 2, "
                                      "power_off_az_s_min: 1, power_off_az_s_max: 3}\n")
    assert scenario.random_faults == FaultProfile(power_off_az_per_minute=2, power_off_az_s_min=1,
                                                  power_off_az_s_max=3)
    with pytest.raises(ScenarioError, match="power_off_az_s_min"):
        parse_scenario(BASE + "random_faults: {power_off_az_s_min: 9, power_off_az_s_max: 3}\n")
