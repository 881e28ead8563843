"""Graylink: deterministic fault-injection testing for replicated systems. One seed decides the run.

The public API. Users import from ``harness``; the modules behind it are internals.

- Run: ``Simulation``, ``run_scenario``, ``Result``; scenarios: ``Scenario``, ``SystemSpec``,
  ``Variant``, ``Expectation``, ``parse_expectation``, ``load_scenario``, ``parse_scenario``.
- Write a system: ``NodeContext`` (what a node's program sees), ``World``, ``Topology``, ``NodeSpec``,
  ``Failure``, ``param`` (declare configuration fields), ``DiskFullError``.
- Faults (frozen dataclasses): see ``harness.faults``; ``FaultProfile`` for random faults.
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
from harness.faults import FAULT_KINDS, Fault
from harness.network import GrayLink, LinkConfig
from harness.node import Node, NodeContext, NodeProgram, ProgramFactory
from harness.params import param
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
    "AmbientNondeterminismError", "DiskConfig", "DiskFullError", "Expectation", "FAULT_KINDS",
    "Failure", "Fault",
    "FaultProfile", "GrayLink", "InternalError", "Kernel", "LinkConfig", "Node", "NodeClock",
    "NodeContext", "NodeProgram", "NodeSpec", "ProgramFactory", "Result", "Rng", "RunLimits",
    "RunOutcome", "Scenario", "ScenarioError", "ScheduledFault", "Simulation", "SystemSpec",
    "SystemUnderTestError", "Timer", "Topology", "Trace", "Variant", "World", "load_scenario",
    "param", "parse_expectation", "parse_scenario", "run_scenario",
]

