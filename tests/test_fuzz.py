"""`graylink fuzz` and its parts: exploration, shrinking, the written scenario, determinism.

The fast tests fuzz the tutorial register (a run of its small scenario takes a few milliseconds);
the slow ones hunt planted bugs of the reference system (`-m slow`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import ROOT

from harness import (
    Failure,
    Result,
    Scenario,
    ScheduledFault,
    cli,
    load_scenario,
    parse_scenario,
)
from harness import faults as f
from harness.fuzz import FuzzSettings, fuzz, parse_bounds, parse_choices
from harness.scenario_shrink import (
    ScenarioShrinker,
    failure_kinds,
    materialise_profile,
    scenario_size,
)
from harness.simulation import run_scenario
from harness.timeline import FaultProfile

REGISTER = """name: register-fuzz
seed: 1
duration_s: 10
heal_s: 3
topology: {az-a: [n1], az-b: [n2], az-c: [n3]}
disk: {fsync_latency_ms: 40}
system:
  use: systems.register:RegisterSystem
  config: {write_interval_ms: 20, ack_before_fsync: BUG}
"""
# The register's promise holds under process faults (crash, restart, pause, power-off) when it
# acknowledges after fsync; with ack_before_fsync a crash of the primary loses acknowledged writes.
PROCESS = FuzzSettings(budget=20, seed=0, kinds=("process",), vary=(), random_faults=False)


def register(bug: bool, tmp_path: Path) -> Path:
    path = tmp_path / f"register-{'buggy' if bug else 'fixed'}.yaml"
    path.write_text(REGISTER.replace("BUG", "true" if bug else "false"))
    return path


def test_fuzz_finds_a_planted_bug_and_writes_a_small_scenario_that_reproduces_it(
        tmp_path: Path) -> None:
    base = load_scenario(register(True, tmp_path))
    outcome = fuzz(base, PROCESS, report_dir=tmp_path / "out")
    assert outcome.failed and outcome.stopped == "failure" and outcome.first is not None
    assert outcome.first.run <= PROCESS.budget
    assert "lost-acknowledged-write" in failure_kinds(outcome.first.result)
    shrunk = outcome.shrunk
    assert shrunk is not None and shrunk.size().fault_actions <= 2
    assert shrunk.scenario.duration_s <= base.duration_s
    # the file: loadable, with its seed, failing the same way, as `graylink run` would run it
    assert outcome.path is not None and outcome.path.parent == tmp_path / "out"
    written = load_scenario(outcome.path)
    assert written.seed == shrunk.seed and written.faults == shrunk.scenario.faults
    again = run_scenario(written)
    assert not again.passed and "lost-acknowledged-write" in failure_kinds(again)
    assert again.trace_digest == shrunk.result.trace_digest and outcome.reproduced
    assert outcome.path.with_suffix(".txt").read_text().startswith("graylink run")
    assert "Found by `graylink fuzz" in written.description
    assert written.expectations == () and written.variants == ()  # `graylink run` exits 1 on it
    assert parse_scenario(outcome.path.read_text()).faults == shrunk.scenario.faults
    # the same scenario with the bug fixed passes: the failure is the bug's, not the faults'
    fixed = dataclasses.replace(written, system=dataclasses.replace(
        written.system, config=dataclasses.replace(written.system.config, ack_before_fsync=False)))
    assert run_scenario(fixed).passed


def test_fuzz_passes_a_correct_system(tmp_path: Path) -> None:
    base = load_scenario(register(False, tmp_path))
    outcome = fuzz(base, dataclasses.replace(PROCESS, budget=12), report_dir=tmp_path)
    assert not outcome.failed and outcome.runs == 12 and outcome.stopped == "budget"
    assert outcome.path is None and not list(tmp_path.glob("*-fuzz-*"))


def test_the_same_seed_explores_the_same_cases(tmp_path: Path) -> None:
    base = load_scenario(register(False, tmp_path))
    # (not ``clients``: the register's own check assumes a single client's increasing values)
    settings = dataclasses.replace(PROCESS, budget=6, seed=3, vary=("write_interval_ms",),
                                   random_faults=True)

    def explored(settings: FuzzSettings) -> tuple[str, list[tuple[str, int]]]:
        cases: list[tuple[str, int]] = []

        def run(scenario: Scenario, seed: int) -> Result:
            cases.append((scenario.name + repr(scenario.faults) + repr(scenario.random_faults)
                          + repr(scenario.system.config), seed))
            return run_scenario(scenario, seed)

        outcome = fuzz(base, settings, report_dir=None, run=run)
        return outcome.exploration_digest, cases

    first, second = explored(settings), explored(settings)
    assert first == second and len(first[1]) == 6
    other = explored(dataclasses.replace(settings, seed=4))
    assert other[0] != first[0] and other[1] != first[1]


def test_the_engine_explores_reproducibly_too(tmp_path: Path) -> None:
    base = load_scenario(register(False, tmp_path))
    settings = dataclasses.replace(PROCESS, budget=5, explore="hypothesis")
    first = fuzz(base, settings, report_dir=None)
    assert first.runs == 5 and first.exploration_digest == fuzz(base, settings,
                                                                report_dir=None).exploration_digest
    assert first.exploration_digest != fuzz(base, dataclasses.replace(settings, explore="fresh"),
                                            report_dir=None).exploration_digest
    with pytest.raises(ValueError, match="explore"):
        fuzz(base, dataclasses.replace(settings, explore="sideways"), report_dir=None)


def test_fresh_exploration_draws_every_case_afresh(tmp_path: Path) -> None:
    """Hypothesis's engine, on a budget this small, runs minimal examples and near-copies of its
    examples; fresh draws give as many different cases (and simulation seeds) as runs."""
    base = load_scenario(register(False, tmp_path))
    cases: list[tuple[Scenario, int]] = []

    def run(scenario: Scenario, seed: int) -> Result:
        cases.append((scenario, seed))
        return fake_result(scenario, False)

    settings = dataclasses.replace(PROCESS, budget=40, kinds=None, guided_share=0.0)
    fuzz(base, settings, report_dir=None, run=run)
    assert len(cases) == 40
    assert len({seed for _, seed in cases}) >= 38
    assert len({len(scenario.faults) for scenario, _ in cases}) >= 4
    assert len({s.fault.kind for scenario, _ in cases for s in scenario.faults}) >= 10


def test_guided_cases_are_drawn_near_the_best_run_of_a_signal(tmp_path: Path) -> None:
    base = load_scenario(register(False, tmp_path))

    def explore(share: float) -> tuple[list[int], list[int], str]:
        lines: list[str] = []
        sizes: list[int] = []

        def run(scenario: Scenario, seed: int) -> Result:
            sizes.append(len(scenario.faults))  # the signal: more faults, better
            return dataclasses.replace(fake_result(scenario, False),
                                       metrics={"elections": float(len(scenario.faults))})

        outcome = fuzz(base, dataclasses.replace(PROCESS, budget=80, targets=("elections",),
                                                 guided_share=share),
                       report_dir=None, run=run, progress=lines.append)
        runs = [line for line in lines if line.startswith("run ")]
        guided = [size for size, line in zip(sizes, runs) if "near the best elections" in line]
        assert not guided or {"cut)", "mutated)"} <= {line.split()[-1] for line in runs}
        fresh = [size for size, line in zip(sizes, runs) if "near the best" not in line]
        return guided, fresh, outcome.exploration_digest

    guided, fresh, digest = explore(0.5)
    assert 15 <= len(guided) <= 50  # half of the 64 runs after the warm-up of 16
    # a guided case keeps the first choices of the best so far: its first faults, at least
    assert sum(guided) / len(guided) > sum(fresh) / len(fresh)
    assert explore(0.5)[2] == digest  # guidance depends on earlier results: deterministic too
    assert explore(0.0)[0] == []


def test_draw_case_replays_a_choice_sequence() -> None:
    from random import Random

    from hypothesis import strategies as st

    from harness.fuzz import draw_case, fresh_draws_supported, mutated

    assert fresh_draws_supported()
    strategy = st.lists(st.integers(0, 1000), min_size=3, max_size=8)
    value, nodes = draw_case(strategy, Random(5))  # type: ignore[misc]
    choices = tuple(node.value for node in nodes)
    assert draw_case(strategy, Random(5))[0] == value  # type: ignore[index]
    assert draw_case(strategy, Random(6))[0] != value  # type: ignore[index]
    assert draw_case(strategy, Random(6), choices)[0] == value  # type: ignore[index]
    partial = draw_case(strategy, Random(6), choices[:3])  # the first element, then fresh
    assert partial is not None and partial[0][0] == value[0] and partial[0] != value
    assert draw_case(strategy.filter(lambda items: False), Random(5)) is None
    # a mutation draws one choice afresh within its bounds and keeps the others
    changed = [draw_case(strategy, Random(6), mutated(nodes, Random(seed)))[0]  # type: ignore[index]
               for seed in range(20)]
    assert all(0 <= item <= 1000 for items in changed for item in items)
    differing = [sum(a != b for a, b in zip(items, value)) + abs(len(items) - len(value))
                 for items in changed]
    assert max(differing) >= 1 and sorted(differing)[len(differing) // 2] <= 1


def test_failures_the_oracle_refuses_do_not_count_and_exploration_goes_on(tmp_path: Path) -> None:
    base = load_scenario(register(True, tmp_path))
    refused: list[int] = []

    def never(scenario: Scenario, seed: int) -> bool:
        refused.append(seed)
        return False

    outcome = fuzz(base, PROCESS, report_dir=tmp_path, confirm=never)
    assert not outcome.failed and outcome.runs == PROCESS.budget and outcome.path is None
    assert refused and len(outcome.unconfirmed) == len(refused)
    assert all(not finding.result.passed for finding in outcome.unconfirmed)


def test_a_scenario_that_fails_as_written_is_the_finding(tmp_path: Path) -> None:
    path = register(True, tmp_path)
    # a restart of the primary that the first fuzz test shrank its finding to, with its seed
    path.write_text(path.read_text().replace("seed: 1", "seed: 293")
                    + "faults: [{at_s: 1.3, restart: {node: n1}}]\n")
    outcome = fuzz(load_scenario(path), dataclasses.replace(PROCESS, max_shrink_runs=3),
                   report_dir=tmp_path)
    assert outcome.failed and outcome.runs == 0 and outcome.first is not None
    assert outcome.first.run == 0 and outcome.shrink_runs == 3 and outcome.reproduced
    assert "in its baseline run" in load_scenario(outcome.path).description  # type: ignore[arg-type]


def test_a_shrink_goal_missed_sends_exploration_on_and_the_smallest_is_written(
        tmp_path: Path) -> None:
    base = load_scenario(register(True, tmp_path))
    settings = dataclasses.replace(PROCESS, budget=40, max_shrink_runs=20)
    single = fuzz(base, settings, report_dir=None)
    assert single.failures_shrunk == 1 and single.runs == single.first.run  # type: ignore[union-attr]
    # a goal no failure can meet (every one needs a crash): each failure is shrunk, to the budget
    sizes: list[int] = []
    outcome = fuzz(base, dataclasses.replace(settings, shrink_goal=0), report_dir=tmp_path,
                   progress=lambda text: sizes.append(int(text.split("so far: ")[1].split(")")[0]))
                   if "the smallest so far" in text else None)
    assert outcome.failures_shrunk >= 2 and outcome.runs == settings.budget
    assert len(sizes) == outcome.failures_shrunk  # each missed the goal, each said so
    assert outcome.first is not None and outcome.first.run == single.first.run  # type: ignore[union-attr]
    assert outcome.shrunk is not None and outcome.origin is not None
    assert outcome.shrunk.size().fault_actions == min(sizes)
    assert outcome.reproduced and outcome.path is not None
    if outcome.origin is not outcome.first:
        assert "the ones before shrank to more than 0 fault actions" in \
            load_scenario(outcome.path).description  # type: ignore[operator]


def test_a_time_budget_stops_between_runs(tmp_path: Path) -> None:
    base = load_scenario(register(False, tmp_path))
    outcome = fuzz(base, dataclasses.replace(PROCESS, budget=None, time_s=0.5), report_dir=None)
    assert outcome.stopped == "time" and not outcome.failed and outcome.runs >= 1


# -- the shrinker, with a stand-in for the simulation ---------------------------------------------
def fake_result(scenario: Scenario, failing: bool, kind: str = "durability") -> Result:
    failures = (Failure(kind, "lost", 0),) if failing else ()
    return Result(scenario=scenario.name, source=None, seed=0, passed=not failing,
                  reason="failure" if failing else "completed", failures=failures, metrics={},
                  trace_digest="", sim_time_s=0.0, wall_time_s=0.0, events=0)


def test_the_shrinker_keeps_exactly_the_faults_the_failure_needs() -> None:
    base = load_scenario(ROOT / "scenarios" / "s01-leader-crash.yaml")
    needed = [ScheduledFault(12.0, f.Crash(node="leader(0)")),
              ScheduledFault(20.0, f.Pause(node="s4", duration_s=2.0))]
    noise = [ScheduledFault(float(t), f.ClockJump(node="s2", by_ms=t)) for t in range(1, 30, 3)]
    scenario = dataclasses.replace(base, faults=tuple(sorted(needed + noise, key=lambda s: s.at_s)),
                                   expectations=())
    calls: list[Scenario] = []

    def run(candidate: Scenario, seed: int) -> Result:
        calls.append(candidate)
        kept = {(s.fault.kind, s.fault.node) for s in candidate.faults}  # type: ignore[attr-defined]
        failing = {("crash", "leader(0)"), ("pause", "s4")} <= kept and seed == 7
        # another failure kind must not count as the same failure
        return fake_result(candidate, failing or len(candidate.faults) == 1,
                           "durability" if failing else "liveness")

    shrinker = ScenarioShrinker(scenario, 7, fake_result(scenario, True), run, max_runs=200)
    best, result = shrinker.shrink()
    # (moved earlier as a whole: this failure does not depend on when they strike)
    assert [(s.fault.kind, s.at_s) for s in best.faults] == [("crash", 3.0), ("pause", 11.0)]
    assert best.duration_s < base.duration_s and best.heal_s == base.heal_s  # heal: untouched
    assert failure_kinds(result) == {"durability"} and shrinker.seed == 7
    assert len(calls) == shrinker.runs <= 60  # ddmin, not every subset


def test_the_shrinker_tries_other_seeds_when_no_fault_can_go() -> None:
    base = load_scenario(ROOT / "scenarios" / "s01-leader-crash.yaml")
    crash, pause = (ScheduledFault(12.0, f.Crash(node="s1")),
                    ScheduledFault(20.0, f.Pause(node="s4", duration_s=2.0)))
    scenario = dataclasses.replace(base, faults=(crash, pause), expectations=())

    def run(candidate: Scenario, seed: int) -> Result:
        # with seed 7 the failure needs both faults; with seed 2 the crash alone
        failing = (candidate.faults == (crash, pause) and seed == 7) or \
            (candidate.faults == (crash,) and seed == 2)
        return fake_result(candidate, failing)

    shrinker = ScenarioShrinker(scenario, 7, fake_result(scenario, True), run)
    best, _ = shrinker.shrink()
    assert best.faults == (crash,) and shrinker.seed == 2


def test_the_shrinker_moves_a_late_timeline_earlier_then_cuts_the_run() -> None:
    base = load_scenario(ROOT / "scenarios" / "s01-leader-crash.yaml")
    late = (ScheduledFault(24.0, f.Crash(node="s1", duration_s=2.0)),
            ScheduledFault(25.5, f.Pause(node="s4", duration_s=1.0)))
    scenario = dataclasses.replace(base, faults=late, duration_s=30.0, expectations=())

    def run(candidate: Scenario, seed: int) -> Result:
        # fails while both faults strike, 1.5 s apart, after the first 3 s of the run
        times = [s.at_s for s in candidate.faults]
        return fake_result(candidate, len(times) == 2 and times[0] >= 3 and
                           times[1] - times[0] == 1.5 and candidate.duration_s >= times[1] + 1)

    shrinker = ScenarioShrinker(scenario, 1, fake_result(scenario, True), run)
    best, _ = shrinker.shrink()
    assert [s.at_s for s in best.faults] == [6.0, 7.5]  # a quarter of 24 s, the gap kept
    assert best.duration_s == 10.0 and best.heal_s == scenario.heal_s  # just past the pause's end


def test_the_shrinker_respects_its_run_budget() -> None:
    base = load_scenario(ROOT / "scenarios" / "s01-leader-crash.yaml")
    faults = tuple(ScheduledFault(float(t), f.Crash(node="s1")) for t in range(10))
    scenario = dataclasses.replace(base, faults=faults, expectations=())
    shrinker = ScenarioShrinker(scenario, 1, fake_result(scenario, True),
                                lambda candidate, seed: fake_result(candidate, False), max_runs=5)
    best, _ = shrinker.shrink()
    assert shrinker.runs == 5 and best == scenario


def test_a_random_profile_is_materialised_into_the_same_run() -> None:
    scenario = dataclasses.replace(
        load_scenario(ROOT / "scenarios" / "register-crash-and-partition.yaml"), expectations=())
    assert scenario.random_faults is not None
    written = materialise_profile(scenario, 3)
    assert written.random_faults is None and len(written.faults) > len(scenario.faults)
    assert scenario_size(scenario, 3).fault_actions == len(written.faults)
    assert run_scenario(scenario, 3).trace_digest == run_scenario(written, 3).trace_digest
    lossy = dataclasses.replace(scenario, random_faults=FaultProfile(crash_per_minute=6,
                                                                     loss_probability=0.01))
    assert materialise_profile(lossy, 3).random_faults == FaultProfile(loss_probability=0.01)


# -- the command line --------------------------------------------------------------------------------
def test_the_fuzz_command_exits_1_with_the_written_scenario_and_0_when_nothing_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--budget", "20", "--faults", "process", "--vary", "", "--no-random-faults",
              "--report-dir", str(tmp_path / "out")]
    assert cli.main(["fuzz", str(register(True, tmp_path)), *common]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"graylink fuzz {register(True, tmp_path)} --budget 20 --seed 0")
    assert "FAILED: lost-acknowledged-write" in captured.out and "reproduces the failure" in \
        captured.out and "run 1/20" in captured.err
    written = list((tmp_path / "out").glob("*.yaml"))
    assert len(written) == 1
    assert cli.main(["run", str(written[0]), "--report-dir", ""]) == 1
    capsys.readouterr()
    common[1] = "8"
    assert cli.main(["fuzz", str(register(False, tmp_path)), *common, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "PASSED: no failure in 8 runs" in captured.out and captured.err == ""


def test_the_fuzz_command_refuses_bad_input(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = str(register(False, tmp_path))
    assert cli.main(["fuzz", path, "--budget", "1", "--faults", "explode"]) == 2
    assert "unknown fault kind" in capsys.readouterr().err
    assert cli.main(["fuzz", path, "--budget", "1", "--bound", "drift"]) == 2
    assert cli.main(["fuzz", path, "--budget", "1", "--vary", "nothing_like_it"]) == 2
    assert "no field 'nothing_like_it'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["fuzz", path])  # --budget or --time is required
    variants = ROOT / "scenarios" / "s06-paused-leader.yaml"
    assert cli.main(["fuzz", str(variants), "--budget", "1"]) == 2
    assert "--variant" in capsys.readouterr().err


def test_bounds_and_choices_parse() -> None:
    assert parse_bounds(["clock_drift.drift_ppm=-5:5"]) == {"clock_drift.drift_ppm": (-5.0, 5.0)}
    assert parse_choices(["deploy.version=v1, v2"]) == {"deploy.version": ("v1", "v2")}
    with pytest.raises(ValueError):
        parse_choices(["deploy.version="])


# -- the reference system (slow) ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("bug", ["stale_leader_serves", "ack_before_quorum"])
def test_fuzz_finds_planted_bugs_of_the_reference_system(bug: str, tmp_path: Path) -> None:
    """As benchmarks/bug_hunt.py does: deployments of sound builds only, the base's invariant kept,
    and a failure counts only if it passes with the bug switched off."""
    base = load_scenario(ROOT / "benchmarks" / "bug_hunt_base.yaml")
    config = base.system.config

    def with_bug(scenario: Scenario, on: bool) -> Scenario:
        bugs = dataclasses.replace(scenario.system.config.bugs, **{bug: on})
        return dataclasses.replace(scenario, system=dataclasses.replace(
            scenario.system, config=dataclasses.replace(scenario.system.config, bugs=bugs)))

    settings = FuzzSettings(budget=200, seed=0, keep_expectations=True, choices={
        "deploy.version": ("v1", "v2"), "deploy.phase": ("read",),
        "random_faults.deploy_versions": ("v1", "v2"), "random_faults.deploy_phase": ("read",)})
    outcome = fuzz(with_bug(base, True), settings, report_dir=tmp_path,
                   confirm=lambda scenario, seed: run_scenario(with_bug(scenario, False),
                                                               seed).passed)
    assert outcome.failed and outcome.reproduced
    assert outcome.shrunk is not None and outcome.shrunk.size().fault_actions <= 3
    written = load_scenario(outcome.path)  # type: ignore[arg-type]
    assert written.system.config.bugs != config.bugs
    assert run_scenario(with_bug(written, False)).passed


# -- found by fuzzing ------------------------------------------------------------------------------
def test_a_partition_whose_selector_names_a_node_of_the_other_side_is_skipped() -> None:
    """`graylink fuzz` drew partition(side_a=[leader(0)], side_b=[s4]) while s4 led partition 0:
    the network refused the overlapping sides and the run ended as an internal error."""
    from harness import Topology, World
    from harness.timeline import FaultTimeline

    class Leads:
        def select_node(self, world: World, kind: str, argument: str) -> str:
            return "n2"

    world = World(1, Topology.from_azs({"az-a": ["n1"], "az-b": ["n2"], "az-c": ["n3"]}))
    world.system = Leads()
    timeline = FaultTimeline(world)
    timeline.schedule(ScheduledFault(1.0, f.Partition(side_a=("leader(0)",), side_b=("n2", "n3"))))
    timeline.schedule(ScheduledFault(2.0, f.Partition(side_a=("leader(0)",), side_b=("n3",))))
    world.kernel.run(until_ns=3_000_000_000)
    skipped, applied = timeline.log
    assert skipped.description.startswith("skipped partition") and "both sides" in \
        skipped.description
    assert applied.description.startswith("partition(side_a=[leader(0)], side_b=[n3])")
