"""The ``graylink`` command line.

Exit codes, for every command: 0 passed, 1 the system under test failed, 2 bad input or usage,
3 internal error (a bug in Graylink); 130 interrupted by Ctrl-C (the partial report is still written).
``check-history`` adds 4: the checker ran out of budget, so the verdict is unknown (never a pass).
Every failure summary opens with the command that reproduces it. A scenario with variants runs each
of them from the same seed (``--variant NAME`` runs one) and exits with the most severe of their codes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ScenarioError
from harness.history import History
from harness.html_report import write_html
from harness.result import Result

if TYPE_CHECKING:
    from harness.scenario import Scenario

EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # the Unix convention for Ctrl-C; the partial report is still written


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args.handler(args))
    except ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (e.g. piped into head): not an error of ours
        sys.stderr.close()
        return EXIT_PASSED
    except Exception:  # noqa: BLE001 - the last line of defence: say it is our bug
        print("internal error (a bug in Graylink, please report it):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graylink", description="Deterministic fault-injection testing for replicated systems.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run scenarios with a seed and report the verdicts")
    run.add_argument("scenarios", nargs="+", metavar="FILE",
                     help="scenario YAML files; with several (or --seeds), a progress bar and a "
                          "summary of the failing runs at the end")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_seed, default=None,
                       help="the seed (default: the scenario's own, else 0)")
    seeds.add_argument("--seeds", type=_count, default=None, metavar="K",
                       help="run K seeds of each file, from the scenario's own seed on, with a "
                            "progress bar and a summary of the failing runs at the end")
    run.add_argument("--variant", metavar="NAME",
                     help="run only this variant of the scenario (default: every variant)")
    run.add_argument("--json", action="store_true", help="print a machine-readable summary")
    run.add_argument("--trace", metavar="FILE",
                     help="write every event of the run as JSONL (one file, one seed)")
    run.add_argument("--junit", metavar="FILE",
                     help="write JUnit XML for CI: one test case per file, variant and seed")
    run.add_argument("--report-dir", default="reports", metavar="DIR",
                     help="where the JSON, text and HTML reports go (default: reports/); '' for "
                          "none")
    run.add_argument("--html", metavar="FILE",
                     help="also write one HTML report of the run (of every variant, side by side)")
    run.set_defaults(handler=_run)

    replay = commands.add_parser(
        "replay", help="re-run a recorded run (its JSON report) and confirm the same trace digest")
    replay.add_argument("run", metavar="RUN.json", help="a run's JSON report, as `run` writes it")
    replay.set_defaults(handler=_replay)

    report = commands.add_parser(
        "report", help="render saved runs (their JSON reports) as one self-contained HTML page")
    report.add_argument("runs", nargs="+", metavar="RUN.json",
                        help="runs' JSON reports, as `run` writes them; several (e.g. the variants "
                             "of one scenario and seed) are shown side by side")
    report.add_argument("-o", "--output", metavar="FILE",
                        help="where to write the page (default: next to the first run, .html)")
    report.set_defaults(handler=_report)

    schema = commands.add_parser("schema", help="print a JSON Schema of the scenario format")
    schema.add_argument("--system", metavar="MODULE:CLASS",
                        help="describe system.config by this system's Config (default: any mapping)")
    schema.set_defaults(handler=_schema)

    validate = commands.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", nargs="+", metavar="FILE")
    validate.set_defaults(handler=_validate)

    determinism = commands.add_parser(
        "check-determinism",
        help="run a scenario twice in fresh processes (different PYTHONHASHSEED) and compare traces")
    determinism.add_argument("scenario")
    determinism.add_argument("--seed", type=_seed, default=None)
    determinism.add_argument("--variant", metavar="NAME",
                             help="check only this variant (default: every variant)")
    determinism.set_defaults(handler=_check_determinism)
    _add_check_history(commands)
    from harness.fuzz_command import add_fuzz_command

    add_fuzz_command(commands)  # graylink fuzz: harness/fuzz.py
    from harness.sweep import add_sweep_parser

    add_sweep_parser(commands)
    from harness.upgrade_suite import add_upgrade_suite_command

    add_upgrade_suite_command(commands)  # M27: harness/upgrade_suite.py
    return parser


def _seed(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {value}")
    return value


# -- run -------------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    """Run the scenario, or each of its variants from the same seed, then compare the variants."""
    from harness.expectations import variant_table
    from harness.scenario_loader import load_scenario

    if args.html and (len(args.scenarios) > 1 or args.seeds is not None):
        raise ScenarioError("draws the runs of one file and one seed (its variants side by side); "
                            "with several files or --seeds, every run's HTML report is in "
                            "--report-dir, and `graylink report RUN.json…` draws any of them "
                            "together", field="--html")
    if len(args.scenarios) > 1 or args.seeds is not None:  # many runs: harness.sweep.run_files
        from harness.sweep import run_files

        return run_files(args, lambda run, seed: _run_one(
            run, argparse.Namespace(**{**vars(args), "seed": seed, "json": True}), None))
    scenario = load_scenario(args.scenarios[0])
    runs = (scenario.variant(args.variant),) if args.variant else scenario.variant_scenarios()
    results: list[Result] = []
    for run in runs:
        trace = _trace_path(args.trace, run.variant_name) if len(runs) > 1 else args.trace
        if results and not args.json:
            print()
        results.append(_run_one(run, args, trace))
        if results[-1].reason == "interrupted":
            break
    if args.junit:
        from harness.junit import write_junit

        write_junit(results, args.junit, suite=scenario.name)
    _write_html(results, args)
    if args.json:
        summary = results[0].summary() if len(runs) == 1 else {
            "scenario": scenario.name, "seed": results[0].seed,
            "passed": all(result.passed for result in results),
            "variants": {result.variant: result.summary() for result in results}}
        print(json.dumps(summary, indent=2, sort_keys=True))
    elif len(runs) > 1:
        print("\n" + variant_table(scenario, results))
    return max((_exit_code(result) for result in results), key=_EXIT_SEVERITY.index)


def _count(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of runs, got {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"the number of seeds must be 1..100000, got {value}")
    return value


def _run_one(scenario: Scenario, args: argparse.Namespace, trace: str | None) -> Result:
    """One run: its reports written, its text printed (unless --json)."""
    from harness.simulation import Simulation

    simulation = Simulation(scenario, args.seed, trace_path=trace)
    result = simulation.run()
    written = []
    if args.report_dir:
        written = _write_reports(result, args.report_dir)
        history = getattr(simulation.system, "history", None)
        if isinstance(history, History):  # what the clients saw: `graylink check-history` reads it
            written.append(Path(args.report_dir) / f"{_stem(result)}.history.jsonl")
            history.write_jsonl(written[-1])
    if not args.json:
        print(result.render_text())
        for path in written:
            print(f"  report: {path}")
    return result


def _trace_path(path: str | None, variant: str | None) -> str | None:
    """One trace file per variant: ``run.jsonl`` becomes ``run-<variant>.jsonl``."""
    if path is None or variant is None:
        return path
    base = Path(path)
    return str(base.with_name(f"{base.stem}-{variant}{base.suffix}"))


# The exit code of several runs is the most severe of theirs, in this order.
_EXIT_SEVERITY = (EXIT_PASSED, EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED)


def _exit_code(result: Result) -> int:
    if result.passed:
        return EXIT_PASSED
    if result.reason == "interrupted":
        return EXIT_INTERRUPTED
    if result.reason == "internal-error":
        return EXIT_INTERNAL
    return EXIT_FAILED


def _write_reports(result: Result, report_dir: str) -> list[Path]:
    """The JSON result (everything) and the text summary, named after the scenario and seed."""
    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stem = _stem(result)
    json_path, text_path = directory / f"{stem}.json", directory / f"{stem}.txt"
    json_path.write_text(result.to_json())
    text_path.write_text(result.render_text() + "\n")
    return [text_path, json_path, write_html([result], directory / f"{stem}.html")]


def _write_html(results: list[Result], args: argparse.Namespace) -> None:
    """``--html FILE``: every run of this invocation on one page; and with variants, that page in
    the report directory too (``<scenario>-seed<N>.html``, next to each variant's own)."""
    paths = [Path(args.html)] if args.html else []
    if args.report_dir and len(results) > 1:
        base = results[0].scenario.removesuffix(f"[{results[0].variant}]")
        paths.append(Path(args.report_dir) / f"{_slug(base)}-seed{results[0].seed}.html")
    for path in paths:
        write_html(results, path)
        if not args.json:
            print(f"report: {path}" + (" (the variants side by side)" if len(results) > 1 else ""))


def _stem(result: Result) -> str:
    """``<scenario>-seed<N>``, or ``<scenario>-<variant>-seed<N>`` for a variant's run."""
    if result.variant is None:
        return f"{_slug(result.scenario)}-seed{result.seed}"
    base = result.scenario.removesuffix(f"[{result.variant}]")
    return f"{_slug(base)}-{_slug(result.variant)}-seed{result.seed}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "scenario"


# -- schema ---------------------------------------------------------------------------------------
def _schema(args: argparse.Namespace) -> int:
    from harness.schema import scenario_schema
    from harness.system import resolve_system_class

    system_class = None
    if args.system:
        try:
            system_class = resolve_system_class(args.system)
        except ValueError as error:
            raise ScenarioError(str(error), field="--system") from None
    print(json.dumps(scenario_schema(system_class), indent=2))
    return EXIT_PASSED


# -- replay -----------------------------------------------------------------------------------------
def _replay(args: argparse.Namespace) -> int:
    """Exit 0 when the re-run reproduces the recorded digest, 1 when it does not, 2 on bad input."""
    from harness.scenario_loader import load_scenario
    from harness.simulation import Simulation

    recorded = _read_run(args.run)
    scenario = load_scenario(recorded["source"])
    if recorded.get("variant"):
        scenario = scenario.variant(recorded["variant"])
    result = Simulation(scenario, recorded["seed"]).run()
    print(result.reproduce)
    print(f"  recorded: digest {recorded['trace_digest']}, {recorded['events']} events, "
          f"passed={recorded['passed']}")
    print(f"  replayed: digest {result.trace_digest}, {result.events} events, passed={result.passed}")
    if result.trace_digest == recorded["trace_digest"]:
        print("replayed: the same run, event for event")
        return EXIT_PASSED
    print("NOT the same run: the scenario file or the code changed since it was recorded, or the "
          "run is not deterministic (`graylink check-determinism` tells which)")
    return EXIT_FAILED


def _read_run(path: str) -> dict[str, object]:
    try:
        recorded = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError("no such file", file=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ScenarioError(f"not a run's JSON report: {error}", file=path) from None
    missing = [key for key in ("source", "seed", "trace_digest", "events", "passed")
               if not isinstance(recorded, dict) or key not in recorded]
    if missing or not recorded.get("source"):
        raise ScenarioError(f"not a run's JSON report (missing {', '.join(missing) or 'source'}); "
                            f"`graylink run` writes one per run to reports/", file=path)
    return recorded


# -- report ----------------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    """Render saved runs as one HTML page; exit 2 if a file is missing or not a run's JSON report."""
    from harness.html_report import load_result

    results = [load_result(path) for path in args.runs]
    output = Path(args.output) if args.output else _report_path(args.runs, results)
    write_html(results, output)
    print(f"report: {output} ({len(results)} run{'s' if len(results) > 1 else ''})")
    return EXIT_PASSED


def _report_path(paths: list[str], results: list[Result]) -> Path:
    """``RUN.html`` next to one run; for several, ``<scenario>-seed<N>.html`` (or ``report.html``
    if they are not one scenario and seed) next to the first."""
    first = Path(paths[0])
    if len(paths) == 1:
        return first.with_suffix(".html")
    bases = {result.scenario.removesuffix(f"[{result.variant}]") if result.variant
             else result.scenario for result in results}
    seeds = {result.seed for result in results}
    if len(bases) == 1 and len(seeds) == 1:
        return first.with_name(f"{_slug(bases.pop())}-seed{seeds.pop()}.html")
    return first.with_name("report.html")


# -- validate --------------------------------------------------------------------------------------
def _validate(args: argparse.Namespace) -> int:
    from harness.scenario_loader import load_scenario

    status = EXIT_PASSED
    for path in args.scenarios:
        try:
            scenario = load_scenario(path)
        except ScenarioError as error:
            print(f"error: {error}", file=sys.stderr)
            status = EXIT_BAD_INPUT
        else:
            variants = ", ".join(variant.name for variant in scenario.variants)
            print(f"ok: {path} ({scenario.name}: {len(scenario.topology.nodes)} nodes, "
                  f"{len(scenario.faults)} scripted faults, {len(scenario.expectations)} "
                  f"expectations" + (f", variants: {variants})" if variants else ")"))
    return status


# -- check-determinism -----------------------------------------------------------------------------
def _check_determinism(args: argparse.Namespace) -> int:
    """Each variant (or the scenario) twice, in fresh processes; exit 1 if any pair differs."""
    from harness.scenario_loader import load_scenario

    scenario = load_scenario(args.scenario)  # fail fast, in this process, on bad input
    seed = scenario.seed if args.seed is None else args.seed
    if args.variant is not None:
        scenario.variant(args.variant)  # an unknown variant is bad input
    variants = ([args.variant] if args.variant is not None
                else [variant.name for variant in scenario.variants] or [None])
    codes = [_check_determinism_of(args.scenario, seed, variant) for variant in variants]
    return max(codes, key=_EXIT_SEVERITY.index)


def _check_determinism_of(scenario: str, seed: int, variant: str | None) -> int:
    from harness.trace import first_divergence

    with tempfile.TemporaryDirectory(prefix="graylink-determinism-") as scratch:
        runs = [_run_in_fresh_process(scenario, seed, variant, Path(scratch) / f"trace-{i}.jsonl",
                                      hs) for i, hs in enumerate(("1", "2"))]
        for summary, _ in runs:
            if summary is None:
                return EXIT_INTERNAL
        (first, first_trace), (second, second_trace) = runs
        assert first is not None and second is not None
        option = f" --variant {variant}" if variant is not None else ""
        print(f"graylink check-determinism {scenario} --seed {seed}{option}")
        print(f"  run 1 (PYTHONHASHSEED=1): digest {first['trace_digest']}, {first['events']} events")
        print(f"  run 2 (PYTHONHASHSEED=2): digest {second['trace_digest']}, {second['events']} events")
        if first["trace_digest"] == second["trace_digest"]:
            print("deterministic: both runs produced the same trace")
            return EXIT_PASSED
        divergence = first_divergence(first_trace, second_trace)
        print("NOT deterministic: the traces differ")
        if divergence is not None:
            print(divergence.describe())
        return EXIT_FAILED


def _run_in_fresh_process(scenario: str, seed: int, variant: str | None, trace: Path,
                          hash_seed: str) -> tuple[dict[str, object] | None, Path]:
    environment = dict(os.environ, PYTHONHASHSEED=hash_seed)
    command = [sys.executable, "-m", "harness", "run", scenario, "--seed", str(seed), "--json",
               "--trace", str(trace), "--report-dir", ""]
    if variant is not None:
        command += ["--variant", variant]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if completed.returncode not in (EXIT_PASSED, EXIT_FAILED):
        print(f"the run under PYTHONHASHSEED={hash_seed} exited {completed.returncode}:",
              file=sys.stderr)
        print(completed.stderr or completed.stdout, file=sys.stderr)
        return None, trace
    return json.loads(completed.stdout), trace


# -- check-history ---------------------------------------------------------------------------------
EXIT_UNKNOWN = 4  # check-history only: the search ran out of budget before deciding


def _add_check_history(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from harness.checkers import DEFAULT_MAX_STEPS, FORMATS, MODELS

    check = commands.add_parser(
        "check-history", help="check a recorded history for linearizability against a model")
    check.add_argument("history", metavar="FILE", help="the history (JSONL, or a Jepsen log)")
    check.add_argument("--model", required=True, choices=sorted(MODELS))
    check.add_argument("--format", default="jsonl", choices=FORMATS)
    check.add_argument("--json", action="store_true", help="print a machine-readable result")
    check.add_argument("--max-steps", type=_step_count, default=DEFAULT_MAX_STEPS, metavar="N",
                       help=f"search budget in model steps (default {DEFAULT_MAX_STEPS}); "
                            "running out gives exit 4")
    check.add_argument("--skip-eventual-reads", action="store_true",
                       help="leave out reads whose argument says {\"consistent\": false}: "
                            "eventually consistent reads may be stale by design")
    check.set_defaults(handler=_check_history)


def _step_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--max-steps is a non-negative integer, got {text!r}")
    return int(text)


def _check_history(args: argparse.Namespace) -> int:
    """Exit 0 linearizable, 1 not (with the evidence), 2 bad input, 4 unknown (budget ran out)."""
    from harness.checkers import (DEFAULT_MAX_STEPS, check_operations,
                                  is_eventually_consistent_read, read_history)
    from harness.history import pair_operations

    history = read_history(args.history, args.format)  # HistoryFormatError is a ScenarioError: exit 2
    try:
        operations = pair_operations(history)
        if args.skip_eventual_reads:
            operations = [op for op in operations if not is_eventually_consistent_read(op)]
        result = check_operations(operations, args.model, max_steps=args.max_steps)
    except ValueError as error:  # an operation the model cannot read: bad input too
        print(f"error: {args.history}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    command = f"graylink check-history {args.history} --model {args.model} --format {args.format}"
    if args.max_steps != DEFAULT_MAX_STEPS:
        command += f" --max-steps {args.max_steps}"
    if args.skip_eventual_reads:
        command += " --skip-eventual-reads"
    print(result.to_json() if args.json else f"{command}\n{result.describe()}")
    return {"linearizable": EXIT_PASSED, "not-linearizable": EXIT_FAILED}.get(result.verdict,
                                                                               EXIT_UNKNOWN)


if __name__ == "__main__":
    sys.exit(main())
