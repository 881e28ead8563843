"""The reference system as a Graylink system under test: layout, setup, observation, metrics.

Layout. The scenario's topology names the storage nodes (role ``server`` or ``storage``) in their AZs.
Routers (role ``router``), the metadata service (role ``metadata``) and clients (role ``client``) may be
named too; whatever is missing is added: ``config.routers`` routers and ``config.workload.clients``
clients spread over the AZs round-robin, and one metadata node in the first AZ. The partition map
(M1, M2) is built from the storage nodes: three replicas per partition, in three AZs.

Every node runs its program through the adapter (``node.py``): storage nodes host one ``Replica`` per
partition they hold and a ``MembershipAgent`` (S20); routers and the metadata service run their
component; clients run the workload and record every operation in one shared ``History`` (true-time
stamps, taken by the observer).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

from harness import NodeContext, NodeSpec, World
from harness.checkers import CheckResult
from harness.world import UnresolvedTarget
from harness.history import History
from systems.dynamo.config import DynamoConfig
from systems.dynamo.effects import Note
from systems.dynamo.membership import MembershipAgent
from systems.dynamo.messages import PartitionEntry
from systems.dynamo.metadata import MetadataService
from systems.dynamo.node import ServiceProgram, StorageNodeProgram
from systems.dynamo.observations import Observations
from systems.dynamo.partitioning import build_partition_map
from systems.dynamo.replica import Replica
from systems.dynamo.router import Router
from systems.dynamo.verdicts import run_checks
from systems.dynamo.workload import ClientOutcome, ClientProgram, summarize

__all__ = ["DynamoSystem", "Layout"]

STORAGE_ROLES = ("server", "storage")


class Layout:
    """Which node does what, after missing routers, metadata and clients were added."""

    def __init__(self, world: World, config: DynamoConfig) -> None:
        by_role: dict[str, list[str]] = defaultdict(list)
        for name in world.node_names():
            node = world.node(name)
            by_role["storage" if node.role in STORAGE_ROLES else node.role].append(name)
        azs = world.topology.azs() or world.azs()
        self.storage = by_role["storage"]
        self.storage_by_az = {az: [n for n in self.storage if world.node(n).az == az] for az in azs}
        self.routers = by_role["router"] or _add(world, "router", config.routers, azs)
        self.metadata = (by_role["metadata"] or _add(world, "metadata", 1, azs))[0]
        self.clients = by_role["client"] or _add(world, "client", config.workload.clients, azs)


def _integers(argument: str, kind: str) -> list[int]:
    try:
        numbers = [int(part) for part in argument.split(",")]
    except ValueError:
        raise UnresolvedTarget(f"{kind}({argument}): the arguments must be integers") from None
    if not 1 <= len(numbers) <= 2:
        raise UnresolvedTarget(f"{kind}({argument}): expected a partition and maybe an index")
    return numbers


def _add(world: World, role: str, count: int, azs: list[str]) -> list[str]:
    names = [f"{role}-{index + 1}" if count > 1 or role != "metadata" else role
             for index in range(count)]
    for index, name in enumerate(names):
        world.add_node(NodeSpec(name, azs[index % len(azs)], role=role))
    return names


class DynamoSystem:
    """The DynamoDB-like store (see ``systems/dynamo/__init__.py`` for the mechanisms it implements)."""

    Config = DynamoConfig
    # Node selectors a scenario may use wherever a node name goes, resolved when the fault strikes.
    NODE_SELECTORS = {
        "leader": "leader(P): the node leading partition P at that moment",
        "follower": "follower(P) or follower(P, i): the i-th (from 0) other replica of partition P, "
                    "by name, at that moment",
        "replica": "replica(P, i): the i-th (from 0) replica of partition P in the placement",
    }

    def __init__(self, config: DynamoConfig | dict[str, Any]) -> None:
        self.config = config if isinstance(config, DynamoConfig) else DynamoConfig(**config)
        self.history = History()
        self.outcomes: list[ClientOutcome] = []
        self.counters: dict[str, dict[str, int]] = defaultdict(dict)
        self.storage_programs: dict[str, StorageNodeProgram] = {}
        self.routers: dict[str, Router] = {}
        self.metadata: MetadataService | None = None
        self.ineligible: set[str] = set()
        self.partition_map: tuple[PartitionEntry, ...] = ()
        self.layout: Layout | None = None
        self.observations: Observations | None = None
        self._processes = itertools.count()

    # -- setup ----------------------------------------------------------------------------------
    def setup(self, world: World) -> None:
        config = self.config
        layout = self.layout = Layout(world, config)
        self.observations = Observations(world)
        self.partition_map = build_partition_map(config.partitions, layout.storage_by_az)
        for name in layout.storage:
            world.node(name).install(self._storage_factory(world, name))
        az_of = {name: world.node(name).az for name in world.node_names()}
        for name in layout.routers:
            world.node(name).install(self._router_factory(name, az_of))
        world.node(layout.metadata).install(self._metadata_factory(layout.metadata))
        verify = config.mitigations.checksums and not config.bugs.skip_checksum_verification
        for name in layout.clients:
            world.node(name).install(
                lambda ctx: ClientProgram(ctx, tuple(layout.routers), config.workload,
                                          config.timing.client_timeout_ms, self.history,
                                          lambda: world.kernel.now_ns, self._processes.__next__,
                                          observe=self.outcomes.append, verify_checksums=verify,
                                          stop=lambda: self._workload_over(world)))

    def _workload_over(self, world: World) -> bool:
        """Clients stop ``checks.quiesce_s`` before the end, so replicas converge before checking."""
        if world.end_ns is None:
            return False
        return world.kernel.now_ns >= world.end_ns - round(self.config.checks.quiesce_s * 1e9)

    def _observe(self, node: str, key: Any, note: Note) -> None:
        assert self.observations is not None
        self.observations.record(node, key, note)

    def _storage_factory(self, world: World, name: str):  # type: ignore[no-untyped-def]
        assert self.layout is not None
        layout, config = self.layout, self.config
        hosted = [entry for entry in self.partition_map if name in entry.replicas]

        def build_replicas(ctx: NodeContext) -> dict[int, Replica]:
            return {entry.partition: Replica(
                entry.partition, name, tuple(r for r in entry.replicas if r != name),
                tuple(layout.routers), layout.metadata, config, ctx.rng.fork(f"p{entry.partition}"),
                eligible=name not in self.ineligible) for entry in hosted}

        def factory(ctx: NodeContext) -> StorageNodeProgram:
            membership = MembershipAgent(name, layout.metadata, [e.partition for e in hosted],
                                         config, ctx.rng.fork("membership"))
            program = StorageNodeProgram(ctx, config, lambda: build_replicas(ctx), self._observe,
                                         self.counters[name], membership=membership)
            self.storage_programs[name] = program
            return program

        return factory

    def _router_factory(self, name: str, az_of: dict[str, str]):  # type: ignore[no-untyped-def]
        assert self.layout is not None

        def factory(ctx: NodeContext) -> ServiceProgram:
            router = Router(name, self.layout.metadata, self.config, ctx.rng.fork("router"),
                            az=ctx.az, az_of=az_of, first_request_id=ctx.boot << 32)
            self.routers[name] = router
            return ServiceProgram(ctx, self.config, router, self._observe, self.counters[name])

        return factory

    def _metadata_factory(self, name: str):  # type: ignore[no-untyped-def]
        def factory(ctx: NodeContext) -> ServiceProgram:
            self.metadata = MetadataService(name, self.partition_map, self.config)
            return ServiceProgram(ctx, self.config, self.metadata, self._observe, self.counters[name])

        return factory

    # -- operations during a run ----------------------------------------------------------------
    def set_eligible(self, world: World, node: str, eligible: bool) -> None:
        """M11: mark a storage node (in)eligible for leadership; its leaderships move at once."""
        if eligible:
            self.ineligible.discard(node)
        else:
            self.ineligible.add(node)
        program = self.storage_programs.get(node)
        if program is not None and world.node(node).is_up:
            program.set_eligible(eligible)

    def select_node(self, world: World, kind: str, argument: str) -> str:
        """Resolve ``leader(P)``, ``follower(P[, i])`` or ``replica(P, i)`` (see NODE_SELECTORS)."""
        numbers = _integers(argument, kind)
        partition, index = numbers[0], (numbers[1] if len(numbers) > 1 else 0)
        if not 0 <= partition < len(self.partition_map):
            raise UnresolvedTarget(f"{kind}({argument}): there is no partition {partition} "
                                   f"(partitions are 0..{len(self.partition_map) - 1})")
        placement = self.partition_map[partition].replicas
        if kind == "replica":
            return placement[index % len(placement)]
        leader = self.leader_of(world, partition)
        if leader is None:
            raise UnresolvedTarget(f"{kind}({argument}): partition {partition} has no leader now")
        if kind == "leader":
            return leader
        followers = [name for name in sorted(placement) if name != leader]
        return followers[index % len(followers)]

    def leader_of(self, world: World, partition: int) -> str | None:
        """The replica of ``partition`` that leads now (the highest ballot among live leaders)."""
        leaders = [(replica.ballot, name) for name, replica in self.replicas_of(partition).items()
                   if world.node(name).is_up and replica.role == "leader"]
        return max(leaders)[1] if leaders else None

    def replicas_of(self, partition: int) -> dict[str, Replica]:
        """The current incarnation's replica of ``partition`` on each storage node that is up."""
        entry = self.partition_map[partition]
        return {name: self.storage_programs[name].replicas[partition] for name in entry.replicas
                if name in self.storage_programs}

    # -- verdict and metrics ----------------------------------------------------------------------
    def checks(self, world: World) -> list[CheckResult]:
        """Every checker's verdict on this run (see ``verdicts.py``)."""
        return run_checks(self, world)

    def _membership_metrics(self) -> dict[str, float]:
        """Membership fetches of the storage nodes' current incarnations (S20): sent, timed out,
        and answered after the node had given up (work the metadata service did for nothing)."""
        totals = dict.fromkeys(("requests", "timeouts", "rejections", "late_replies"), 0)
        for program in self.storage_programs.values():
            if program.membership is not None:
                stats = program.membership.statistics()
                for key in totals:
                    totals[key] += stats[key]
        return {f"membership.{key}": value for key, value in totals.items()}

    def metrics(self, world: World) -> dict[str, float]:
        assert self.observations is not None
        metrics: dict[str, float] = dict(self.observations.metrics())
        summary = summarize(self.history)
        for outcome in ("ok", "fail", "info"):
            metrics[f"operations.{outcome}"] = summary.total(outcome)
        for label in sorted(summary.latencies_ns):
            for quantile, name in ((0.5, "p50"), (0.99, "p99")):
                value = summary.percentile_ms(label, quantile)
                if value is not None:
                    metrics[f"latency_ms.{label}.{name}"] = round(value, 3)
        totals: dict[str, int] = defaultdict(int)
        for counters in self.counters.values():
            for key, value in counters.items():
                totals[key] += value
        for key in ("checksum_rejections", "corrupt_accepted", "decode_failures", "disk_full"):
            metrics[key] = totals.get(key, 0)
        metrics["membership.refusals"] = totals.get("out_of_service_refusals", 0)
        metrics.update(self._membership_metrics())
        metrics["misrouted_requests"] = sum(router.statistics()["misroutes"]
                                            for router in self.routers.values())
        if self.metadata is not None:
            stats = self.metadata.statistics()
            for key in ("requests", "rejected", "peak_queue_depth", "requests_peak_per_s",
                        "requests_mean_per_s"):
                metrics[f"metadata.{key}"] = stats[key]
            mean = stats["requests_mean_per_s"]  # how bimodal the load is (S17): 1 when flat
            metrics["metadata.requests_peak_over_mean"] = (
                round(stats["requests_peak_per_s"] / mean, 3) if mean else 0.0)
        return metrics
