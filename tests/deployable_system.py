"""A tiny deployable system for the harness's deployment tests: versions, roles, hooks, no protocol.

Each node boots into the version installed on it and records the boot. A storage node "leads"
until it is asked to stop (``prepare_stop``) and hands over after ``HANDOFF_S``. Health is
synthetic: while any node runs ``v3-bad``, half of the operations fail.
"""

from __future__ import annotations

from typing import Any, ClassVar

from harness import NodeContext, World
from harness.deploy import Health, Version
from harness.timeline import FaultTimeline
from harness.world import NodeSpec, Topology

HANDOFF_S = 0.2


class Quiet:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    def on_message(self, source: str, message: Any) -> None:
        pass


class VersionedSystem:
    VERSIONS: ClassVar[dict[str, Version]] = {"v1": Version(1, 1, "the first"), "v2": Version(2, 2, "reads and writes format 2"),
                "v3-bad": Version(2, 2, "fails half the operations")}
    DEPLOY_ROLES: ClassVar[dict[str, bool]] = {"storage": True, "router": False}

    def __init__(self, config: Any = None) -> None:
        self.installed: dict[str, tuple[str, bool]] = {}
        self.boots: list[tuple[int, str, str, bool]] = []  # (time, node, version, writes)
        self.flags: list[tuple[int, str, bool]] = []
        self.draining: dict[str, int] = {}  # node → when it was asked to stop
        self.eligible_again: list[tuple[int, str]] = []
        self.world: World | None = None

    @staticmethod
    def initial_versions(config: Any) -> tuple[str, ...]:
        return ("v1",)

    def setup(self, world: World) -> None:
        self.world = world
        for name in world.node_names():
            self.installed[name] = ("v1", False)
            world.node(name).install(self._factory(world, name))

    def _factory(self, world: World, name: str) -> Any:
        def factory(ctx: NodeContext) -> Quiet:
            self.boots.append((world.kernel.now_ns, name, *self.installed[name]))
            return Quiet(ctx)
        return factory

    def check(self, world: World) -> list[Any]:
        return []

    def metrics(self, world: World) -> dict[str, float]:
        return {"boots": float(len(self.boots))}

    # -- deployment hooks -------------------------------------------------------------------------
    def deploy_targets(self, world: World) -> dict[str, str]:
        return {name: ("storage" if world.node(name).role == "server" else "router")
                for name in world.node_names()}

    def installed_version(self, world: World, node: str) -> tuple[str, bool]:
        return self.installed[node]

    def install_version(self, world: World, node: str, version: str, writes: bool) -> None:
        self.installed[node] = (version, writes)

    def running_version(self, world: World, node: str) -> str:
        booted = [version for _, name, version, _ in self.boots if name == node]
        return booted[-1] if booted and world.node(node).is_up else self.installed[node][0]

    def set_write_flag(self, world: World, node: str, writes: bool) -> None:
        self.installed[node] = (self.installed[node][0], writes)
        self.flags.append((world.kernel.now_ns, node, writes))

    def prepare_stop(self, world: World, node: str) -> None:
        self.draining[node] = world.kernel.now_ns

    def ready_to_stop(self, world: World, node: str) -> bool:
        return world.kernel.now_ns - self.draining[node] >= HANDOFF_S * 1e9

    def started(self, world: World, node: str) -> None:
        self.draining.pop(node, None)
        self.eligible_again.append((world.kernel.now_ns, node))

    def health(self, world: World, start_ns: int, end_ns: int) -> Health:
        bad = any(world.node(n).is_up and self.installed[n][0] == "v3-bad"
                  and any(b[1] == n and b[2] == "v3-bad" for b in self.boots)
                  for n in self.installed)
        return Health(100, 50 if bad else 0, 10.0)


def deployable_world(seed: int = 1) -> tuple[World, VersionedSystem, FaultTimeline]:
    """Six storage nodes in three AZs and two routers, every node started on v1."""
    topology = Topology.from_azs({"az-a": ["s1", "s2"], "az-b": ["s3", "s4"], "az-c": ["s5", "s6"]})
    topology = topology.with_nodes(NodeSpec("r1", "az-a", "router"), NodeSpec("r2", "az-b", "router"))
    world = World(seed, topology)
    system = VersionedSystem()
    world.system = system
    system.setup(world)
    for name in world.node_names():
        world.node(name).start()
    return world, system, FaultTimeline(world)
