"""Bug-finding power of `graylink fuzz`: every planted bug of the reference system, hunted blind.

For each planted bug (``systems.dynamo.config.Bugs``), the base scenario ``bug_hunt_base.yaml`` (no
fault, no bug; nothing in it is written for any bug) gets that one bug switched on, and
``harness.fuzz.fuzz`` explores around it with the default settings: Hypothesis draws scripted faults
of every kind, maybe a random fault profile, the workload and a simulation seed; every run is
judged by every checker and by the base's one invariant expectation (the quorum oracle), with a
shrink goal of 3 fault actions (``FuzzSettings.shrink_goal``: a failure that does not shrink that
far sends exploration on, within the budget, for another; the smallest is kept). A failing
run counts only if the same run with the bug switched OFF passes (a differential oracle, the
``confirm`` hook of ``harness.fuzz.fuzz``): the reference system can fail under some faults
without any bug, and such a failure is not this bug's. The first confirmed failure is shrunk (every
step confirmed the same way) and written as YAML; other failures, the ones the system shows without
the bug, are counted and the first is written too (``*-unconfirmed-seed*.yaml``).

Printed per bug: found or not, runs, wall time and CPU time (of this process: the machine's
load does not change it) to the first failure, how many failures were shrunk and the shrinker's
runs over them, the shrunk scenario's size
(fault actions, client operations, fault phase + heal phase), its failing checks, whether it
passes with the bug switched off (checked once more), and how many failures the oracle refused
before it ("other failures": the reference system failing under those faults without the bug).
Then a control: the same fuzzing of the base without any bug, as many runs as each hunt
(``--control``), which goes on past a failure and lists every failing run: those are the reference
system's own failures under the drawn faults (each written as ``*-unconfirmed-seed*.yaml``).

    python benchmarks/bug_hunt.py                       # every bug, 200 runs each, seed 0
    python benchmarks/bug_hunt.py --workers 2           # the hunts on two processes
    python benchmarks/bug_hunt.py --bugs ack_before_quorum,stale_leader_serves --budget 50

Each hunt is deterministic and independent of the others, so ``--workers`` changes nothing but
the wall time (rows are printed in bug order; the CPU seconds are each hunt's own).

The target: every planted bug found within 200 runs, each shrunk to at most 3 fault actions. The
wall clock is read here, between runs, never inside one.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import load_scenario, run_scenario
from harness.fuzz import FuzzOutcome, FuzzSettings, fuzz, operation_count
from harness.scenario import Scenario
from harness.scenario_shrink import failure_kinds
from harness.scenario_writer import scenario_to_yaml
from systems.dynamo.config import Bugs

BASE = Path(__file__).resolve().parent / "bug_hunt_base.yaml"
TARGET_RUNS, TARGET_FAULTS = 200, 3
# Deployments are drawn like any fault, but only of builds that are not broken themselves: v2-bad
# is a defective build (S16) and a one-shot v2 rolled back is S15's failure, both found in the
# correct system too. Phase R deploys of v1 and v2 (rolling restarts into a compatible build) stay.
SAFE_DEPLOYS = {"deploy.version": ("v1", "v2"), "deploy.phase": ("read",),
                "random_faults.deploy_versions": ("v1", "v2"),
                "random_faults.deploy_phase": ("read",)}


def with_bug(base: Scenario, bug: str, on: bool = True) -> Scenario:
    config = base.system.config
    config = dataclasses.replace(config, bugs=dataclasses.replace(config.bugs, **{bug: on}))
    return dataclasses.replace(base, name=f"{base.name}-{bug.replace('_', '-')}",
                               system=dataclasses.replace(base.system, config=config))


def hunt(base: Scenario, bug: str | None, args: argparse.Namespace,
         budget: int) -> tuple[FuzzOutcome, bool | None]:
    """Fuzz the base with ``bug`` on and confirm what is found; with ``bug`` None, the control:
    the same fuzzing of the base without any bug, which does not stop at a failure (every failing
    run is refused by its oracle, so kept in ``unconfirmed``, and exploration goes on)."""
    settings = FuzzSettings(budget=budget, seed=args.seed, choices=SAFE_DEPLOYS,
                            keep_expectations=True, shrink_goal=TARGET_FAULTS)
    label = bug or "control"
    progress = (lambda text: print(f"  [{label}] {text}", file=sys.stderr, flush=True)) \
        if args.verbose else None
    scenario = with_bug(base, bug) if bug else base

    def without_the_bug_it_passes(candidate: Scenario, seed: int) -> bool:
        assert bug is not None
        return run_scenario(with_bug(candidate, bug, on=False), seed).passed

    def keep_going(candidate: Scenario, seed: int) -> bool:
        return False

    outcome = fuzz(scenario, settings, report_dir=Path(args.report_dir), progress=progress,
                   confirm=without_the_bug_it_passes if bug else keep_going)
    # the reference system failing without the bug: the control's failures, all of them; a hunt's
    # "other failures", the first of them
    for finding in outcome.unconfirmed if bug is None else outcome.unconfirmed[:1]:
        path = Path(args.report_dir) / f"{scenario.name}-unconfirmed-seed{finding.seed}.yaml"
        why = ("Failed in the control run of benchmarks/bug_hunt.py: no planted bug is on"
               if bug is None else "Failed with the bug switched off too (found by "
               "benchmarks/bug_hunt.py)")
        path.write_text(scenario_to_yaml(dataclasses.replace(
            finding.scenario, name=path.stem, seed=finding.seed, description=why)))
    confirmed = None
    if outcome.shrunk is not None and bug is not None:
        shrunk = outcome.shrunk
        confirmed = without_the_bug_it_passes(shrunk.scenario, shrunk.seed)
    return outcome, confirmed


def control_lines(control: FuzzOutcome, report_dir: str) -> list[str]:
    """The control's verdict: how many runs failed without any bug, and of what."""
    failures = control.unconfirmed
    lines = [f"control (no bug, same settings): {len(failures)} of {control.runs} runs failed "
             f"({control.wall_s:.0f} s)" + (":" if failures else "")]
    for finding in failures:
        size = finding.size()
        lines.append(f"  run {finding.run}: {', '.join(sorted(failure_kinds(finding.result)))} "
                     f"({size.describe()}; {report_dir}/{finding.scenario.name}-unconfirmed-seed"
                     f"{finding.seed}.yaml)")
    return lines


def row(bug: str, outcome: FuzzOutcome, confirmed: bool | None) -> list[str]:
    others = str(len(outcome.unconfirmed))
    if outcome.first is None:
        return [bug, "no", f">{outcome.runs}", f"{outcome.wall_s:.0f}", f"{outcome.cpu_s:.0f}",
                "-", "-", "-", "-", "-", "-", "-", others]
    first, shrunk = outcome.first, outcome.shrunk
    assert shrunk is not None
    size = shrunk.size()
    operations = operation_count(shrunk.result)
    return [bug, "yes", str(first.run), f"{first.wall_s:.1f}", f"{first.cpu_s:.1f}",
            str(outcome.failures_shrunk), str(outcome.shrink_runs),
            str(size.fault_actions), "-" if operations is None else str(operations),
            f"{size.duration_s:g}+{size.heal_s:g}", ",".join(sorted(failure_kinds(shrunk.result))),
            {True: "yes", False: "NO", None: "-"}[confirmed], others]


HEADER = ["bug", "found", "runs", "wall s", "CPU s", "shrunk", "shrink runs", "faults", "ops",
          "duration s", "failing checks", "passes w/o bug", "other failures"]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths)) + " |"
             for line in [HEADER, *rows]]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def hunt_lines(job: tuple[Scenario, str | None, argparse.Namespace, int]) -> list[str]:
    """One hunt, as the table row it gives (a bug) or the control's lines (None): what a worker
    process sends back."""
    base, bug, args, budget = job
    outcome, confirmed = hunt(base, bug, args, budget)
    if bug is None:
        return control_lines(outcome, args.report_dir)
    line = row(bug, outcome, confirmed)
    size = outcome.shrunk.size().fault_actions if outcome.shrunk is not None else None
    met = outcome.first is not None and outcome.first.run <= TARGET_RUNS and \
        size is not None and size <= TARGET_FAULTS and bool(confirmed)
    return [*line, "met" if met else "missed"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=TARGET_RUNS, help="runs per bug (200)")
    parser.add_argument("--seed", type=int, default=0, help="the exploration's seed (0)")
    parser.add_argument("--bugs", help="comma-separated bugs (default: every planted bug)")
    parser.add_argument("--report-dir", default="reports/bug-hunt",
                        help="where the shrunk scenarios go (reports/bug-hunt)")
    parser.add_argument("--control", type=int, default=None,
                        help="runs of the same fuzzing on the base without any bug, every "
                             "failure listed (default: the budget; 0 to skip)")
    parser.add_argument("--workers", type=int, default=1,
                        help="hunts run at once, each on a process of its own (1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="a progress line per run")
    args = parser.parse_args()
    names = [field.name for field in dataclasses.fields(Bugs)]
    bugs = names if not args.bugs else [name.strip() for name in args.bugs.split(",")]
    unknown = sorted(set(bugs) - set(names))
    if unknown:
        parser.error(f"unknown bug(s) {', '.join(unknown)}; planted bugs: {', '.join(names)}")
    if args.control is None:
        args.control = args.budget
    base = load_scenario(BASE)
    print(f"python benchmarks/bug_hunt.py --budget {args.budget} --seed {args.seed} "
          f"--control {args.control}")
    started = time.perf_counter()
    jobs = [(base, bug, args, args.budget) for bug in bugs]
    if args.control:
        jobs.append((base, None, args, args.control))
    if args.workers > 1:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            # the control, the one hunt sure to take its whole budget, first: the others fill in
            order = jobs[-1:] + jobs[:-1] if args.control else jobs
            futures = {id(job): pool.submit(hunt_lines, job) for job in order}
            results = [futures[id(job)].result() for job in jobs]  # printed in bug order
    else:
        results = []
        for job in jobs:
            results.append(hunt_lines(job))
            if job[1] is not None:
                print(" ".join(results[-1][:-1]), file=sys.stderr, flush=True)
    rows = [lines[:-1] for lines, job in zip(results, jobs) if job[1] is not None]
    met = all(lines[-1] == "met" for lines, job in zip(results, jobs) if job[1] is not None)
    control = results[-1] if args.control else None
    print(table(rows))
    if control is not None:
        print("\n".join(control))
    found = sum(line[1] == "yes" for line in rows)
    print(f"{found} of {len(rows)} planted bugs found in {time.perf_counter() - started:.0f} s; "
          f"target (found within {TARGET_RUNS} runs, shrunk to <= {TARGET_FAULTS} fault actions, "
          f"passing without the bug): {'met' if met else 'NOT met'}")
    print(f"shrunk scenarios: {args.report_dir}/")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
