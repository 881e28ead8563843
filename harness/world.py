"""The world: the kernel plus everything a system under test lives in (nodes, network, disks).

Theory of operation. A ``World`` is built from one seed and a ``Topology``. It creates the kernel, forks
one random stream per component by name (``network``, ``disk/<node>``, ``node/<node>``), and creates the
nodes with their clocks and disks. It runs nothing by itself: ``Simulation`` wires a system, faults and a
workload onto a world and runs the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.clock import NodeClock
from harness.disk import Disk, DiskConfig
from harness.network import LinkConfig, Network
from harness.node import Node
from harness.params import SELECTOR
from harness.recording import Recording
from harness.rng import Rng
from harness.scheduler import Kernel
from harness.trace import Trace

__all__ = ["World", "Topology", "NodeSpec", "UnresolvedTarget", "SELECTOR"]


class UnresolvedTarget(LookupError):
    """A node selector named no node when it was needed (e.g. a partition without a leader)."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One machine of the topology."""

    name: str  # unique node name, e.g. "n1"
    az: str  # availability zone, e.g. "az-a"
    role: str = "server"  # free-form; systems use it to tell servers from clients or routers


@dataclass(frozen=True, slots=True)
class Topology:
    """Nodes placed in availability zones."""

    nodes: tuple[NodeSpec, ...] = field(default=())

    @classmethod
    def from_azs(cls, azs: dict[str, list[str]], role: str = "server") -> Topology:
        """``{"az-a": ["n1"], "az-b": ["n2"]}`` → a topology (AZs and nodes in the given order)."""
        return cls(tuple(NodeSpec(name, az, role) for az, names in azs.items() for name in names))

    def with_nodes(self, *specs: NodeSpec) -> Topology:
        return Topology(self.nodes + specs)

    def azs(self) -> list[str]:
        seen: dict[str, None] = {}
        for spec in self.nodes:
            seen.setdefault(spec.az, None)
        return list(seen)


class World:
    """Kernel, network, nodes, clocks and disks, all derived from one seed."""

    def __init__(self, seed: int, topology: Topology, *, link: LinkConfig | None = None,
                 disk: DiskConfig | None = None, trace: Trace | None = None) -> None:
        self.seed = seed
        self.rng = Rng(seed)
        self.kernel = Kernel(trace)
        self.topology = topology
        self.nodes: dict[str, Node] = {}
        self.heal_started_ns: int | None = None  # set when the heal phase begins (faults stopped)
        self.system: Any = None  # the system under test, once the simulation has set it up
        self.end_ns: int | None = None  # when the run will end (set by the simulation)
        self._disk_config = disk or DiskConfig()
        self.network = Network(self.kernel, self.rng.fork("network"), self, link or LinkConfig())
        # What the report draws (node lifecycles, a sample of the messages); it changes nothing.
        self.recording = Recording(self)
        for spec in topology.nodes:
            self.add_node(spec)

    def add_node(self, spec: NodeSpec) -> Node:
        if spec.name in self.nodes:
            raise ValueError(f"duplicate node name {spec.name!r}")
        disk = Disk(self.kernel, self.rng.fork(f"disk/{spec.name}"), spec.name, self._disk_config)
        node = Node(self, spec.name, spec.az, spec.role, NodeClock(), disk,
                    self.rng.fork(f"node/{spec.name}"))
        disk.owner = node
        self.nodes[spec.name] = node
        return node

    def node(self, name: str) -> Node:
        """The node called ``name``, or the one a selector such as ``leader(0)`` names right now."""
        resolved = self.resolve(name)
        try:
            return self.nodes[resolved]
        except KeyError:
            raise KeyError(f"unknown node {resolved!r}; nodes are {self.node_names()}") from None

    def resolve(self, name: str) -> str:
        """A node name, with selectors (``kind(argument)``) resolved by the system under test."""
        match = SELECTOR.match(name)
        if match is None:
            return name
        select = getattr(self.system, "select_node", None)
        if select is None:
            raise UnresolvedTarget(f"{name!r} is a node selector, but the system under test has "
                                   f"no select_node()")
        return str(select(self, match.group(1), match.group(2).strip()))

    def node_names(self) -> list[str]:
        return sorted(self.nodes)

    def nodes_in_az(self, az: str) -> list[Node]:
        return [self.nodes[name] for name in self.node_names() if self.nodes[name].az == az]

    def azs(self) -> list[str]:
        return sorted({node.az for node in self.nodes.values()})

    def statistics(self) -> dict[str, Any]:
        """Counters from every component, as plain data (for reports and tests)."""
        nodes = {name: _as_dict(self.nodes[name].stats) for name in self.node_names()}
        disks = {name: self.nodes[name].disk.statistics() for name in self.node_names()}
        return {"kernel": {"events": self.kernel.steps, "dropped_stale": self.kernel.dropped_stale},
                "network": self.network.statistics(), "nodes": nodes, "disks": disks}


def _as_dict(stats: Any) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in stats.__dataclass_fields__}
