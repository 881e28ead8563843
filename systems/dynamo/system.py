"""The reference system as a Graylink system under test: layout, setup, observation, metrics.

Layout. The scenario's topology names the storage nodes (role ``server`` or ``storage``) in their AZs.
Routers (role ``router``), the metadata service (role ``metadata``) and clients (role ``client``) may be
named too; whatever is missing is added: ``config.routers`` routers and ``config.workload.clients``
clients spread over the AZs round-robin, and one metadata node in the first AZ. The partition map
(M1, M2) is built from the storage nodes: three replicas per partition, in three AZs. Storage nodes
of role ``spare`` get no replica at first: leaders build replacements on them (M9); any storage
node outside a group may serve as one. Before the run every storage node's disk gets the
``provisioned`` file; a node whose disk lost it (wiped) hosts only the replicas it was given since.

Every node runs its program through the adapter (``node.py``): storage nodes host one ``Replica`` per
partition they hold and a ``MembershipAgent`` (S20); routers and the metadata service run their
component; clients run the workload and record every operation in one shared ``History`` (true-time
stamps, taken by the observer).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

from harness import NodeContext, NodeSpec, SystemTimeline, World
from harness.checkers import CheckResult
from harness.checkers.availability import success_windows
from harness.checkers.verdict import answered
from harness.world import UnresolvedTarget
from harness.history import History
from systems.dynamo.canary import CanaryMonitor, setup_canaries
from systems.dynamo.config import DynamoConfig
from systems.dynamo.deployment import DeploymentHooks
from systems.dynamo.durability_window import DurabilityWindow
from systems.dynamo.effects import Note
from systems.dynamo.group import GroupConfig
from systems.dynamo.healing import Cluster, InstallReplica
from systems.dynamo.membership import MembershipAgent
from systems.dynamo.messages import PartitionEntry
from systems.dynamo.metadata import MetadataService
from systems.dynamo.node import ServiceProgram, StorageNodeProgram
from systems.dynamo.observations import Observations
from systems.dynamo.partitioning import build_partition_map, find_partition
from systems.dynamo.replica import Replica
from systems.dynamo.router import Router
from systems.dynamo.timeline import timeline
from systems.dynamo.verdicts import run_checks
from systems.dynamo.workload import ClientOutcome, ClientProgram, summarize

__all__ = ["DynamoSystem", "Layout"]

STORAGE_ROLES = ("server", "storage", "spare")  # "spare": a storage node with no replica at first
PROVISIONED = "provisioned"  # a storage node's disk holds this file from the cluster's installation


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
        self.spares = [n for n in self.storage if world.node(n).role == "spare"]  # M9: for healing
        self.placement_by_az = {az: [n for n in nodes if n not in self.spares]
                                for az, nodes in self.storage_by_az.items()}
        self.routers = by_role["router"] or _add(world, "router", config.routers, azs)
        self.metadata = (by_role["metadata"] or _add(world, "metadata", 1, azs))[0]
        self.clients = by_role["client"] or _add(world, "client", config.workload.clients, azs)
        # M29: one canary per AZ, only when canaries are enabled and the topology names none
        self.canaries = by_role["canary"] or (_add(world, "canary", len(azs), azs)
                                              if config.canaries.enabled else [])


def _integers(argument: str, kind: str) -> list[int]:
    try:
        numbers = [int(part) for part in argument.split(",")]
    except ValueError:
        raise UnresolvedTarget(f"{kind}({argument}): the arguments must be integers") from None
    if not 1 <= len(numbers) <= 2:
        raise UnresolvedTarget(f"{kind}({argument}): expected a partition and maybe an index")
    return numbers


def _provision(world: World, name: str) -> None:
    """Install a storage node before the run: its disk holds the (empty) ``provisioned`` file, so
    that a boot can tell the disk it was installed with from a wiped one (``_storage_factory``)."""
    disk = world.node(name).disk
    disk.write(PROVISIONED, 0, b"")
    disk.fsync_now(PROVISIONED)


def _add(world: World, role: str, count: int, azs: list[str]) -> list[str]:
    names = [f"{role}-{index + 1}" if count > 1 or role != "metadata" else role
             for index in range(count)]
    for index, name in enumerate(names):
        world.add_node(NodeSpec(name, azs[index % len(azs)], role=role))
    return names


class DynamoSystem(DeploymentHooks):
    """The DynamoDB-like store (see ``systems/dynamo/__init__.py`` for the mechanisms it implements)."""

    Config = DynamoConfig
    # Node selectors a scenario may use wherever a node name goes, resolved when the fault strikes.
    NODE_SELECTORS = {
        "leader": "leader(P): the node leading partition P at that moment",
        "follower": "follower(P) or follower(P, i): the i-th (from 0) other voter of partition P's "
                    "replication group, by name, at that moment",
        "replica": "replica(P, i): the i-th (from 0) replica of partition P in the placement",
    }
    # What `graylink fuzz` may throw at it (harness.strategies): leases allow for clock error of
    # timing.clock_drift_margin_ms (150) per timing.lease_ms (2000), about 7%, so drawn clock faults
    # stay well inside that, even two at once; beyond it, overlapping leases are expected, not bugs.
    FUZZ_BOUNDS = {"clock_drift.drift_ppm": (-20_000, 20_000), "clock_jump.by_ms": (-50, 50),
                   "clock_skew.offset_ms": (-50, 50), "random_faults.clock_jump_ms_max": (0, 50),
                   "random_faults.clock_skew_ms_max": (0, 50),
                   "random_faults.clock_drift_ppm_max": (0, 20_000)}

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
        self.canary_monitor: CanaryMonitor | None = None  # M29 (S4): when canaries are enabled
        self.durability: DurabilityWindow | None = None  # S7: copies over time, the quorum oracle
        self.cluster: Cluster | None = None  # M9: the storage fleet, for leaders picking spares
        self._processes = itertools.count()

    # -- setup ----------------------------------------------------------------------------------
    def setup(self, world: World) -> None:
        config = self.config
        layout = self.layout = Layout(world, config)
        self._init_versions(world)  # what each node runs (deployment.py, versions.py)
        self.observations = Observations(world)
        self.partition_map = build_partition_map(config.partitions, layout.placement_by_az)
        self.durability = DurabilityWindow(world, self.partition_map, self._replica_on)
        self.cluster = Cluster({name: world.node(name).az for name in layout.storage},
                               frozenset(layout.spares))
        for name in layout.storage:
            _provision(world, name)
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
        if layout.canaries:
            self.canary_monitor = setup_canaries(self, world, layout.canaries, verify)

    def _workload_over(self, world: World) -> bool:
        """Clients stop ``checks.quiesce_s`` before the end, so replicas converge before checking."""
        if world.end_ns is None:
            return False
        return world.kernel.now_ns >= world.end_ns - round(self.config.checks.quiesce_s * 1e9)

    def _observe(self, node: str, key: Any, note: Note) -> None:
        assert self.observations is not None and self.durability is not None
        self.observations.record(node, key, note)
        self.durability.record(node, key, note)

    def _storage_factory(self, world: World, name: str):  # type: ignore[no-untyped-def]
        """Which replicas a storage node hosts at a boot: those of the partition map, if its disk is
        the one it was installed with (a wiped node is a new machine: it belongs to no group, and
        taking its old place would forget what it promised and acknowledged), and those it took on
        later as a spare (M9: it has their files). ``InstallReplica`` from a leader adds one."""
        assert self.layout is not None and self.durability is not None
        layout, config, durability = self.layout, self.config, self.durability

        def replica(ctx: NodeContext, entry: PartitionEntry, member: bool) -> Replica:
            durability.hosting_started(name, entry.partition)
            return Replica(entry.partition, name, tuple(r for r in entry.replicas if r != name),
                           tuple(layout.routers), layout.metadata, config,
                           ctx.rng.fork(f"p{entry.partition}"), eligible=name not in self.ineligible,
                           member=member, cluster=self.cluster, **self.replica_software(name))

        def build_replicas(ctx: NodeContext, provisioned: bool) -> dict[int, Replica]:
            replicas = {}
            for entry in self.partition_map:
                placed = provisioned and name in entry.replicas
                if placed or any(ctx.disk.exists(f"{kind}/p{entry.partition}")
                                 for kind in ("wal", "ballot")):
                    replicas[entry.partition] = replica(ctx, entry, member=placed)
            return replicas

        def adopt(ctx: NodeContext, partition: int, message: Any) -> Replica | None:
            if type(message) is not InstallReplica or not 0 <= partition < len(self.partition_map):
                return None
            return replica(ctx, self.partition_map[partition], member=False)

        def factory(ctx: NodeContext) -> StorageNodeProgram:
            provisioned = ctx.disk.exists(PROVISIONED)
            placed = [e.partition for e in self.partition_map if provisioned and name in e.replicas]
            membership = MembershipAgent(name, layout.metadata, placed, config,
                                         ctx.rng.fork("membership"))
            program = StorageNodeProgram(ctx, config, lambda: build_replicas(ctx, provisioned),
                                         self._observe, self.counters[name], membership=membership,
                                         adopt=lambda partition, message: adopt(ctx, partition,
                                                                                message))
            self.booted(name, program.runner)
            self.storage_programs[name] = program
            return program

        return factory

    def _router_factory(self, name: str, az_of: dict[str, str]):  # type: ignore[no-untyped-def]
        assert self.layout is not None

        def factory(ctx: NodeContext) -> ServiceProgram:
            router = Router(name, self.layout.metadata, self.config, ctx.rng.fork("router"),
                            az=ctx.az, az_of=az_of, first_request_id=ctx.boot << 32)
            self.routers[name] = router
            program = ServiceProgram(ctx, self.config, self.router_component(name, router, ctx),
                                     self._observe, self.counters[name])
            self.booted(name, program.runner)
            return program

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
        followers = [name for name in sorted(self.group_of(partition).voters) if name != leader]
        return followers[index % len(followers)]

    def leader_of(self, world: World, partition: int) -> str | None:
        """The replica of ``partition`` that leads now (the highest ballot among live leaders)."""
        leaders = [(replica.ballot, name) for name, replica in self.replicas_of(partition).items()
                   if world.node(name).is_up and replica.role == "leader"]
        return max(leaders)[1] if leaders else None

    def replicas_of(self, partition: int) -> dict[str, Replica]:
        """The replica of ``partition`` on each member of its replication group (``group_of``):
        the latest incarnation's, whether the node is up or not. Replicas the group has moved on
        from (removed while down: M9) are left out."""
        members = self.group_of(partition).members
        return {name: replica for name, replica in self.hosts_of(partition).items()
                if name in members}

    def hosts_of(self, partition: int) -> dict[str, Replica]:
        """Every storage node's latest incarnation's replica of ``partition``, members or not."""
        return {name: program.replicas[partition]
                for name, program in sorted(self.storage_programs.items())
                if partition in program.replicas}

    def group_of(self, partition: int) -> GroupConfig:
        """The partition's replication group: the committed configuration of the latest epoch any
        of its replicas knows (the partition map's before any change)."""
        groups = [replica.committed_group() for replica in self.hosts_of(partition).values()]
        if not groups:
            return GroupConfig(0, tuple(sorted(self.partition_map[partition].replicas)))
        return max(groups, key=lambda group: group.epoch)

    def _replica_on(self, node: str, partition: int) -> Replica | None:
        program = self.storage_programs.get(node)
        return None if program is None else program.replicas.get(partition)

    # -- verdict and metrics ----------------------------------------------------------------------
    def checks(self, world: World) -> list[CheckResult]:
        """Every checker's verdict on this run (see ``verdicts.py``)."""
        return run_checks(self, world)

    def timeline(self, world: World) -> SystemTimeline:
        """What the HTML report draws: leases, elections, membership, operations (``timeline.py``)."""
        return timeline(self, world)

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

    def _availability_metrics(self, totals: dict[str, int]) -> dict[str, float]:
        """Client requests that got no answer; the success ratio per availability window
        (``availability.window.<start>s``, S12); availability as the storage nodes see it (S4:
        served / (served + refused) of the requests that reached them; redirects not counted); and,
        with canaries, what they saw (``canary.*``) and how far the two disagree."""
        operations = self.history.operations()
        metrics: dict[str, float] = {"failed_requests": sum(not answered(op) for op in operations)}
        if operations:  # the success ratio of each availability window (M28), by its start
            end = max(max(op.invoked_ns, op.completed_ns or 0) for op in operations)
            for window in success_windows(operations, window_s=self.config.checks.window_s,
                                          end_ns=end):
                if window.success_ratio is not None:
                    metrics[f"availability.window.{window.start_ns // 1_000_000_000}s"] = round(
                        window.success_ratio, 6)
        served, refused = totals.get("requests_served", 0), totals.get("requests_refused", 0)
        if served + refused:
            metrics["availability.server_side"] = round(served / (served + refused), 6)
        if self.canary_monitor is not None:
            metrics.update(self.canary_monitor.metrics())
            if "availability.server_side" in metrics and "canary.availability" in metrics:
                metrics["availability.gap_server_vs_canary"] = round(
                    metrics["availability.server_side"] - metrics["canary.availability"], 6)
        return metrics

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
        metrics.update(self._availability_metrics(totals))
        if self.durability is not None:
            metrics.update(self.durability.metrics(
                self.history, lambda key: find_partition(self.partition_map, str(key)).partition))
        if self.metadata is not None:
            stats = self.metadata.statistics()
            for key in ("requests", "rejected", "peak_queue_depth", "requests_peak_per_s",
                        "requests_mean_per_s"):
                metrics[f"metadata.{key}"] = stats[key]
            mean = stats["requests_mean_per_s"]  # how bimodal the load is (S17): 1 when flat
            metrics["metadata.requests_peak_over_mean"] = (
                round(stats["requests_peak_per_s"] / mean, 3) if mean else 0.0)
        metrics.update(self.deployment_metrics(world))  # versions run, decode failures (M24)
        return metrics
