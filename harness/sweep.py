"""Many runs at once: scenario files × seeds × variants, in a fixed order, on one core or a pool.

Theory of operation. A *plan* is the list of runs a command means, in order: file by file (as given),
seed by seed, variant by variant (the variants of a file run from the same seeds, so they stay
comparable side by side). The seeds of a file are

- ``--seed N``: just N;
- ``--seeds K`` without a base seed: K seeds from the scenario's own seed on (``seed, seed+1, ...``);
- ``--seeds K --base-seed B``: K seeds *derived* from B and the scenario's name by SHA-256
  (``derive_seeds``), the same seeds the pytest plugin's ``--graylink-seeds K --graylink-base-seed B``
  gives that scenario. A new B explores new seeds; the same B is the same sweep, anywhere.

``execute`` carries the plan out. With one worker it runs in this process. With more, batches of runs
go to a ``multiprocessing`` pool (``forkserver`` where the platform has it, else ``spawn``: never a
plain fork of a process that may hold threads or open files); each worker loads the scenario files
itself and returns plain ``Result``s, which are put back in plan order. Every run is decided by its
scenario, variant and seed alone, so the results, the summary and the JUnit XML are the same for any
number of workers (only the timings differ). Workers ignore SIGINT: Ctrl-C reaches the parent, which
stops the pool and still writes the JUnit XML and summary of what has finished (exit 130).

``graylink run FILE…`` (``run_files``) runs its plan in this process, writing every run's reports as a
single run does; ``graylink sweep`` (``sweep_command``) is for large numbers of seeds: a pool, reports
only for the failing runs (with a copy of their scenario file), and ``failing-seeds.txt``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ScenarioError
from harness.history import History
from harness.progress import Progress, format_duration
from harness.result import Result

if TYPE_CHECKING:
    from harness.scenario import Scenario

__all__ = ["PlannedRun", "SweepOutcome", "derive_seeds", "execute", "exit_code", "load_files",
           "plan_runs", "run_files", "seeds_for", "sweep_command", "write_reports"]

# Exit codes (as in harness.cli) and their severity: several runs exit with the most severe.
EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
SEVERITY = (EXIT_PASSED, EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED)
SEED_SPACE = 1_000_000  # derived seeds are below this: short enough to read and type


def derive_seeds(base_seed: int, key: str, count: int) -> list[int]:
    """``count`` distinct seeds for ``key`` (a scenario's name, a test's id) from ``base_seed``.

    SHA-256 of ``graylink-seed/<base>/<key>/<i>``, never ``hash()``: the same on every machine."""
    seeds: list[int] = []
    index = 0
    while len(seeds) < count:
        digest = hashlib.sha256(f"graylink-seed/{base_seed}/{key}/{index}".encode()).digest()
        seed = int.from_bytes(digest[:8], "big") % SEED_SPACE
        if seed not in seeds:
            seeds.append(seed)
        index += 1
    return seeds


def seeds_for(scenario: Scenario, *, seed: int | None = None, seeds: int | None = None,
              base_seed: int | None = None) -> list[int]:
    """The seeds a run of ``scenario`` means (see the module's docstring)."""
    if seed is not None:
        return [seed]
    count = 1 if seeds is None else seeds
    if base_seed is None:
        return list(range(scenario.seed, scenario.seed + count))
    return derive_seeds(base_seed, scenario.name, count)


@dataclass(frozen=True, slots=True)
class PlannedRun:
    """One run of a plan: which file, which of its variants (None: the file has none), which seed."""

    index: int
    source: str
    variant: str | None
    seed: int


def load_files(paths: Sequence[str]) -> dict[str, Scenario]:
    """Every file, validated before anything runs: one ``ScenarioError`` listing every bad file."""
    from harness.scenario_loader import load_scenario

    scenarios: dict[str, Scenario] = {}
    errors: list[ScenarioError] = []
    for path in dict.fromkeys(paths):  # a file named twice runs once
        try:
            scenarios[path] = load_scenario(path)
        except ScenarioError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise _InvalidFiles(f"{len(errors)} scenario files are invalid, nothing was run:\n  "
                            + "\n  ".join(error.describe() for error in errors))
    return scenarios


class _InvalidFiles(ScenarioError):
    """Several bad files at once: each error already names its own file, line and field."""

    def describe(self) -> str:
        return self.message


def plan_runs(scenarios: Mapping[str, Scenario], *, seed: int | None = None,
              seeds: int | None = None, base_seed: int | None = None,
              variant: str | None = None) -> list[PlannedRun]:
    """Files in order; for each, its seeds in order; for each seed, its variants in order."""
    plan: list[PlannedRun] = []
    for source, scenario in scenarios.items():
        variants = ([scenario.variant(variant).variant_name] if variant is not None
                    else [run.variant_name for run in scenario.variant_scenarios()])
        for run_seed in seeds_for(scenario, seed=seed, seeds=seeds, base_seed=base_seed):
            for name in variants:
                plan.append(PlannedRun(len(plan), source, name, run_seed))
    return plan


# -- running ---------------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    """What ``execute`` did: the finished runs in plan order, and whether Ctrl-C cut it short."""

    planned: int
    results: list[Result] = field(default_factory=list)
    interrupted: bool = False
    wall_s: float = 0.0

    @property
    def failed(self) -> list[Result]:
        return [result for result in self.results if not result.passed]

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return max((exit_code(result) for result in self.results), key=SEVERITY.index,
                   default=EXIT_PASSED)


RunOne = Callable[["Scenario", int], Result]


def execute(plan: Sequence[PlannedRun], scenarios: Mapping[str, Scenario], *, workers: int = 1,
            run_one: RunOne | None = None, report_dir: str = "", failing_only: bool = True,
            batch_size: int | None = None,
            on_result: Callable[[Result], None] | None = None) -> SweepOutcome:
    """Carry out ``plan``. With ``workers == 1`` in this process, by ``run_one`` (default: run, and
    write reports to ``report_dir`` for every run or only the failing ones); else on a pool of
    ``workers`` processes. ``on_result`` sees each result as it finishes (in completion order); the
    outcome holds them in plan order."""
    outcome = SweepOutcome(planned=len(plan))
    started = time.monotonic()  # outside every run: only the summary's rate reads it
    finished: dict[int, Result] = {}
    results = _results(plan, scenarios, workers, run_one, report_dir, failing_only, batch_size)
    try:
        for index, result in results:
            finished[index] = result
            if on_result is not None:
                on_result(result)
            if result.reason == "interrupted":  # Ctrl-C inside a run in this process
                outcome.interrupted = True
                break
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        results.close()  # a pool still running (Ctrl-C in on_result, an error) is terminated now
    outcome.results = [finished[index] for index in sorted(finished)]
    outcome.wall_s = time.monotonic() - started
    return outcome


def _results(plan: Sequence[PlannedRun], scenarios: Mapping[str, Scenario], workers: int,
             run_one: RunOne | None, report_dir: str, failing_only: bool,
             batch_size: int | None) -> Iterator[tuple[int, Result]]:
    if workers <= 1 or len(plan) <= 1:
        runner = run_one or functools.partial(_run_and_report, report_dir=report_dir,
                                              failing_only=failing_only)
        for run in plan:
            yield run.index, runner(_scenario_of(scenarios[run.source], run.variant), run.seed)
        return
    # Batches save a little inter-process traffic per run, but their results come back together:
    # at most 8 runs, and at least 16 batches per worker, so progress and balance stay fine.
    size = batch_size or max(1, min(8, len(plan) // (workers * 16)))
    batches = [[(run.index, run.source, run.variant, run.seed) for run in plan[start:start + size]]
               for start in range(0, len(plan), size)]
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
    pool = context.Pool(min(workers, len(batches)), initializer=_ignore_sigint)
    try:
        task = functools.partial(_run_batch, report_dir=report_dir, failing_only=failing_only)
        for batch in pool.imap_unordered(task, batches):
            yield from batch
        pool.close()
    except BaseException:
        pool.terminate()  # Ctrl-C, or a worker's exception: stop every batch still running
        raise
    finally:
        pool.join()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _scenario_of(scenario: Scenario, variant: str | None) -> Scenario:
    return scenario.variant(variant) if variant is not None else scenario


@functools.lru_cache(maxsize=64)
def _load(source: str) -> Scenario:
    from harness.scenario_loader import load_scenario

    return load_scenario(source)


def _run_batch(batch: list[tuple[int, str, str | None, int]], *, report_dir: str,
               failing_only: bool) -> list[tuple[int, Result]]:
    """In a worker: run a batch of the plan, each loaded from its file (cached per worker)."""
    return [(index, _run_and_report(_scenario_of(_load(source), variant), seed,
                                    report_dir=report_dir, failing_only=failing_only))
            for index, source, variant, seed in batch]


def _run_and_report(scenario: Scenario, seed: int, *, report_dir: str,
                    failing_only: bool) -> Result:
    from harness.simulation import Simulation

    simulation = Simulation(scenario, seed)
    result = simulation.run()
    if report_dir and not (failing_only and result.passed):
        write_reports(result, report_dir, getattr(simulation.system, "history", None))
    return result


# -- reports ---------------------------------------------------------------------------------------
def write_reports(result: Result, report_dir: str | Path, history: object = None) -> list[Path]:
    """The run's text report, JSON result, HTML page and (if its system kept one) the clients'
    history, named ``<scenario>[-<variant>]-seed<N>`` as ``graylink run`` names them."""
    from harness.html_report import write_html

    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stem = report_stem(result)
    written = [directory / f"{stem}.txt", directory / f"{stem}.json"]
    written[0].write_text(result.render_text() + "\n", encoding="utf-8")
    written[1].write_text(result.to_json(), encoding="utf-8")
    written.append(write_html([result], directory / f"{stem}.html"))
    if isinstance(history, History):
        written.append(directory / f"{stem}.history.jsonl")
        history.write_jsonl(written[-1])
    return written


def report_stem(result: Result) -> str:
    if result.variant is None:
        return f"{_slug(result.scenario)}-seed{result.seed}"
    base = result.scenario.removesuffix(f"[{result.variant}]")
    return f"{_slug(base)}-{_slug(result.variant)}-seed{result.seed}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "scenario"


def exit_code(result: Result) -> int:
    if result.passed:
        return EXIT_PASSED
    if result.reason == "interrupted":
        return EXIT_INTERRUPTED
    if result.reason == "internal-error":
        return EXIT_INTERNAL
    return EXIT_FAILED


def summary_lines(outcome: SweepOutcome) -> list[str]:
    """``N of M runs passed``, then each failing run: its reproduction and its first failure."""
    results = outcome.results
    lines = [f"{len(results) - len(outcome.failed)} of {len(results)} runs passed"]
    if outcome.interrupted:
        lines.append(f"interrupted: {len(results)} of {outcome.planned} planned runs finished")
    for result in outcome.failed:
        first = result.failures[0].describe().splitlines()[0] if result.failures else result.reason
        lines.append(f"  {result.reproduce}\n      {first}")
    return lines


def _rate_line(outcome: SweepOutcome, workers: int) -> str:
    rate = len(outcome.results) / outcome.wall_s if outcome.wall_s > 0 else 0.0
    return (f"{len(outcome.results)} runs in {outcome.wall_s:.1f} s wall "
            f"({format_duration(outcome.wall_s)}): {rate:.2f} runs/s on {workers} "
            f"worker{'s' if workers != 1 else ''}")


def _write_junit(outcome: SweepOutcome, path: str | None, suite: str) -> None:
    if path:
        from harness.junit import write_junit

        write_junit(outcome.results, path, suite=suite)


# -- graylink run FILE… ----------------------------------------------------------------------------
def run_files(args: argparse.Namespace, run_one: RunOne) -> int:
    """``graylink run`` with several files or ``--seeds``: the plan in this process, a progress bar
    on stderr, every run's reports written by ``run_one``; then the variants' tables (one seed per
    file), the summary, the JUnit XML. Exit: the most severe of the runs' codes (130 on Ctrl-C)."""
    from harness.expectations import variant_table

    if args.trace:
        raise ScenarioError("--trace writes the events of one run; give one scenario file and at most "
                            "one seed (--seed N), not several files or --seeds", field="--trace")
    scenarios = load_files(args.scenarios)
    plan = plan_runs(scenarios, seed=args.seed, seeds=args.seeds, variant=args.variant)
    progress = Progress(len(plan))
    try:
        outcome = execute(plan, scenarios, run_one=run_one, on_result=progress.update)
    finally:
        progress.close()
    _write_junit(outcome, args.junit,
                 suite=next(iter(scenarios.values())).name if len(scenarios) == 1 else "graylink")
    if args.json:
        print(json.dumps([result.summary() for result in outcome.results], indent=2,
                         sort_keys=True))
        return outcome.exit_code()
    if args.seeds is None and not outcome.interrupted:  # one seed per file: compare its variants
        for source, scenario in scenarios.items():
            ran = [result for result in outcome.results if result.source == source]
            if scenario.variants and len(ran) > 1:
                print(variant_table(scenario, ran) + "\n")
    print("\n".join(summary_lines(outcome)))
    return outcome.exit_code()


# -- graylink sweep --------------------------------------------------------------------------------
def add_sweep_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sweep = commands.add_parser(
        "sweep", help="run many seeds of scenario files on a process pool; JUnit XML and a summary "
                      "of the failing seeds")
    sweep.add_argument("scenarios", nargs="+", metavar="FILE", help="scenario YAML files")
    sweep.add_argument("--seeds", type=_count, default=10, metavar="K",
                       help="seeds per file (default 10): from each scenario's own seed on, or "
                            "derived from --base-seed")
    sweep.add_argument("--base-seed", type=_non_negative, default=None, metavar="B",
                       help="derive each file's K seeds from B and the scenario's name (the pytest "
                            "plugin's --graylink-base-seed gives the same seeds); printed")
    sweep.add_argument("--variant", metavar="NAME", help="run only this variant of each file")
    sweep.add_argument("--workers", type=_count, default=_available_cpus(), metavar="W",
                       help=f"worker processes (default: the CPUs available, here "
                            f"{_available_cpus()}); 1 runs in this process")
    sweep.add_argument("--batch", type=_count, default=None, metavar="N",
                       help="runs per batch sent to a worker (default: automatic, at most 8)")
    sweep.add_argument("--junit", metavar="FILE", help="write JUnit XML: one test case per run")
    sweep.add_argument("--report-dir", default="reports/sweep", metavar="DIR",
                       help="where the failing runs' reports, a copy of their scenario files and "
                            "failing-seeds.txt go (default: reports/sweep/); '' for none")
    sweep.add_argument("--json", action="store_true",
                       help="print every run's summary as JSON, in plan order")
    sweep.set_defaults(handler=sweep_command)


def sweep_command(args: argparse.Namespace) -> int:
    scenarios = load_files(args.scenarios)
    plan = plan_runs(scenarios, seeds=args.seeds, base_seed=args.base_seed, variant=args.variant)
    seeds = (f"{args.seeds} seeds per file, derived from base seed {args.base_seed}"
             if args.base_seed is not None else
             f"{args.seeds} seeds per file, from each scenario's own seed on")
    workers = min(args.workers, max(len(plan), 1))
    header = (f"graylink sweep: {len(scenarios)} file{'s' if len(scenarios) != 1 else ''}, "
              f"{len(plan)} runs ({seeds}), {workers} worker{'s' if workers != 1 else ''}")
    print(header, file=sys.stderr if args.json else sys.stdout, flush=True)
    progress = Progress(len(plan))
    try:
        outcome = execute(plan, scenarios, workers=workers, report_dir=args.report_dir,
                          failing_only=True, batch_size=args.batch, on_result=progress.update)
    finally:
        progress.close()
    _write_junit(outcome, args.junit, suite="graylink sweep")
    summary = summary_lines(outcome) + [_rate_line(outcome, workers)]
    if args.report_dir:
        _keep_failing(outcome, scenarios, Path(args.report_dir), header, summary)
    if args.json:
        print(json.dumps([result.summary() for result in outcome.results], indent=2,
                         sort_keys=True))
        print("\n".join(summary), file=sys.stderr)
    else:
        print("\n".join(summary))
    return outcome.exit_code()


def _keep_failing(outcome: SweepOutcome, scenarios: Mapping[str, Scenario], directory: Path,
                  header: str, summary: list[str]) -> None:
    """``failing-seeds.txt`` (the summary), and a copy of each failing scenario file under
    ``scenarios/``, next to the failing runs' reports (written by the workers)."""
    directory.mkdir(parents=True, exist_ok=True)
    copies = directory / "scenarios"
    for source in dict.fromkeys(result.source for result in outcome.failed):
        if source and source in scenarios and Path(source).is_file():
            copies.mkdir(exist_ok=True)
            shutil.copyfile(source, copies / Path(source).name)
    (directory / "failing-seeds.txt").write_text("\n".join([header, *summary]) + "\n",
                                                 encoding="utf-8")


def _count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"expected 1..100000, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
