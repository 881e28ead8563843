"""One run: a scenario and a seed in, a ``Result`` out.

Theory of operation. ``Simulation(scenario, seed).run()`` reads like a table of contents:

1. build the world (kernel, network, nodes, disks) from the seed and the topology;
2. let the system under test install its programs, then start every node that has one;
3. schedule the fault timeline: the scripted faults plus the random profile, expanded from the seed;
4. the fault phase: run the kernel until ``duration_s``, inside the ambient-nondeterminism sandbox;
5. the heal phase: undo every fault still in effect, bring every node back up, run ``heal_s`` more;
6. ask the system to check itself (``check``: failures; ``checks``: checker verdicts with evidence),
   collect metrics, and return the result with the trace digest;
7. judge the scenario's expectations (``harness.expectations``) against the metrics and verdicts: a
   failed one fails the run, and a holding ``check NAME fails`` makes NAME's failures expected.

A run always returns a ``Result``, even when the system fails, a limit is hit, the user presses Ctrl-C
(reason ``interrupted``) or the harness itself breaks (reason ``internal-error``): the harness never
loses a report. The wall clock is read only here, outside the sandbox, to report ``wall_time_s``.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Any

from harness.ambient import AmbientSandbox
from harness.checkers.verdict import CheckResult
from harness.errors import Failure
from harness.expectations import judge, not_judged
from harness.result import Result
from harness.rollout import deployment_metrics
from harness.scenario import Scenario
from harness.system import System, resolve_system_class
from harness.timeline import FaultTimeline, expand_profile
from harness.trace import Trace
from harness.world import World

__all__ = ["Simulation", "run_scenario"]

_NS_PER_S = 1_000_000_000


class Simulation:
    """Runs one scenario with one seed. Construct, then call ``run()`` once."""

    def __init__(self, scenario: Scenario, seed: int | None = None, *,
                 trace_path: str | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        link = scenario.link
        profile = scenario.random_faults
        if profile is not None and profile.loss_probability > link.loss_probability:
            link = dataclasses.replace(link, loss_probability=profile.loss_probability)
        self.world = World(self.seed, scenario.topology, link=link, disk=scenario.disk,
                           trace=Trace(trace_path))
        self.timeline = FaultTimeline(self.world)
        self.system: System | None = None
        self.checks: tuple[CheckResult, ...] = ()
        self._verdict_reached = False  # the run got as far as the system's checks
        self._baseline_link = scenario.link

    def run(self) -> Result:
        wall_start = time.perf_counter()
        reason, failures = "completed", []
        try:
            reason, failures = self._run_phases()
        except KeyboardInterrupt:
            reason, failures = "interrupted", [self._failure("interrupted", "run interrupted by user")]
        except Exception as error:  # noqa: BLE001 - a harness bug becomes a report, not a lost run
            detail = tuple(traceback.format_exc().rstrip().splitlines()[-12:])
            reason = "internal-error"
            failures = [self._failure("internal-error", f"{type(error).__name__}: {error}", detail)]
        return self._result(reason, failures, time.perf_counter() - wall_start)

    # -- the phases -----------------------------------------------------------------------------
    def _run_phases(self) -> tuple[str, list[Failure]]:
        scenario, world = self.scenario, self.world
        self._set_up_system()
        self._schedule_faults()
        fault_end_ns = round(scenario.duration_s * _NS_PER_S)
        run_end_ns = world.end_ns = fault_end_ns + round(scenario.heal_s * _NS_PER_S)
        max_steps = scenario.limits.max_steps
        with AmbientSandbox(world):
            outcome = world.kernel.run(until_ns=fault_end_ns, max_steps=max_steps)
            if outcome.reason in ("until", "quiescent"):
                self._heal()
                outcome = world.kernel.run(until_ns=run_end_ns, max_steps=max_steps - outcome.steps)
        if outcome.failure is not None:
            return "failure", [outcome.failure]
        if outcome.reason == "max_steps":
            message = (f"the run hit its limit of {max_steps} events at "
                       f"t={outcome.time_ns / 1e9:.3f}s (a livelock, or raise limits.max_steps)")
            return "step-limit", [self._failure("step-limit", message)]
        return self._verdict()

    def _verdict(self) -> tuple[str, list[Failure]]:
        """The system's own checks (``check``) and its checkers' verdicts (``checks``)."""
        assert self.system is not None
        world = self.world
        self._verdict_reached = True
        with AmbientSandbox(world):
            failures = list(self.system.check(world)) if hasattr(self.system, "check") else []
            if hasattr(self.system, "checks"):
                self.checks = tuple(self.system.checks(world))
        for check in self.checks:
            failure = check.failure(world.kernel.now_ns)
            if failure is not None:
                failures.append(failure)
        return ("failure" if failures else "completed"), failures

    def _set_up_system(self) -> None:
        spec = self.scenario.system
        system_class = resolve_system_class(spec.use)
        config = spec.config if spec.config is not None else {}
        self.system = system_class(config)
        self.world.system = self.system
        self.system.setup(self.world)
        for name in self.world.node_names():
            node = self.world.nodes[name]
            if node.installed:
                node.start()

    def _schedule_faults(self) -> None:
        scenario = self.scenario
        scheduled = list(scenario.faults)
        if scenario.random_faults is not None:
            stream = self.world.rng.fork("faults/random")
            scheduled += expand_profile(scenario.random_faults, self.world, stream, 0.0,
                                        scenario.duration_s)
        for fault in sorted(scheduled, key=lambda entry: entry.at_s):
            self.timeline.schedule(fault)

    def _heal(self) -> None:
        """Safety phase over: end every fault, restore the network, bring every node back up."""
        world = self.world
        world.heal_started_ns = world.kernel.now_ns
        world.kernel.trace.record((world.kernel.now_ns, None, "phase", "heal"))
        self.timeline.undo_all()
        world.network.heal_all()
        world.network.set_link_defaults(self._baseline_link)
        for name in world.node_names():
            node = world.nodes[name]
            node.disk.heal()
            node.resume()
            if not node.is_up and node.installed:
                node.start()

    # -- the result -----------------------------------------------------------------------------
    def _failure(self, kind: str, message: str, evidence: tuple[str, ...] = ()) -> Failure:
        return Failure(kind, message, self.world.kernel.now_ns, None, evidence)

    def _result(self, reason: str, failures: list[Failure], wall_time_s: float) -> Result:
        world, scenario = self.world, self.scenario
        trace = world.kernel.trace
        digest = trace.digest()
        tail = tuple(_format_event(event) for event in trace.tail()[-20:])
        trace.close()
        metrics: dict[str, Any] = {}
        if self.system is not None and reason not in ("internal-error", "interrupted"):
            try:
                metrics.update(self.system.metrics(world))
            except Exception as error:  # noqa: BLE001 - metrics must not lose the report
                failures.append(self._failure("internal-error", f"metrics() raised {error!r}"))
                reason = "internal-error"
        for check in self.checks:
            for name, value in check.metrics.items():
                metrics.setdefault(name, value)
        metrics.setdefault("faults_applied", len(self.timeline.log))
        for name, value in deployment_metrics(world).items():  # deploy.<name>.… (harness.rollout)
            metrics.setdefault(name, value)
        checks, expected = self.checks, ()  # expected: failures the expectations foretold
        if scenario.expectations:
            reason, failures, checks, expected = self._judge(reason, failures, metrics)
        return Result(scenario=scenario.name, source=scenario.source, seed=self.seed,
                      passed=not failures, reason=reason, failures=tuple(failures),
                      metrics=metrics, trace_digest=digest,
                      sim_time_s=world.kernel.now_ns / _NS_PER_S, wall_time_s=wall_time_s,
                      events=trace.events(), faults=tuple(self.timeline.log),
                      statistics=world.statistics(), trace_tail=tail, checks=checks,
                      variant=scenario.variant_name, expected_failures=expected,
                      recording=self._recording())

    def _recording(self) -> dict[str, Any]:
        """What the HTML report draws (``harness.recording``), taken after the digest. A failure to
        take it is shown in the report, never at the cost of the result."""
        scenario = self.scenario
        try:
            return self.world.recording.export(self.system, description=scenario.description,
                                               duration_s=scenario.duration_s,
                                               heal_s=scenario.heal_s)
        except Exception as error:  # noqa: BLE001 - a harness bug in a drawing must not lose the run
            return {"error": f"the recording failed (a bug in Graylink): "
                             f"{type(error).__name__}: {error}"}

    def _judge(self, reason: str, failures: list[Failure], metrics: dict[str, Any]) -> tuple[
            str, list[Failure], tuple[CheckResult, ...], tuple[Failure, ...]]:
        """The expectations' verdicts, appended to the checks; ``unknown`` if the run ended early."""
        expectations = self.scenario.expectations
        if not self._verdict_reached or reason not in ("completed", "failure"):
            return reason, failures, self.checks + not_judged(expectations, reason), ()
        judgement = judge(expectations, metrics, self.checks, failures, self.world.kernel.now_ns)
        failures = list(judgement.failures)
        return (("failure" if failures else "completed"), failures,
                self.checks + judgement.checks, judgement.expected_failures)


def _format_event(event: tuple[Any, ...]) -> str:
    time_ns, node, kind, detail = event
    return f"t={time_ns / 1e9:.6f}s {node or '-'} {kind} {detail}"


def run_scenario(scenario: Scenario, seed: int | None = None, *,
                 trace_path: str | None = None) -> Result:
    """Run ``scenario`` once with ``seed`` (default: the scenario's own seed)."""
    return Simulation(scenario, seed, trace_path=trace_path).run()
