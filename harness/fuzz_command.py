"""``graylink fuzz SCENARIO.yaml --budget N | --time S [--seed N] [--report-dir DIR]``.

Registered by ``harness.cli``; the work is ``harness.fuzz`` (imported only when the command runs,
so that the other commands do not pay for importing Hypothesis). Exit 1 when a failure was found
(its shrunk scenario is written to the report directory), 0 when none was, 2 on bad input,
130 when interrupted.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from typing import Any

__all__ = ["add_fuzz_command"]


def add_fuzz_command(commands: Any) -> None:
    fuzz = commands.add_parser(
        "fuzz", help="explore faults, workload and knobs around a scenario with Hypothesis; shrink "
                     "a failure to a small YAML scenario")
    fuzz.add_argument("scenario", help="the scenario to explore around (its topology and system)")
    limit = fuzz.add_mutually_exclusive_group(required=True)
    limit.add_argument("--budget", type=_positive_int, metavar="N", help="explore N runs")
    limit.add_argument("--time", type=_positive_float, metavar="S",
                       help="explore for S seconds of wall time (the same cases as --budget, in "
                            "the same order, stopping when time is up)")
    fuzz.add_argument("--seed", type=_non_negative_int, default=0,
                      help="the exploration's seed: the same seed explores the same cases "
                           "(default 0)")
    fuzz.add_argument("--report-dir", default="reports", metavar="DIR",
                      help="where the shrunk failing scenario (YAML) and its report go")
    fuzz.add_argument("--variant", metavar="NAME",
                      help="fuzz this variant of the scenario (required if it has variants)")
    fuzz.add_argument("--faults", metavar="KINDS",
                      help="comma-separated fault kinds or families to draw (default: all)")
    fuzz.add_argument("--max-faults", type=_non_negative_int, default=6, metavar="N",
                      help="scripted faults per run (default 6; a random profile may add more)")
    fuzz.add_argument("--no-random-faults", action="store_true",
                      help="draw no random fault profiles, only scripted faults")
    fuzz.add_argument("--keep-faults", action="store_true",
                      help="keep the scenario's own scripted faults and add the drawn ones")
    fuzz.add_argument("--keep-expect", action="store_true",
                      help="judge every run by the scenario's own expectations too (write them as "
                           "invariants, e.g. lost_acknowledged_writes == 0)")
    fuzz.add_argument("--vary", default=None, metavar="FIELDS",
                      help="comma-separated fields of the system's config to draw, e.g. "
                           "workload,timing,mitigations (default: workload; '' for none)")
    fuzz.add_argument("--bound", action="append", default=[], metavar="FIELD=LOW:HIGH",
                      help="range of a fault field, e.g. clock_drift.drift_ppm=-50000:50000 "
                           "(repeatable; overrides the system's FUZZ_BOUNDS)")
    fuzz.add_argument("--choices", action="append", default=[], metavar="FIELD=A,B",
                      help="draw a field from these values only, e.g. deploy.version=v1,v2 "
                           "(repeatable; overrides the system's FUZZ_CHOICES)")
    fuzz.add_argument("--target", action="append", default=None, metavar="METRIC",
                      help="a metric the search maximises (repeatable; default: elections, "
                           "time_without_leader_s, unavailable_s, checksum_rejections, ... where "
                           "reported)")
    fuzz.add_argument("--no-shrink", action="store_true", help="write the first failure as found")
    fuzz.add_argument("--max-shrink-runs", type=_non_negative_int, default=150, metavar="N",
                      help="runs the shrinker may spend (default 150)")
    fuzz.add_argument("--shrink-goal", type=_non_negative_int, default=None, metavar="N",
                      help="a failure that does not shrink to at most N fault actions sends "
                           "exploration on, within the budget, for another; the smallest shrunk "
                           "failure is written (default: the first failure ends exploration)")
    fuzz.add_argument("--hypothesis-shrink", type=_non_negative_int, default=0, metavar="N",
                      help="let Hypothesis's own shrinker spend N runs before ours (default 0; "
                           "implies --explore hypothesis)")
    fuzz.add_argument("--explore", choices=("fresh", "hypothesis"), default="fresh",
                      help="fresh: every case drawn afresh from its own seeded stream, a quarter "
                           "of them near the best run of a --target signal (default); "
                           "hypothesis: Hypothesis's engine (its generate and target phases)")
    fuzz.add_argument("--quiet", action="store_true", help="no progress line per run")
    fuzz.set_defaults(handler=run_fuzz_command)


def run_fuzz_command(args: argparse.Namespace) -> int:
    from harness.errors import ScenarioError
    from harness.fuzz import (
        FuzzSettings,
        fuzz,
        parse_bounds,
        parse_choices,
        render_summary,
    )
    from harness.scenario_loader import load_scenario
    from harness.strategies import fault_kinds

    scenario = load_scenario(args.scenario)
    if args.variant:
        scenario = scenario.variant(args.variant)
    elif scenario.variants:
        names = ", ".join(variant.name for variant in scenario.variants)
        raise ScenarioError(f"the scenario has variants ({names}); choose one with --variant NAME",
                            file=args.scenario)
    kinds = None
    if args.faults:
        kinds = tuple(name.strip() for name in args.faults.split(",") if name.strip())
        try:
            fault_kinds(kinds)
        except ValueError as error:
            raise ScenarioError(str(error), file=args.scenario, field="--faults") from None
    vary = ("workload",) if args.vary is None else tuple(
        name.strip() for name in args.vary.split(",") if name.strip())
    if args.vary is not None:
        _check_vary(scenario, vary, args.scenario)
    try:
        bounds = parse_bounds(args.bound)
    except ValueError as error:
        raise ScenarioError(str(error), file=args.scenario, field="--bound") from None
    try:
        choices = parse_choices(args.choices)
    except ValueError as error:
        raise ScenarioError(str(error), file=args.scenario, field="--choices") from None
    settings = FuzzSettings(
        budget=args.budget, time_s=args.time, seed=args.seed, max_faults=args.max_faults,
        kinds=kinds, vary=vary,
        random_faults=not args.no_random_faults, keep_faults=args.keep_faults,
        keep_expectations=args.keep_expect,
        targets=tuple(args.target) if args.target else None, bounds=bounds, choices=choices,
        shrink=not args.no_shrink, max_shrink_runs=args.max_shrink_runs,
        shrink_goal=args.shrink_goal,
        hypothesis_shrink_runs=args.hypothesis_shrink, explore=args.explore)
    progress = None if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    try:
        outcome = fuzz(scenario, settings, report_dir=args.report_dir or None, progress=progress)
    except ValueError as error:  # a fault space or config the strategies cannot draw from
        raise ScenarioError(str(error), file=args.scenario) from None
    print(render_summary(outcome, _command(args)))
    if outcome.stopped == "interrupted":
        return 130
    return 1 if outcome.failed else 0


def _check_vary(scenario: Any, vary: tuple[str, ...], path: str) -> None:
    """Every field named by ``--vary`` exists in the system's config (dotted paths allowed)."""
    import dataclasses

    from harness.errors import ScenarioError

    for name in vary:
        config = scenario.system.config
        for part in name.split("."):
            fields = ([item.name for item in dataclasses.fields(config)]
                      if dataclasses.is_dataclass(config) else [])
            if part not in fields:
                known = ", ".join(fields) or "none (the config is not a dataclass)"
                raise ScenarioError(f"--vary {name!r}: the system's config has no field {part!r} "
                                    f"there; fields: {known}", file=path, field="--vary")
            config = getattr(config, part)


def _command(args: argparse.Namespace) -> str:
    limit = f"--budget {args.budget}" if args.budget is not None else f"--time {args.time:g}"
    command = f"graylink fuzz {shlex.quote(args.scenario)} {limit} --seed {args.seed}"
    if args.variant:
        command += f" --variant {shlex.quote(args.variant)}"
    return command


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative whole number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value
