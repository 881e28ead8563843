"""The scenario: everything a run needs besides its seed, as frozen data.

A ``Scenario`` is what a YAML file says (``harness.scenario_loader`` reads and validates it) and what a
Python test may build directly. It names the topology, the system under test (by import path) and its
configuration, the network and disk settings, the fault phase (scripted faults plus a random profile)
and the heal phase that follows it, during which the system must converge (safety, then liveness).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.disk import DiskConfig
from harness.network import LinkConfig
from harness.params import param
from harness.timeline import FaultProfile, ScheduledFault
from harness.world import Topology

__all__ = ["Scenario", "SystemSpec", "RunLimits"]


@dataclass(frozen=True, slots=True)
class SystemSpec:
    """The system under test: an import path and its configuration."""

    use: str  # "package.module:ClassName"; the class is called with the configuration
    config: Any = None  # an instance of the class's ``Config`` dataclass, or a plain dict


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Limits on one run; hitting one ends the run with that reason (never a hang)."""

    max_steps: int = param("most events the kernel may dispatch in the whole run", 5_000_000,
                           minimum=1)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A complete, validated description of a run, minus the seed."""

    name: str
    topology: Topology
    system: SystemSpec
    description: str = ""
    duration_s: float = 60.0  # the fault phase: scripted and random faults strike in [0, duration_s)
    heal_s: float = 30.0  # the heal phase: faults undone, every node up; the system must converge
    link: LinkConfig = field(default_factory=LinkConfig)
    disk: DiskConfig = field(default_factory=DiskConfig)
    faults: tuple[ScheduledFault, ...] = ()
    random_faults: FaultProfile | None = None
    limits: RunLimits = field(default_factory=RunLimits)
    seed: int = 0  # the seed used when none is given on the command line
    source: str | None = None  # the file it was loaded from, for reproduction commands
