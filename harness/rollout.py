"""The deployment orchestrator: one ``Rollout`` per ``Deploy``, and the run's ``Deployments``.

Theory of operation. A rollout is a state machine driven by unowned kernel events (kind
``deploy``); it keeps at most one pending event, so stopping it (at the heal phase, or to roll back)
is cancelling that event. Its life:

    plan ─▶ [batch: (handoff ─▶) stop ─▶ downtime ─▶ start ─▶ bake with alarms]* ─▶ done
                 any time: rollback ─▶ [reverse batches: restore version and flag]* ─▶ rolled-back

A batch: every node's version is installed at once (``system.install_version``); stateful nodes
with ``handoff`` are asked to hand their leaderships over (``prepare_stop``) and polled every
``HANDOFF_POLL_S`` until ``ready_to_stop`` or the handoff timeout; then each node that was up is
crashed and started again after ``downtime_s`` (a node that was already down just gets the new
version for its next start; one that another fault took down meanwhile is left to it). Phase W
restarts nothing: it switches the flag. Then the bake: ``bake_s`` during which ``system.health`` is
judged every ``ALARM_CHECK_S`` against the thresholds, over the operations invoked since the batch
was up (at most ``alarm_window_s`` back). An alarm rolls the deployment back if
``rollback_on_alarm``.

A rollback restores, for every node the rollout touched, the version and flag it had before
(nodes in the reverse order of their batches, with the deployment's own handoff and downtime, no
bake); a node whose version is unchanged gets only its flag back, without a restart.

``Deployments`` (``world.deployments``, created by the first deployment) holds every rollout by
name, the refusals, and each node's installs over time, and turns them into metrics
(``deploy.<name>.…``) and into per-node version intervals for reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.deploy import (
    ALARM_CHECK_S,
    MIN_ALARM_OPERATIONS,
    Deploy,
    DeploymentRefused,
    Health,
    auto_name,
    system_versions,
)

if TYPE_CHECKING:
    from harness.deploy import Version
    from harness.scheduler import Timer
    from harness.world import World

__all__ = [
    "HANDOFF_POLL_S",
    "Deployments",
    "Install",
    "Rollout",
    "deployment_metrics",
    "deployments_of",
]

_NS_PER_S = 1_000_000_000
HANDOFF_POLL_S = 0.05  # how often a handoff's progress is checked


def deployments_of(world: World) -> Deployments:
    """The run's deployments (created on first use)."""
    registry = getattr(world, "deployments", None)
    if registry is None:
        registry = Deployments(world)
        world.deployments = registry  # type: ignore[attr-defined]
    return registry


def deployment_metrics(world: World) -> dict[str, float]:
    """``deploy.<name>.…`` for every deployment of the run (none if there was none)."""
    registry = getattr(world, "deployments", None)
    return registry.metrics() if registry is not None else {}


@dataclass(frozen=True, slots=True)
class Install:
    """A change of what a node runs: a version installed (or a flag switched), by which rollout."""

    time_ns: int
    node: str
    version: str
    writes: bool
    rollout: str
    action: str  # "install" | "flag" | "rollback"


@dataclass(slots=True)
class _Batch:
    nodes: list[str]
    stopped: dict[str, int] = field(default_factory=dict)  # node → its epoch after our crash
    up_ns: int | None = None  # when every node of the batch was back


class Rollout:
    """One deployment in progress or done. See the module docstring for its life."""

    def __init__(self, registry: Deployments, deploy: Deploy, name: str) -> None:
        self.registry = registry
        self.world = registry.world
        self.system: Any = registry.world.system
        self.deploy = deploy
        self.name = name
        self.state = "planned"  # planned | running | done | rolling-back | rolled-back | stopped
        self.versions: dict[str, Version] = dict(system_versions(type(self.system)) or {})
        self.roles: dict[str, str] = {}
        self.batches: list[_Batch] = []
        self.next_batch = 0
        self.before: dict[str, tuple[str, bool]] = {}  # node → (version, flag) before we touched it
        self.hit: set[str] = set()  # nodes that got the version from this rollout
        self.events: list[tuple[int, str]] = []  # (time, what happened), for reports
        self.started_ns = self.world.kernel.now_ns
        self.finished_ns: int | None = None
        self.alarm_ns: int | None = None
        self.rollback_ns: int | None = None  # when the rollback started
        self.rolled_back_ns: int | None = None
        self.fleet = 0  # nodes of the selected roles the system deploys to
        self._timer: Timer | None = None
        self._rollback_batches: list[_Batch] = []
        self._rollback_index = 0
        self._deadline_ns = 0

    # -- planning ---------------------------------------------------------------------------------
    def plan(self) -> None:
        """Choose the nodes and cut them into batches; refuse phase W if a node cannot read."""
        deploy, world = self.deploy, self.world
        self.roles = dict(self.system.deploy_targets(world))
        roles = set(deploy.roles) or set(self.roles.values())
        self.fleet = sum(role in roles for role in self.roles.values())
        nodes = self._selected()
        if deploy.phase == "write":
            self._check_readable()
            nodes = [n for n in nodes if self.system.installed_version(world, n)[0] == deploy.version]
            if not nodes:
                raise DeploymentRefused(f"refused {self.name} (phase W): no selected node runs "
                                        f"{deploy.version}")
        self.batches = [_Batch(batch) for batch in self._cut(nodes)]
        self.log(f"planned {len(nodes)} node(s) in {len(self.batches)} batch(es): "
                 + " | ".join(",".join(b.nodes) for b in self.batches))

    def _selected(self) -> list[str]:
        deploy, world = self.deploy, self.world
        wanted = {world.resolve(name) for name in deploy.nodes}
        stateful = self._stateful
        order = sorted(self.roles, key=lambda n: (stateful(n), world.nodes[n].az, n))
        nodes = [n for n in order if (not wanted or n in wanted)
                 and (not deploy.azs or world.nodes[n].az in deploy.azs)
                 and (not deploy.roles or self.roles[n] in deploy.roles)]
        nodes = nodes[:math.ceil(deploy.fraction * len(nodes) - 1e-9)]
        if deploy.sample and deploy.sample < len(nodes):
            chosen = set(world.rng.fork(f"deploy/{self.name}").sample(nodes, deploy.sample))
            nodes = [n for n in nodes if n in chosen]
        return nodes

    def _stateful(self, node: str) -> bool:
        return bool(type(self.system).DEPLOY_ROLES.get(self.roles.get(node, ""), False))

    def _check_readable(self) -> None:
        """M25: phase W only once every node the system deploys to reads the format."""
        version = self.versions[self.deploy.version]
        below = []
        running = getattr(self.system, "running_version", None)
        for node in sorted(self.roles):
            current = (running(self.world, node) if running is not None
                       else self.system.installed_version(self.world, node)[0])
            if not self.versions[current].can_read(version.writes_format):
                below.append(f"{node} runs {current}")
        if below:
            raise DeploymentRefused(
                f"refused {self.name} (phase W of {self.deploy.version}): "
                f"{', '.join(below)}, which cannot read format {version.writes_format}; deploy "
                f"phase R (a version that reads it) to every node first")

    def _cut(self, nodes: list[str]) -> list[list[str]]:
        deploy = self.deploy
        if not nodes:
            return []
        if deploy.strategy == "all_at_once":
            return [nodes]
        first: list[list[str]] = []
        if deploy.strategy == "canary":
            first, nodes = [nodes[:deploy.canary_size]], nodes[deploy.canary_size:]
        batches: list[list[str]] = []
        for node in nodes:  # a batch of stateful nodes never spans two availability zones
            last = batches[-1] if batches else None
            if (last is None or len(last) >= deploy.batch_size
                    or self._stateful(node) != self._stateful(last[0])
                    or (self._stateful(node) and
                        self.world.nodes[node].az != self.world.nodes[last[0]].az)):
                batches.append([node])
            else:
                last.append(node)
        return first + batches

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.state = "running"
        self._later(0, self._next)

    def _next(self) -> None:
        if self.next_batch >= len(self.batches):
            self.state, self.finished_ns = "done", self.now
            self.log("done")
            return
        batch = self.batches[self.next_batch]
        self.next_batch += 1
        if self.deploy.phase == "write":
            self._switch_flags(batch)
            return
        writes = self.deploy.phase == "full"
        targets = [(node, self.deploy.version, writes) for node in batch.nodes]
        self._change(batch, targets, "install", self._bake)

    def _switch_flags(self, batch: _Batch) -> None:
        try:
            self._check_readable()  # a node may have been rolled back since the rollout began
        except DeploymentRefused as refusal:
            self.registry.refusals.append((self.now, str(refusal)))
            self.state = "stopped"
            self.log(f"stopped: {refusal}")
            return
        for node in batch.nodes:
            self._remember(node)
            self._set(node, self.deploy.version, True, "flag")
            self.hit.add(node)
        batch.up_ns = self.now
        self._bake(batch)

    def _change(self, batch: _Batch, targets: list[tuple[str, str, bool]], action: str,
                then: Any) -> None:
        """Install ``targets`` (node, version, flag), restarting what must be, then ``then(batch)``."""
        restart = []
        for node, version, writes in targets:
            if action == "install":
                self._remember(node)
            current = self.system.installed_version(self.world, node)
            if current == (version, writes):
                continue
            if current[0] == version:  # same build: the flag switches without a restart
                self.system.set_write_flag(self.world, node, writes)
                self._record(node, version, writes, "flag" if action == "install" else action)
            else:
                self.system.install_version(self.world, node, version, writes)
                self._record(node, version, writes, action)
                restart.append(node)
            if action == "install":
                self.hit.add(node)
        up = [node for node in restart if self.world.nodes[node].is_up]
        self.log(f"{action} {', '.join(f'{n}={v}' + ('+w' if w else '') for n, v, w in targets)}")
        draining = [n for n in up if self._stateful(n) and self.deploy.handoff]
        for node in draining:
            self.system.prepare_stop(self.world, node)
        self._deadline_ns = self.now + _ns(self.deploy.handoff_timeout_s)
        self._await_handoff(batch, up, draining, then)

    def _await_handoff(self, batch: _Batch, up: list[str], draining: list[str], then: Any) -> None:
        pending = [n for n in draining if not self.system.ready_to_stop(self.world, n)]
        if pending and self.now < self._deadline_ns:
            self._later(HANDOFF_POLL_S, self._await_handoff, batch, up, draining, then)
            return
        if pending:
            self.log(f"handoff timed out on {', '.join(pending)}; stopping anyway")
        batch.stopped = {}
        for node in up:
            machine = self.world.nodes[node]
            if machine.is_up:
                machine.crash()
                batch.stopped[node] = machine.epoch
        self._later(self.deploy.downtime_s if batch.stopped else 0, self._restart, batch, then)

    def _restart(self, batch: _Batch, then: Any) -> None:
        for node, epoch in batch.stopped.items():
            machine = self.world.nodes[node]
            if machine.epoch == epoch and machine.state == "crashed":  # nobody else took it down
                machine.start()
            self.system.started(self.world, node)
        batch.up_ns = self.now
        then(batch)

    def _bake(self, batch: _Batch) -> None:
        if self.deploy.bake_s <= 0:
            self._next()
            return
        self.log(f"baking {self.deploy.bake_s:g}s")
        self._later(min(ALARM_CHECK_S, self.deploy.bake_s), self._check_alarms, batch,
                    self.now + _ns(self.deploy.bake_s))

    def _check_alarms(self, batch: _Batch, bake_end_ns: int) -> None:
        alarm = self._alarm(batch)
        if alarm is not None:
            self.alarm_ns = self.alarm_ns or self.now
            self.log(f"alarm: {alarm}")
            if self.deploy.rollback_on_alarm:
                self.rollback(f"alarm: {alarm}")
                return
        if self.now >= bake_end_ns:
            self._next()
            return
        self._later(min(ALARM_CHECK_S, (bake_end_ns - self.now) / _NS_PER_S), self._check_alarms,
                    batch, bake_end_ns)

    def _alarm(self, batch: _Batch) -> str | None:
        deploy = self.deploy
        if deploy.alarm_error_rate is None and deploy.alarm_latency_ms is None:
            return None
        start = max(batch.up_ns or self.now, self.now - _ns(deploy.alarm_window_s))
        health: Health = self.system.health(self.world, start, self.now)
        if health.operations < MIN_ALARM_OPERATIONS:
            return None
        if deploy.alarm_error_rate is not None and health.error_rate > deploy.alarm_error_rate:
            return (f"error rate {health.error_rate:.1%} > {deploy.alarm_error_rate:.1%} "
                    f"({health.failures} of {health.operations} operations)")
        if deploy.alarm_latency_ms is not None and health.latency_ms_p99 > deploy.alarm_latency_ms:
            return f"p99 latency {health.latency_ms_p99:.0f} ms > {deploy.alarm_latency_ms:g} ms"
        return None

    # -- rollback ---------------------------------------------------------------------------------
    def rollback(self, reason: str) -> None:
        """Stop rolling out and give every touched node back what it had, in reverse order."""
        if self.state in ("rolling-back", "rolled-back"):
            return
        self._cancel()
        self.state, self.rollback_ns = "rolling-back", self.now
        self.log(f"rolling back ({reason})")
        done = [batch for batch in self.batches[:self.next_batch]]
        self._rollback_batches = [_Batch([n for n in reversed(b.nodes) if n in self.before])
                                  for b in reversed(done)]
        self._rollback_index = 0
        self._later(0, self._next_rollback)

    def _next_rollback(self, _: _Batch | None = None) -> None:
        if self._rollback_index >= len(self._rollback_batches):
            self.state, self.rolled_back_ns = "rolled-back", self.now
            self.log("rolled back")
            return
        batch = self._rollback_batches[self._rollback_index]
        self._rollback_index += 1
        targets = [(node, *self.before[node]) for node in batch.nodes]
        self._change(batch, targets, "rollback", self._next_rollback)

    def stop(self) -> None:
        """The fault phase is over: stop where we are (nodes drained for a handoff are released)."""
        if self.state in ("done", "rolled-back", "stopped"):
            return
        self._cancel()
        self.log(f"stopped at the end of the fault phase ({self.state})")
        self.state = "stopped"
        for node in sorted(self.before):
            self.system.started(self.world, node)

    # -- helpers ----------------------------------------------------------------------------------
    def _remember(self, node: str) -> None:
        self.before.setdefault(node, self.system.installed_version(self.world, node))

    def _set(self, node: str, version: str, writes: bool, action: str) -> None:
        self.system.set_write_flag(self.world, node, writes)
        self._record(node, version, writes, action)

    def _record(self, node: str, version: str, writes: bool, action: str) -> None:
        self.registry.installs.append(Install(self.now, node, version, writes, self.name, action))

    def log(self, text: str) -> None:
        self.events.append((self.now, text))
        self.registry.log.append((self.now, self.name, text))
        kernel = self.world.kernel
        kernel.trace.record((kernel.now_ns, None, "deploy", (self.name, text)))

    def _later(self, delay_s: float, callback: Any, *args: Any) -> None:
        self._timer = self.world.kernel.call_later(_ns(delay_s), callback, *args, kind="deploy",
                                                   detail=self.name)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def now(self) -> int:
        return self.world.kernel.now_ns


class Deployments:
    """Every rollout of a run, by name; refusals; installs over time; metrics."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.rollouts: dict[str, Rollout] = {}
        self.refusals: list[tuple[int, str]] = []
        self.installs: list[Install] = []
        self.unnamed = 0  # deployments started without a name (deploy-1, deploy-2…)
        self.log: list[tuple[int, str, str]] = []  # (time, rollout, what happened), in order

    def start(self, deploy: Deploy) -> Any:
        """Plan and start a rollout (the ``Deploy`` fault's ``apply``); its undo stops it."""
        if not deploy.name:
            self.unnamed += 1
        name = deploy.name or auto_name(self.unnamed)
        if name in self.rollouts:
            self._refuse(f"refused {name}: a deployment of that name already ran")
        rollout = Rollout(self, deploy, name)
        try:
            rollout.plan()
        except DeploymentRefused as refusal:
            self._refuse(str(refusal))
        self.rollouts[name] = rollout
        rollout.start()
        return rollout.stop

    def rollback(self, name: str, reason: str) -> Rollout:
        rollout = self.rollouts.get(name)
        if rollout is None:
            self._refuse(f"refused rollback of {name!r}: no such deployment has started "
                         f"(started: {', '.join(self.rollouts) or 'none'})")
        rollout.rollback(reason)
        return rollout

    def _refuse(self, reason: str) -> Any:
        now = self.world.kernel.now_ns
        self.refusals.append((now, reason))
        self.log.append((now, "-", reason))
        self.world.kernel.trace.record((now, None, "deploy-refused", reason))
        raise DeploymentRefused(reason)

    def metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = {"deploy.refusals": float(len(self.refusals))}
        for name, rollout in self.rollouts.items():
            prefix = f"deploy.{name}."
            metrics[prefix + "nodes"] = float(len(rollout.hit))
            metrics[prefix + "share_of_fleet"] = round(len(rollout.hit) / rollout.fleet, 4) \
                if rollout.fleet else 0.0
            metrics[prefix + "completed"] = float(rollout.state == "done")
            metrics[prefix + "rolled_back"] = float(rollout.state == "rolled-back")
            metrics[prefix + "alarmed"] = float(rollout.alarm_ns is not None)
            if rollout.finished_ns is not None:
                metrics[prefix + "duration_s"] = _s(rollout.finished_ns - rollout.started_ns)
            if rollout.alarm_ns is not None:
                metrics[prefix + "time_to_alarm_s"] = _s(rollout.alarm_ns - rollout.started_ns)
            if rollout.rolled_back_ns is not None:
                since = rollout.alarm_ns if rollout.alarm_ns is not None else rollout.rollback_ns
                assert since is not None
                metrics[prefix + "time_to_roll_back_s"] = _s(rollout.rolled_back_ns - since)
        return metrics

    def timeline(self) -> list[tuple[int, str, str]]:
        """(time, rollout, what happened) for every rollout, in the order it happened (reports)."""
        return list(self.log)


def _ns(seconds: float) -> int:
    return round(seconds * _NS_PER_S)


def _s(nanoseconds: int) -> float:
    return round(nanoseconds / _NS_PER_S, 6)
