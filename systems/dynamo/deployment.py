"""How the reference system is deployed: the hooks ``harness.deploy`` calls, and what they record.

``DeploymentHooks`` is mixed into ``DynamoSystem`` (a mixin for one concern, not an extension point).
It keeps what is installed on every node (``Installed``: a version of ``versions.py`` and its
emission flag) and what each node ran over time (``VersionRecord``), and it implements the
``harness.deploy.Deployable`` protocol:

- storage nodes are stateful (role ``storage``): before one stops, ``prepare_stop`` marks it
  ineligible for leadership, and with M11 (``mitigations.leadership_handoff``) its leaders hand
  over at once; ``ready_to_stop`` is true once it leads no partition, or at once without M11 (the
  stop then looks like a crash to its peers: S13). ``started`` makes it eligible again;
- routers are stateless (role ``router``): simply restarted;
- ``set_write_flag`` switches the emission flag live: the node's replicas emit the new format from
  their next message and record on;
- ``health`` judges the clients' operations (``ClientOutcome``) for the deployment's alarms: a
  failure is an operation the service did not answer (an error or a timeout; a false condition is an
  answer).

Every boot records what the node started on; ``version_bands`` turns the record into bands of the
HTML report (one per node and version, kind ``version``) and ``deployment_metrics`` into numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

from harness import Band, Health, Marker, NodeContext, Version, World
from systems.dynamo.versions import VERSIONS, Installed, LoadDefect, VersionRecord

if TYPE_CHECKING:
    from systems.dynamo.config import DynamoConfig
    from systems.dynamo.node import EffectRunner, StorageNodeProgram
    from systems.dynamo.workload import ClientOutcome

__all__ = ["DeploymentHooks"]

_ANSWERED = ("ok", "condition_failed")  # outcomes (type or error) in which the service answered


class DeploymentHooks:
    """The deployment half of ``DynamoSystem`` (see the module docstring)."""

    VERSIONS: ClassVar[dict[str, Version]] = VERSIONS
    DEPLOY_ROLES: ClassVar[dict[str, bool]] = {"storage": True, "router": False}

    # Defined by DynamoSystem:
    config: DynamoConfig
    outcomes: list[ClientOutcome]
    storage_programs: dict[str, StorageNodeProgram]
    layout: Any
    observations: Any

    def _init_versions(self, world: World) -> None:
        """At setup: nothing installed yet beyond the initial version, nothing run."""
        self.world = world
        self.installed: dict[str, Installed] = {}
        self.versions_ran = VersionRecord()
        self.defects: list[LoadDefect] = []

    @staticmethod
    def initial_versions(config: DynamoConfig) -> tuple[str, ...]:
        """What every node runs at the start (the scenario loader checks phase W against it)."""
        return (config.deployment.initial_version,)

    def installed_on(self, node: str) -> Installed:
        installed = self.installed.get(node)
        if installed is None:
            deployment = self.config.deployment
            installed = self.installed[node] = Installed(deployment.initial_version,
                                                         deployment.write_new_format)
        return installed

    # -- at every boot ----------------------------------------------------------------------------
    def replica_software(self, node: str) -> dict[str, int]:
        """The formats a replica on ``node`` reads and emits (keyword arguments of ``Replica``)."""
        installed = self.installed_on(node)
        return {"reads_format": installed.reads_format, "emit_format": installed.emit_format}

    def booted(self, node: str, runner: EffectRunner) -> None:
        """A node's program was just built: its adapter decodes what its version reads."""
        installed = self.installed_on(node)
        runner.reads_format = installed.reads_format
        self.versions_ran.ran(node, self.world.kernel.now_ns, installed)

    def router_component(self, node: str, router: Any, ctx: NodeContext) -> Any:
        """The router, with v2-bad's defect if that is what the node runs."""
        if not self.installed_on(node).defective:
            return router
        deployment = self.config.deployment
        defect = LoadDefect(router, deployment.bad_build_threshold_per_s,
                            deployment.bad_build_reject_probability, ctx.rng.fork("defect"))
        self.defects.append(defect)
        return defect

    # -- harness.deploy.Deployable -------------------------------------------------------------------
    def deploy_targets(self, world: World) -> dict[str, str]:
        assert self.layout is not None
        targets = {name: "storage" for name in self.layout.storage}
        targets.update({name: "router" for name in self.layout.routers})
        return targets

    def installed_version(self, world: World, node: str) -> tuple[str, bool]:
        installed = self.installed_on(node)
        return installed.version, installed.writes

    def install_version(self, world: World, node: str, version: str, writes: bool) -> None:
        self.installed[node] = Installed(version, writes)

    def running_version(self, world: World, node: str) -> str:
        """What the node's process runs now: the version it last booted (or switched flag) on
        while up; a node that is down will start on its installed version."""
        changes = self.versions_ran.changes.get(node)
        if not world.node(node).is_up or not changes:
            return self.installed_on(node).version
        return changes[-1][1].version

    def set_write_flag(self, world: World, node: str, writes: bool) -> None:
        installed = self.installed[node] = Installed(self.installed_on(node).version, writes)
        program = self.storage_programs.get(node)
        if world.node(node).is_up:
            if program is not None:
                for replica in program.replicas.values():
                    replica.emit_format = installed.emit_format
            self.versions_ran.ran(node, world.kernel.now_ns, installed)

    def prepare_stop(self, world: World, node: str) -> None:
        if node in self.storage_programs:
            self.set_eligible(world, node, False)  # type: ignore[attr-defined]

    def ready_to_stop(self, world: World, node: str) -> bool:
        program = self.storage_programs.get(node)
        if (program is None or not world.node(node).is_up
                or not self.config.mitigations.leadership_handoff):
            return True
        return all(replica.role != "leader" for replica in program.replicas.values())

    def started(self, world: World, node: str) -> None:
        if node in self.storage_programs or node in self.layout.storage:
            self.set_eligible(world, node, True)  # type: ignore[attr-defined]

    def health(self, world: World, start_ns: int, end_ns: int) -> Health:
        window = [o for o in self.outcomes if start_ns <= o.invoked_ns < end_ns]
        answered = sorted(o.completed_ns - o.invoked_ns for o in window
                          if o.type in _ANSWERED or o.error in _ANSWERED)
        p99 = answered[max(0, math.ceil(0.99 * len(answered)) - 1)] / 1e6 if answered else 0.0
        return Health(len(window), len(window) - len(answered), round(p99, 3))

    # -- what it ran, for metrics and reports --------------------------------------------------------
    def deployment_metrics(self, world: World) -> dict[str, float]:
        metrics: dict[str, float] = {}
        reasons = Counter(election.reason for election in self.observations.elections)
        for reason in ("suspicion", "handoff"):  # failure detection vs planned handoff (S13)
            metrics[f"elections.{reason}"] = float(reasons.get(reason, 0))
        for version, seconds in self.versions_ran.node_seconds(world).items():
            metrics[f"versions.{version}.node_s"] = seconds
        at_end = Counter(self.installed_on(node).version for node in self.deploy_targets(world))
        for version in VERSIONS:
            metrics[f"versions.{version}.nodes_at_end"] = float(at_end.get(version, 0))
        records = sum(1 for note in self.observations.notes if note[3] == "decode-failure")
        messages = sum(counters.get("decode_failures", 0)
                       for counters in self.counters.values())  # type: ignore[attr-defined]
        metrics["decode_failures.messages"] = float(messages)
        metrics["decode_failures.records"] = float(records)
        metrics["decode_failures"] = float(messages + records)
        metrics["bad_build.rejected"] = float(sum(defect.rejected for defect in self.defects))
        metrics["operations.errors"] = float(sum(1 for o in self.outcomes
                                                 if o.type not in _ANSWERED
                                                 and o.error not in _ANSWERED))
        return metrics

    def version_bands(self, world: World) -> list[Band]:
        """One band per node and stretch of a version (kind ``version``), on the node's lane; none
        when the whole run ran one version (nothing was deployed: the bands would say nothing)."""
        bands = [Band(node, start, end, "version", installed.label())
                 for node, spans in self.versions_ran.intervals(world).items()
                 for start, end, installed in spans]
        return bands if len({band.label for band in bands}) > 1 else []

    @staticmethod
    def deployment_markers(world: World) -> list[Marker]:
        """What the orchestrator did (batches, alarms, rollbacks), on a lane ``deployments``."""
        registry = getattr(world, "deployments", None)
        if registry is None:
            return []
        return [Marker("deployments", time_ns, "deploy", f"{name}: {text}")
                for time_ns, name, text in registry.timeline()]
