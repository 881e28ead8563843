"""The fault timeline: scripted faults and random fault profiles, turned into kernel events.

Theory of operation. A scenario's faults come from two places: a scripted list ("at 10 s, crash n1")
and a ``FaultProfile`` of rates and ranges ("two crashes a minute, 1-5 s down"). Before the run starts,
the profile is expanded, from the seed, into more scripted faults: each fault family draws its arrival
times (a Poisson process) and parameters from its own stream, ``faults/random/<family>``, so turning one
family on or off never shifts another's draws. The whole schedule is therefore known, and reported,
before the first event.

``FaultTimeline`` schedules each fault as an unowned kernel event (kind ``fault``). A fault with a
duration is undone after it; ``undo_all()`` undoes every fault still in effect, newest first, at the
start of the heal phase. Every application is logged as an ``AppliedFault`` for reports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.deploy import draw_deployments
from harness.faults import (ClockDrift, ClockJump, ClockSkew, Crash, Fault, GrayLinkFault,
                            Partition, Pause, PowerOff, PowerOffAz, Undo)
from harness.params import param
from harness.world import SELECTOR, UnresolvedTarget

if TYPE_CHECKING:
    from harness.rng import Rng
    from harness.world import World

__all__ = ["ScheduledFault", "FaultProfile", "FaultTimeline", "AppliedFault", "expand_profile"]

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """A fault and the time (since the start of the run) at which it strikes."""

    at_s: float
    fault: Fault

    def describe(self) -> str:
        return f"at {self.at_s:g}s {self.fault.describe()}"


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """Random faults drawn from the seed during the fault phase. Every rate defaults to 0 (off)."""

    crash_per_minute: float = param("crashes per minute, across the target nodes", 0.0, minimum=0)
    crash_downtime_s_min: float = param("shortest time a crashed node stays down", 1.0, minimum=0)
    crash_downtime_s_max: float = param("longest time a crashed node stays down", 5.0, minimum=0)
    power_off_per_minute: float = param("power losses per minute, across the target nodes", 0.0,
                                        minimum=0)
    power_off_az_per_minute: float = param("power losses of a whole availability zone (every node "
                                           "in it) per minute, across the AZs that hold a target "
                                           "node", 0.0, minimum=0)
    power_off_az_s_min: float = param("shortest time a powered-off AZ stays dark", 5.0, minimum=0)
    power_off_az_s_max: float = param("longest time a powered-off AZ stays dark", 20.0, minimum=0)
    pause_per_minute: float = param("process pauses (GC stalls) per minute", 0.0, minimum=0)
    pause_ms_min: float = param("shortest pause", 100.0, minimum=0)
    pause_ms_max: float = param("longest pause", 3000.0, minimum=0)
    partition_per_minute: float = param("partitions isolating one node per minute", 0.0, minimum=0)
    partition_s_min: float = param("shortest partition", 1.0, minimum=0)
    partition_s_max: float = param("longest partition", 10.0, minimum=0)
    gray_link_per_minute: float = param("one-way gray links (drop one direction) per minute", 0.0,
                                        minimum=0)
    gray_link_s_min: float = param("shortest gray link", 1.0, minimum=0)
    gray_link_s_max: float = param("longest gray link", 10.0, minimum=0)
    clock_skew_ms_max: float = param("each node starts with a skew drawn from +/- this", 0.0,
                                     minimum=0)
    clock_drift_ppm_max: float = param("each node's clock runs fast or slow, for the whole fault "
                                       "phase, at a rate drawn from +/- this (parts per million): "
                                       "every real oscillator drifts", 0.0, minimum=0,
                                       maximum=500_000)
    clock_jump_per_minute: float = param("clock jumps per minute", 0.0, minimum=0)
    clock_jump_ms_max: float = param("largest clock jump, either direction", 1000.0, minimum=0)
    loss_probability: float = param("baseline chance any message is lost, on every link", 0.0,
                                    minimum=0, maximum=1)
    nodes: tuple[str, ...] = param("nodes the profile may strike; empty means every node whose role "
                                   "is 'server'", (), ref="node")
    deploy_per_minute: float = param("partial deploys per minute (a version on a seed-drawn sample "
                                     "of the nodes the system deploys to; harness/deploy.py)", 0.0,
                                     minimum=0)
    deploy_versions: tuple[str, ...] = param("versions the drawn deploys install; empty means every "
                                             "version the system declares", (), ref="version")
    deploy_fraction_max: float = param("largest share of the fleet one drawn deploy reaches", 0.5,
                                       minimum=0, maximum=1, exclusive_minimum=True)
    deploy_phase: str = param("phase of the drawn deploys: 'read' installs without emitting new "
                              "formats, 'full' emits them at once", "read", choices=("read", "full"))
    deploy_rollback_probability: float = param("chance a drawn deploy is rolled back later in the "
                                               "fault phase", 0.0, minimum=0, maximum=1)


def expand_profile(profile: FaultProfile, world: World, rng: Rng, start_s: float,
                   end_s: float) -> list[ScheduledFault]:
    """Draw the profile's faults for the window [start_s, end_s), sorted by time."""
    targets = list(profile.nodes) or [n.name for n in world.nodes.values() if n.role == "server"]
    targets.sort()
    if not targets:
        return draw_deployments(profile, world, rng.fork("deploy"), start_s, end_s)
    drawn: list[ScheduledFault] = []

    def arrivals(family: str, per_minute: float) -> list[tuple[float, Rng]]:
        stream = rng.fork(family)
        times, now = [], start_s
        while per_minute > 0:
            now += stream.expovariate(per_minute / 60.0)
            if now >= end_s:
                break
            times.append((round(now, 3), stream))  # millisecond precision: readable, replayable
        return times

    for at, stream in arrivals("crash", profile.crash_per_minute):
        down = stream.uniform(profile.crash_downtime_s_min, profile.crash_downtime_s_max)
        drawn.append(ScheduledFault(at, Crash(node=stream.choice(targets), duration_s=_ms(down))))
    for at, stream in arrivals("power_off", profile.power_off_per_minute):
        down = stream.uniform(profile.crash_downtime_s_min, profile.crash_downtime_s_max)
        drawn.append(ScheduledFault(at, PowerOff(node=stream.choice(targets),
                                                 duration_s=_ms(down))))
    zones = sorted({world.node(name).az for name in targets})
    for at, stream in arrivals("power_off_az", profile.power_off_az_per_minute):
        down = stream.uniform(profile.power_off_az_s_min, profile.power_off_az_s_max)
        drawn.append(ScheduledFault(at, PowerOffAz(az=stream.choice(zones), duration_s=_ms(down))))
    for at, stream in arrivals("pause", profile.pause_per_minute):
        length_ms = stream.uniform(profile.pause_ms_min, profile.pause_ms_max)
        drawn.append(ScheduledFault(at, Pause(node=stream.choice(targets),
                                              duration_s=_ms(length_ms / 1000.0))))
    for at, stream in arrivals("partition", profile.partition_per_minute):
        length = stream.uniform(profile.partition_s_min, profile.partition_s_max)
        drawn.append(ScheduledFault(at, Partition(side_a=(stream.choice(targets),),
                                                  duration_s=_ms(length))))
    for at, stream in arrivals("gray_link", profile.gray_link_per_minute):
        source, destination = stream.sample(targets, 2) if len(targets) > 1 else (targets[0],) * 2
        length = stream.uniform(profile.gray_link_s_min, profile.gray_link_s_max)
        drawn.append(ScheduledFault(at, GrayLinkFault(source=source, destination=destination,
                                                      duration_s=_ms(length))))
    for at, stream in arrivals("clock_jump", profile.clock_jump_per_minute):
        by_ms = stream.uniform(-profile.clock_jump_ms_max, profile.clock_jump_ms_max)
        drawn.append(ScheduledFault(at, ClockJump(node=stream.choice(targets), by_ms=round(by_ms, 3))))
    def spread(family: str, limit: float) -> list[tuple[str, float]]:
        """A value drawn from +/- ``limit`` for every target node, held for the whole phase."""
        stream = rng.fork(family)
        return [(name, stream.uniform(-limit, limit)) for name in targets] if limit > 0 else []

    for name, offset in spread("clock_skew", profile.clock_skew_ms_max):
        drawn.append(ScheduledFault(start_s, ClockSkew(node=name, offset_ms=round(offset, 3))))
    for name, rate in spread("clock_drift", profile.clock_drift_ppm_max):
        drawn.append(ScheduledFault(start_s, ClockDrift(node=name, drift_ppm=round(rate, 1))))
    drawn += draw_deployments(profile, world, rng.fork("deploy"), start_s, end_s)
    drawn.sort(key=lambda scheduled: scheduled.at_s)  # stable: ties keep family order
    return drawn


def _ms(seconds: float) -> float:
    """A drawn duration, rounded to the millisecond and never zero."""
    return max(round(seconds, 3), 0.001)


@dataclass(frozen=True, slots=True)
class AppliedFault:
    """A fault as it happened: when it struck and when (if ever) it was undone."""

    started_ns: int
    description: str
    kind: str
    family: str
    target: str | None
    ended_ns: int | None = None


@dataclass(slots=True)
class _Active:
    index: int
    undo: Undo
    timer: object | None = field(default=None)


class FaultTimeline:
    """Schedules faults on the kernel, undoes them when their duration ends, and logs them."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.log: list[AppliedFault] = []
        self._active: dict[int, _Active] = {}

    def schedule(self, scheduled: ScheduledFault) -> None:
        kernel = self._world.kernel
        kernel.call_at(round(scheduled.at_s * _NS_PER_S), self._strike, scheduled.fault,
                       kind="fault", detail=scheduled.fault.describe())

    def _strike(self, fault: Fault) -> None:
        kernel = self._world.kernel
        target = getattr(fault, "node", None) or getattr(fault, "az", None)
        try:
            resolved = self._resolutions(fault)  # whom its selectors (``leader(0)``) name right now
            undo = fault.apply(self._world)
        except UnresolvedTarget as missing:  # e.g. "leader(0)" while partition 0 has no leader
            kernel.trace.record((kernel.now_ns, None, "fault-skipped", str(missing)))
            self.log.append(AppliedFault(kernel.now_ns, f"skipped {fault.describe()}: {missing}",
                                         fault.kind, fault.family, target, kernel.now_ns))
            return
        index = len(self.log)
        description = fault.describe() + (f" [{', '.join(resolved)}]" if resolved else "")
        self.log.append(AppliedFault(kernel.now_ns, description, fault.kind, fault.family, target))
        if undo is None:
            return
        active = _Active(index, undo)
        self._active[index] = active
        if fault.duration_s is not None:
            active.timer = kernel.call_later(round(fault.duration_s * _NS_PER_S), self._end, index,
                                             kind="fault-end", detail=fault.describe())

    def _resolutions(self, fault: Fault) -> list[str]:
        names: list[str] = []
        for item in dataclasses.fields(fault):  # type: ignore[arg-type]
            value = getattr(fault, item.name)
            names.extend(value if isinstance(value, tuple) else [value])
        return [f"{name} = {self._world.resolve(name)}" for name in names
                if isinstance(name, str) and SELECTOR.match(name)]

    def _end(self, index: int) -> None:
        active = self._active.pop(index, None)
        if active is None:
            return
        active.undo()
        entry = self.log[index]
        self.log[index] = AppliedFault(entry.started_ns, entry.description, entry.kind, entry.family,
                                       entry.target, self._world.kernel.now_ns)

    def undo_all(self) -> None:
        """End every fault still in effect, newest first (the heal phase begins)."""
        for index in sorted(self._active, reverse=True):
            timer = self._active[index].timer
            if timer is not None:
                timer.cancel()  # type: ignore[attr-defined]
            self._end(index)
