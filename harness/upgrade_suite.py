"""The upgrade → functional test → downgrade → functional test suite (M27), for any deployable system.

Theory of operation. "The rolled-back state might be different from the initial state", and the
path from a new version back to the old one is the one "often missed in testing". This suite walks
it on purpose, in the simulator, before any deployment: it takes a scenario (the topology, the
system and its workload: the functional test is the system's own checks, plus any expectations you
add) and a list of upgrade steps (``Deploy`` faults: one ``full`` step, or phase R then phase W),
and runs

1. *upgrade*: the steps, ``step_s`` apart from ``start_s``, then ``settle_s`` of traffic on the new
   version; the functional test is judged at the end of that run;
2. *downgrade*: the same run (same seed, so the same history up to there) followed by the rollback
   of the named deployments (by default every step, the last first), ``step_s`` apart, and
   ``settle_s`` more; judged again. The state the new version wrote is on disk when the old one
   starts, which is the point.

Each stage is one ordinary run (``run_scenario``), so each failure comes with its seed and evidence.
Steps run rolling, a whole availability zone of stateful nodes at a time, without bake, with
handoff; unnamed steps are named ``step-1``, ``step-2``…

    report = upgrade_downgrade_suite(scenario, upgrade_steps("v2", read_then_write=True))
    assert report.passed, report.render_text()

or, from the shell, ``graylink upgrade-suite SCENARIO.yaml --to v2 [--read-then-write]`` (exit 0
when both stages pass, 1 when one fails, 2 on bad input).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.deploy import Deploy, Rollback, system_versions
from harness.expectations import parse_expectation
from harness.result import Result
from harness.scenario import Scenario
from harness.simulation import run_scenario
from harness.timeline import ScheduledFault

__all__ = ["SuiteReport", "SuiteStage", "add_upgrade_suite_command", "upgrade_downgrade_suite",
           "upgrade_steps"]


@dataclass(frozen=True, slots=True)
class SuiteStage:
    """One stage of the suite and the functional test's verdict at its end."""

    name: str  # "upgrade" | "downgrade"
    result: Result

    @property
    def passed(self) -> bool:
        return self.result.passed

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        problems = "; ".join(failure.message for failure in self.result.failures[:3])
        return f"{verdict}  {self.name}" + (f": {problems}" if problems else "")


@dataclass(frozen=True, slots=True)
class SuiteReport:
    stages: tuple[SuiteStage, ...]

    @property
    def passed(self) -> bool:
        return all(stage.passed for stage in self.stages)

    def stage(self, name: str) -> SuiteStage:
        return next(stage for stage in self.stages if stage.name == name)

    def render_text(self) -> str:
        lines = [f"upgrade/downgrade suite: {'PASSED' if self.passed else 'FAILED'}"]
        lines += [f"  {stage.summary()}" for stage in self.stages]
        return "\n".join(lines)


def upgrade_steps(version: str, *, read_then_write: bool = False, downtime_s: float = 0.5
                  ) -> tuple[Deploy, ...]:
    """The steps of an upgrade to ``version``: one-shot (``full``), or phase R then phase W."""
    def step(name: str, phase: str) -> Deploy:  # each AZ's stateful nodes at once, no bake
        return Deploy(version=version, name=name, phase=phase, strategy="rolling",
                      batch_size=1000, downtime_s=downtime_s)

    if read_then_write:
        return step("step-1", "read"), step("step-2", "write")
    return (step("step-1", "full"),)


def upgrade_downgrade_suite(scenario: Scenario, upgrade: Sequence[Deploy], *,
                            downgrade: Sequence[str] | None = None, seed: int | None = None,
                            start_s: float = 5.0, step_s: float = 5.0, settle_s: float = 10.0,
                            expect: Sequence[str] = ()) -> SuiteReport:
    """Run the suite (see the module docstring). ``downgrade``: the deployments to roll back, in
    order (default: every upgrade step, the last first). ``expect``: expectations added to the
    functional test (e.g. ``decode_failures == 0``)."""
    steps = [step if step.name else dataclasses.replace(step, name=f"step-{index + 1}")
             for index, step in enumerate(upgrade)]
    names = list(downgrade) if downgrade is not None else [step.name for step in reversed(steps)]
    up = [ScheduledFault(start_s + index * step_s, step) for index, step in enumerate(steps)]
    upgraded_s = start_s + len(steps) * step_s + settle_s
    down = [ScheduledFault(upgraded_s + index * step_s, Rollback(deployment=name))
            for index, name in enumerate(names)]
    downgraded_s = upgraded_s + len(names) * step_s + settle_s
    expectations = tuple(parse_expectation(text) for text in expect)
    base = dataclasses.replace(scenario, variants=(), variant_name=None, random_faults=None,
                               expectations=expectations)
    stages = (("upgrade", up, upgraded_s), ("downgrade", up + down, downgraded_s))
    return SuiteReport(tuple(
        SuiteStage(name, run_scenario(dataclasses.replace(
            base, name=f"{scenario.name}[{name}]", faults=tuple(faults), duration_s=duration),
            seed))
        for name, faults, duration in stages))


# -- the command -----------------------------------------------------------------------------------
def add_upgrade_suite_command(commands: Any) -> None:
    """``graylink upgrade-suite``: the suite on a scenario file, from the shell."""
    command = commands.add_parser(
        "upgrade-suite", help="upgrade, test, downgrade, test again (M27) on a scenario's cluster")
    command.add_argument("scenario", metavar="FILE")
    command.add_argument("--to", required=True, metavar="VERSION",
                         help="the version to upgrade to (one the system declares)")
    command.add_argument("--read-then-write", action="store_true",
                         help="upgrade in two steps, phase R then phase W (M25); default one step")
    command.add_argument("--downgrade", metavar="NAMES",
                         help="the steps to roll back, comma-separated, in order (default: every "
                              "step, the last first); the steps are step-1 (and step-2)")
    command.add_argument("--variant", metavar="NAME", help="run this variant of the scenario")
    command.add_argument("--seed", type=int, default=None, help="default: the scenario's own")
    command.add_argument("--expect", action="append", default=[], metavar="EXPR",
                         help="an expectation added to the functional test, e.g. "
                              "'decode_failures == 0' (repeatable)")
    command.add_argument("--downtime-s", type=float, default=0.5,
                         help="a node's restart time in each step (default 0.5)")
    command.set_defaults(handler=run_upgrade_suite_command)


def run_upgrade_suite_command(args: Any) -> int:
    from harness.errors import ScenarioError
    from harness.scenario_loader import load_scenario
    from harness.system import resolve_system_class

    scenario = load_scenario(args.scenario)
    if args.variant is not None:
        scenario = scenario.variant(args.variant)
    elif scenario.variants:
        names = ", ".join(variant.name for variant in scenario.variants)
        raise ScenarioError(f"the scenario has variants ({names}); choose one with --variant NAME",
                            file=args.scenario)
    versions = system_versions(resolve_system_class(scenario.system.use))
    if versions is None:
        raise ScenarioError(f"the system under test ({scenario.system.use}) declares no VERSIONS, "
                            f"so it cannot be upgraded", file=args.scenario)
    if args.to not in versions:
        raise ScenarioError(f"unknown version {args.to!r}; {scenario.system.use} declares "
                            f"{', '.join(sorted(versions))}", file=args.scenario, field="--to")
    for text in args.expect:
        try:
            parse_expectation(text)
        except ValueError as error:
            raise ScenarioError(f"{text!r}: {error}", file=args.scenario, field="--expect") from None
    steps = upgrade_steps(args.to, read_then_write=args.read_then_write, downtime_s=args.downtime_s)
    downgrade = None
    if args.downgrade is not None:
        downgrade = [name.strip() for name in args.downgrade.split(",") if name.strip()]
        known = [step.name for step in steps]
        unknown = [name for name in downgrade if name not in known]
        if unknown or not downgrade:
            raise ScenarioError(f"{', '.join(unknown) or 'nothing'} is not a step of this upgrade; "
                                f"its steps are {', '.join(known)}", file=args.scenario,
                                field="--downgrade")
    seed = scenario.seed if args.seed is None else args.seed
    command = (f"graylink upgrade-suite {args.scenario} --to {args.to}"
               + (" --read-then-write" if args.read_then_write else "")
               + (f" --downgrade {','.join(downgrade)}" if downgrade else "")
               + (f" --variant {args.variant}" if args.variant else "") + f" --seed {seed}"
               + "".join(f" --expect '{text}'" for text in args.expect))
    print(command)
    report = upgrade_downgrade_suite(scenario, steps, downgrade=downgrade, seed=seed,
                                     expect=args.expect)
    print(report.render_text())
    for stage in report.stages:
        if not stage.passed:  # its run in full (its first line, a plain run's command, dropped:
            # the stage's faults are the suite's, so the command above reproduces it)
            print(f"\n{stage.name} stage:")
            print(stage.result.render_text().split("\n", 1)[1])
    return 0 if report.passed else 1
