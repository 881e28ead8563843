"""Deployments as faults: install a version on some nodes, roll it out, roll it back (M24-M27).

Theory of operation. "Distributed system deployments are non atomic": while a version rolls out,
nodes run different software, and a rollback may not restore the state the fleet started from. So a
deployment is a fault like any other: a frozen dataclass (``Deploy``, ``Rollback``) that a scenario
scripts at a time, that a random profile draws, and that the timeline applies. Applying one starts a
``Rollout`` (``harness.rollout``), a small orchestrator that runs on the kernel's queue as unowned
events, batch by batch, and logs what it does (in the trace and in ``world.deployments``).

What a system offers to be deployed. A version is data: ``Version(reads_format, writes_format)``,
the highest record and message format its code decodes, and the format it emits once its
emission flag is on (M24). A system declares its versions and the roles of the nodes it deploys to,
and implements a few hooks (``Deployable``); ``systems/dynamo/deployment.py`` is the example.

Phases (M25). A ``Deploy`` installs ``version`` with a ``phase``:

- ``full``: install it with its new format's emission on at once (the one-shot deploy);
- ``read`` (phase R): install it with emission off: the node can read the new format, writes the old;
- ``write`` (phase W): switch emission on where ``version`` is installed, without a restart. The
  orchestrator refuses it, saying which nodes and why, while any node the system deploys to runs a
  version that cannot read the format it would emit.

Strategies: ``all_at_once`` (one batch), ``rolling`` (batches of ``batch_size``, each baked for
``bake_s``), ``canary`` (``canary_size`` nodes first, baked, then the rest as rolling). Stateless
nodes are simply restarted. Stateful nodes are batched within one availability zone (so a batch never
takes two replicas of a group down), and, with ``handoff``, asked to hand their leaderships over and
given up to ``handoff_timeout_s`` to do so before they stop (M11). During a bake the alarms (error
rate, p99 latency of the client operations the system reports through ``health``) are checked every
``ALARM_CHECK_S``; an alarm rolls the deployment back when ``rollback_on_alarm`` (M26).

Node selection: every node the system deploys to, narrowed by ``nodes`` (names or selectors),
``azs`` and ``roles``, in rollout order (stateless before stateful, then by AZ and name); then
``fraction`` keeps the first share of them and ``sample`` draws that many from the seed.

A deployment still running when the fault phase ends stops where it is (a partial deploy); the heal
phase starts every node on whatever version is installed on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from harness.faults import Fault
from harness.params import param
from harness.world import UnresolvedTarget

if TYPE_CHECKING:
    from harness.rng import Rng
    from harness.timeline import FaultProfile, ScheduledFault
    from harness.world import World

__all__ = [
    "ALARM_CHECK_S",
    "MIN_ALARM_OPERATIONS",
    "PHASES",
    "STRATEGIES",
    "Deploy",
    "Deployable",
    "DeploymentRefused",
    "Health",
    "Rollback",
    "Version",
    "auto_name",
    "draw_deployments",
    "script_problems",
    "system_versions",
]

PHASES = ("full", "read", "write")
STRATEGIES = ("all_at_once", "rolling", "canary")
ALARM_CHECK_S = 0.5  # how often alarms are evaluated during a bake
MIN_ALARM_OPERATIONS = 20  # an alarm needs at least this many operations in its window


@dataclass(frozen=True, slots=True)
class Version:
    """One version (build) of a system: what it can decode and what it emits (M24)."""

    reads_format: int  # highest record and message format its code decodes (it reads 1..this)
    writes_format: int  # the format it emits once its emission flag is on
    description: str = ""

    def can_read(self, format_version: int) -> bool:
        return 1 <= format_version <= self.reads_format


@dataclass(frozen=True, slots=True)
class Health:
    """Client operations invoked in a window, as the system under test saw them answered."""

    operations: int  # completed operations invoked in the window
    failures: int  # of which the service did not answer (errors, timeouts; not a false condition)
    latency_ms_p99: float  # nearest-rank p99 latency of the answered ones (0 if none)

    @property
    def error_rate(self) -> float:
        return self.failures / self.operations if self.operations else 0.0


class Deployable(Protocol):
    """What a system implements to be deployed (class attributes ``VERSIONS`` and ``DEPLOY_ROLES``:
    version name → ``Version``; role → True if nodes of that role are stateful)."""

    VERSIONS: ClassVar[Mapping[str, Version]]
    DEPLOY_ROLES: ClassVar[Mapping[str, bool]]

    def deploy_targets(self, world: World) -> dict[str, str]:
        """Every node a deployment may touch → its role (a key of ``DEPLOY_ROLES``)."""

    def installed_version(self, world: World, node: str) -> tuple[str, bool]:
        """(version installed on the node, whether its emission flag is on)."""

    def install_version(self, world: World, node: str, version: str, writes: bool) -> None:
        """Install a version: the node runs it from its next start on."""

    def running_version(self, world: World, node: str) -> str:
        """Optional: the version the node's process runs now (a node that is down: the one it
        will start on). Phase W is judged on it; without it, on the installed version."""

    def set_write_flag(self, world: World, node: str, writes: bool) -> None:
        """Switch the emission flag at once, without a restart (phase W)."""

    def prepare_stop(self, world: World, node: str) -> None:
        """M11: the node is about to stop; it should hand its leaderships over now."""

    def ready_to_stop(self, world: World, node: str) -> bool:
        """True once stopping the node costs no failover (it leads nothing, or cannot hand off)."""

    def started(self, world: World, node: str) -> None:
        """The node is back after its install (eligible for leadership again)."""

    def health(self, world: World, start_ns: int, end_ns: int) -> Health:
        """Client operations invoked in [start_ns, end_ns) and completed by now (for alarms)."""


class DeploymentRefused(UnresolvedTarget):
    """The orchestrator refused a step (phase W while a node cannot read the format; a rollback of
    an unknown deployment). The timeline logs it as a skipped fault, with the reason."""


_DOWNTIME_DOC = "how long a node stays down while its new version is installed"


@dataclass(frozen=True, slots=True)
class Deploy(Fault):
    """Install a version on some nodes, batch by batch (see harness/deploy.py)."""

    kind: ClassVar[str] = "deploy"
    family: ClassVar[str] = "deployment"
    version: str = param("the version to install (one the system under test declares)",
                         ref="version")
    name: str = param("a name for this deployment, for a later rollback and the metrics "
                      "(deploy.<name>.…); default deploy-<n>: the n-th unnamed one to start", "")
    phase: str = param("'full': install with the new format emitted at once (one-shot); 'read': "
                       "install with emission off (M25 phase R); 'write': switch emission on "
                       "where the version runs, no restart (phase W; refused while any node "
                       "cannot read the format)", "full", choices=PHASES)
    nodes: tuple[str, ...] = param("only these nodes (names or selectors); empty: every node the "
                                   "system deploys to", (), ref="node")
    azs: tuple[str, ...] = param("only nodes in these availability zones", (), ref="az")
    roles: tuple[str, ...] = param("only nodes of these roles (the system's DEPLOY_ROLES, e.g. "
                                   "storage, router)", ())
    fraction: float = param("the first share of the selected nodes, in rollout order", 1.0,
                            minimum=0, maximum=1, exclusive_minimum=True)
    sample: int = param("this many of the selected nodes, drawn from the seed; 0: all of them", 0,
                        minimum=0)
    strategy: str = param("'all_at_once': one batch; 'rolling': batches of batch_size, each baked; "
                          "'canary': canary_size nodes first, baked, then the rest rolling",
                          "rolling", choices=STRATEGIES)
    batch_size: int = param("nodes per batch (rolling, and the rest after a canary)", 1, minimum=1)
    canary_size: int = param("nodes in the canary batch", 1, minimum=1)
    bake_s: float = param("wait after each batch is up, watching the alarms", 0.0, minimum=0)
    downtime_s: float = param(_DOWNTIME_DOC, 1.0, minimum=0)
    handoff: bool = param("M11: a stateful node hands its leaderships over before it stops", True)
    handoff_timeout_s: float = param("longest wait for a handoff; then the node stops anyway", 5.0,
                                     minimum=0)
    alarm_error_rate: float | None = param("alarm when more than this share of the client "
                                           "operations in the alarm window failed; omit for none",
                                           None, minimum=0, maximum=1)
    alarm_latency_ms: float | None = param("alarm when the p99 latency in the alarm window is "
                                           "above this; omit for none", None, minimum=0,
                                           exclusive_minimum=True)
    alarm_window_s: float = param("alarms judge the operations invoked this long before (and "
                                  "since the batch was up)", 5.0, minimum=0, exclusive_minimum=True)
    rollback_on_alarm: bool = param("roll back automatically when an alarm fires (M26)", True)
    duration_s: float | None = None  # a deployment runs its own course

    def apply(self, world: World) -> Any:
        from harness.rollout import deployments_of

        return deployments_of(world).start(self)


@dataclass(frozen=True, slots=True)
class Rollback(Fault):
    """Roll a deployment back, in progress or finished: every node it touched gets back the version
    and emission flag it had before (restarted if the version differs), batch by batch in reverse."""

    kind: ClassVar[str] = "rollback"
    family: ClassVar[str] = "deployment"
    deployment: str = param("the name of the deployment to roll back")
    duration_s: float | None = None

    def apply(self, world: World) -> None:
        from harness.rollout import deployments_of

        deployments_of(world).rollback(self.deployment, "scripted")


# -- what a system declares ------------------------------------------------------------------------
def system_versions(system_class: Any) -> Mapping[str, Version] | None:
    """The class's ``VERSIONS`` if it declares any (a mapping of names to ``Version``)."""
    versions = getattr(system_class, "VERSIONS", None)
    return versions if isinstance(versions, Mapping) and versions else None


def script_problems(faults: list[ScheduledFault], system_class: Any,
                    initial_versions: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """What is wrong with the deployments of a fault script, as (index, field, message).

    Checked: the system declares versions (and alarms need ``health``); versions and roles exist;
    ``fraction`` and ``sample`` are not both given; auto-rollback has an alarm and a bake; names are
    unique; a rollback names an earlier deployment; a phase W comes after a deployment (or an
    initial version) that reads its format.
    """
    problems: list[tuple[int, str, str]] = []
    versions = system_versions(system_class)
    named: dict[str, float] = {}
    unnamed = 0
    order = sorted(range(len(faults)), key=lambda i: (faults[i].at_s, i))  # as they will strike
    for position, index in enumerate(order):
        scheduled = faults[index]
        fault = scheduled.fault
        if not isinstance(fault, (Deploy, Rollback)):
            continue
        if versions is None:
            problems.append((index, "", f"the system under test ({_name(system_class)}) declares "
                                        f"no VERSIONS, so it cannot be deployed"))
            continue
        if isinstance(fault, Rollback):
            if fault.deployment not in named:
                earlier = ", ".join(named) or "none"
                problems.append((index, "deployment", f"{fault.deployment!r} names no earlier "
                                                      f"deployment; earlier ones: {earlier}"))
            continue
        problems += [(index, field, message) for field, message in
                     _deploy_problems(fault, system_class, versions)]
        unnamed += not fault.name
        name = fault.name or auto_name(unnamed)
        if name in named:
            problems.append((index, "name", f"the deployment name {name!r} is already used (at "
                                            f"{named[name]:g} s; unnamed deployments are "
                                            f"deploy-1, deploy-2… in the order they start)"))
        named[name] = scheduled.at_s
        if fault.version not in versions:
            continue
        wanted = versions[fault.version].writes_format
        earlier = [faults[i] for i in order[:position]]
        if fault.phase == "write" and not _read_before(versions, initial_versions, earlier, wanted):
            problems.append((index, "phase", f"phase 'write' of {fault.version} (format {wanted}) "
                             f"comes before any deployment of a version that reads format "
                             f"{wanted}: deploy it with phase 'read' first (M25), or use 'full'"))
    return problems


def auto_name(ordinal: int) -> str:
    """The name of the ``ordinal``-th (from 1) deployment without a name, in strike order."""
    return f"deploy-{ordinal}"


def _deploy_problems(fault: Deploy, system_class: Any,
                     versions: Mapping[str, Version]) -> list[tuple[str, str]]:
    problems = []
    if fault.version not in versions:
        problems.append(("version", f"{fault.version!r} is not a version of "
                                    f"{_name(system_class)}; versions: {', '.join(versions)}"))
    roles = getattr(system_class, "DEPLOY_ROLES", {}) or {}
    for role in fault.roles:
        if role not in roles:
            problems.append(("roles", f"{role!r} is not a role {_name(system_class)} deploys to; "
                                      f"roles: {', '.join(roles) or 'none'}"))
    if fault.sample and fault.fraction != 1.0:
        problems.append(("sample", "give fraction or sample, not both"))
    alarms = fault.alarm_error_rate is not None or fault.alarm_latency_ms is not None
    if alarms and not callable(getattr(system_class, "health", None)):
        problems.append(("alarm_error_rate" if fault.alarm_error_rate is not None
                         else "alarm_latency_ms",
                         f"{_name(system_class)} reports no health(), so alarms cannot be judged"))
    if alarms and fault.bake_s == 0:
        problems.append(("bake_s", "alarms are judged during the bake: give bake_s > 0"))
    return problems


def _read_before(versions: Mapping[str, Version], initial: tuple[str, ...],
                 earlier: list[ScheduledFault], wanted: int) -> bool:
    if any(name in versions and versions[name].can_read(wanted) for name in initial):
        return True
    return any(isinstance(s.fault, Deploy) and s.fault.phase in ("read", "full")
               and s.fault.version in versions and versions[s.fault.version].can_read(wanted)
               for s in earlier)


def _name(system_class: Any) -> str:
    return getattr(system_class, "__qualname__", str(system_class))


# -- random profiles ----------------------------------------------------------------------------------
def draw_deployments(profile: FaultProfile, world: World, stream: Rng, start_s: float,
                     end_s: float) -> list[ScheduledFault]:
    """Partial deploys drawn from the seed: at ``deploy_per_minute``, a version of
    ``deploy_versions`` (every declared one if empty) on a seed-drawn sample of at most
    ``deploy_fraction_max`` of the fleet, with a drawn strategy; some rolled back later."""
    from harness.timeline import ScheduledFault

    versions = system_versions(type(world.system))
    targets = getattr(world.system, "deploy_targets", None)
    if profile.deploy_per_minute <= 0 or versions is None or targets is None:
        return []
    fleet = len(targets(world))
    names = list(profile.deploy_versions) or list(versions)
    drawn: list[ScheduledFault] = []
    now, index = start_s, 0
    while fleet:
        now += stream.expovariate(profile.deploy_per_minute / 60.0)
        if now >= end_s:
            break
        index += 1
        name = f"random-{index}"
        most = max(1, math.floor(profile.deploy_fraction_max * fleet))
        deploy = Deploy(version=stream.choice(names), name=name, phase=profile.deploy_phase,
                        sample=stream.randint(1, most), strategy=stream.choice(STRATEGIES),
                        batch_size=stream.randint(1, 3), bake_s=round(stream.uniform(0, 2), 3),
                        downtime_s=round(stream.uniform(0.2, 2), 3), handoff=stream.chance(0.5))
        drawn.append(ScheduledFault(round(now, 3), deploy))
        if stream.chance(profile.deploy_rollback_probability):
            at = round(stream.uniform(now, end_s), 3)
            if at < end_s:
                drawn.append(ScheduledFault(at, Rollback(deployment=name)))
    return drawn
