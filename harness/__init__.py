"""Graylink: deterministic fault-injection testing for replicated systems. One seed decides the run.

The public API. Users import from ``harness``; the modules behind it are internals.

- Run: ``Simulation``, ``run_scenario``, ``Result``; scenarios: ``Scenario``, ``SystemSpec``,
  ``Variant``, ``Expectation``, ``parse_expectation``, ``load_scenario``, ``parse_scenario``.
- Write a system: ``NodeContext`` (what a node's program sees), ``World``, ``Topology``, ``NodeSpec``,
  ``Failure``, ``param`` (declare configuration fields), ``DiskFullError``; for its optional
  ``timeline(world)`` hook (what the HTML report draws): ``SystemTimeline``, ``Band``, ``Marker``,
  ``ClientOperation``, ``client_operations``.
- Faults (frozen dataclasses): see ``harness.faults``; ``FaultProfile`` for random faults.
- Deployments (``harness.deploy``): the ``Deploy`` and ``Rollback`` faults; a deployable system
  declares ``Version``s and reports ``Health``; ``upgrade_downgrade_suite`` (M27) in
  ``harness.upgrade_suite``.
- Fuzzing: ``harness.strategies`` (Hypothesis strategies for faults, fault timelines, random fault
  profiles, configurations and whole scenarios, around a ``FaultSpace``); ``FuzzSettings`` and
  ``FuzzOutcome`` for ``harness.fuzz.fuzz`` (what ``graylink fuzz`` runs). Imported on first use,
  so that a plain run does not pay for importing Hypothesis.
- Lower layers for tests and tools: ``Kernel``, ``Rng``, ``NodeClock``, ``Trace``, ``LinkConfig``,
  ``DiskConfig``.
"""

from harness.clock import NodeClock
from harness.disk import DiskConfig, DiskFullError
from harness.errors import (
                            AmbientNondeterminismError,
                            Failure,
                            InternalError,
                            ScenarioError,
                            SystemUnderTestError,
)
from harness.expectations import Expectation, parse_expectation
from harness.faults import FAULT_KINDS, Fault  # before harness.deploy, which subclasses Fault
from harness.deploy import Deploy, Health, Rollback, Version  # noqa: I001
from harness.network import GrayLink, LinkConfig
from harness.node import Node, NodeContext, NodeProgram, ProgramFactory
from harness.params import param
from harness.recording import Band, ClientOperation, Marker, SystemTimeline, client_operations
from harness.result import Result
from harness.rng import Rng
from harness.scenario import RunLimits, Scenario, SystemSpec, Variant
from harness.scenario_loader import load_scenario, parse_scenario
from harness.scheduler import Kernel, RunOutcome, Timer
from harness.simulation import Simulation, run_scenario
from harness.timeline import FaultProfile, ScheduledFault
from harness.trace import Trace
from harness.world import NodeSpec, Topology, World

__all__ = [
    "AmbientNondeterminismError", "Band", "ClientOperation", "Deploy", "DiskConfig", "DiskFullError",
    "Health", "Rollback", "Version",
    "Expectation", "FAULT_KINDS", "Failure", "Fault",
    "FaultProfile", "GrayLink", "InternalError", "Kernel", "LinkConfig", "Marker", "Node", "NodeClock",
    "NodeContext", "NodeProgram", "NodeSpec", "ProgramFactory", "Result", "Rng", "RunLimits",
    "RunOutcome", "Scenario", "ScenarioError", "ScheduledFault", "Simulation", "SystemSpec",
    "SystemTimeline", "SystemUnderTestError", "Timer", "Topology", "Trace", "Variant", "World",
    "client_operations", "load_scenario", "param", "parse_expectation", "parse_scenario",
    "run_scenario",
]

_LAZY = {"strategies": ("harness.strategies", None), "FaultSpace": ("harness.strategies", "FaultSpace"),
         "FuzzSettings": ("harness.fuzz", "FuzzSettings"), "FuzzOutcome": ("harness.fuzz", "FuzzOutcome")}
__all__ += list(_LAZY)


def __getattr__(name: str) -> object:
    """The fuzzing names, imported on first use (they import Hypothesis)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
