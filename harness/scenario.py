"""The scenario: everything a run needs besides its seed, as frozen data.

A ``Scenario`` is what a YAML file says (``harness.scenario_loader`` reads and validates it) and what a
Python test may build directly. It names the topology, the system under test (by import path) and its
configuration, the network and disk settings, the fault phase (scripted faults plus a random profile)
and the heal phase that follows it, during which the system must converge (safety, then liveness),
and the expectations its run must meet (``harness.expectations``).

A scenario may declare ``variants``: the same run, from the same seed, with another system
configuration and expectations of its own (a mitigation on and off, a planted bug off and on).
A variant may also replace the scripted faults (another deployment plan, say).
``scenario.variant(name)`` is that variant as a plain ``Scenario``; ``variant_scenarios()`` is what a
run of the file means: every variant, or the scenario itself when it has none.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from harness.disk import DiskConfig
from harness.errors import ScenarioError
from harness.expectations import Expectation
from harness.network import LinkConfig
from harness.params import param
from harness.timeline import FaultProfile, ScheduledFault
from harness.world import Topology

__all__ = ["VARIANT_NAME", "RunLimits", "Scenario", "SystemSpec", "Variant"]

VARIANT_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")  # lower-case words joined by single dashes


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
class Variant:
    """The scenario again, from the same seed, with another system config and more expectations."""

    name: str  # lower-case letters, digits and dashes, unique in its scenario: "without-peer-check"
    config: Any = None  # the variant's whole system config (the base's with its overrides); None: the base's
    expectations: tuple[Expectation, ...] = ()  # judged in addition to the scenario's own
    faults: tuple[ScheduledFault, ...] | None = None  # its own fault script; None: the scenario's

    def __post_init__(self) -> None:
        if not VARIANT_NAME.match(self.name):
            raise ValueError(f"a variant's name is lower-case letters, digits and dashes "
                             f"(e.g. mitigation-off), got {self.name!r}")


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
    expectations: tuple[Expectation, ...] = ()  # judged after the run; a failed one fails it
    variants: tuple[Variant, ...] = ()  # run side by side, from the same seed, instead of this one
    variant_name: str | None = None  # set by variant(): which variant of its file this scenario is

    def __post_init__(self) -> None:
        names = [variant.name for variant in self.variants]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate variant name(s): {', '.join(duplicates)}")

    def variant(self, name: str) -> Scenario:
        """The variant ``name`` as a plain scenario: its config, both lists of expectations, and the
        name ``<scenario>[<variant>]``. A ``ScenarioError`` names the variants if there is no such one."""
        for variant in self.variants:
            if variant.name == name:
                config = self.system.config if variant.config is None else variant.config
                faults = self.faults if variant.faults is None else variant.faults
                return dataclasses.replace(
                    self, name=f"{self.name}[{name}]", variants=(), variant_name=name, faults=faults,
                    system=dataclasses.replace(self.system, config=config),
                    expectations=self.expectations + variant.expectations)
        known = ", ".join(variant.name for variant in self.variants) or "none (it declares none)"
        raise ScenarioError(f"the scenario {self.name!r} has no variant {name!r}; its variants: "
                            f"{known}", file=self.source)

    def variant_scenarios(self) -> tuple[Scenario, ...]:
        """What a run of the file means: each variant, in order, or this scenario if it has none."""
        return tuple(self.variant(v.name) for v in self.variants) if self.variants else (self,)
