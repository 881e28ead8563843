"""The pytest plugin (harness/pytest_plugin.py), driven through pytester: collection, seeds, failure
reports, the failing-seed memory, determinism mode, and the fixtures for Python tests."""

from __future__ import annotations

import re
from glob import escape

import hypothesis  # noqa: F401 - imported once here: pytester would re-import it (~2 s) per run
import pytest

from harness.sweep import derive_seeds

pytest_plugins = ["pytester"]

SCENARIO = """name: {name}
seed: {seed}
duration_s: 2
heal_s: 0.5
topology: {{az-a: [n1], az-b: [n2]}}
system:
  use: planted_systems:ScriptedVerdictSystem
  config: {{metrics: {{ops: 5}}, failures: {failures}}}
expect: [ops >= 1]
"""

VARIANTS = """variants:
  good:
    system: {config: {failures: []}}
  bad:
    system: {config: {failures: [invariant]}}
"""

GOSSIP = """name: gossip
seed: 1
duration_s: 2
heal_s: 0.5
topology: {{az-a: [a1, a2, a3], az-b: [b1, b2, b3], az-c: [c1, c2, c3]}}
system:
  use: planted_systems:GossipSystem
  config: {{ordered: {ordered}}}
"""


def scenario(name: str = "steady", seed: int = 3, failures: str = "[]") -> str:
    return SCENARIO.format(name=name, seed=seed, failures=failures)


def collected(result: pytest.RunResult) -> list[str]:
    return [line.strip() for line in result.stdout.lines if "::" in line and "[seed" in line]


def test_scenario_files_become_items_per_variant_and_seed(pytester: pytest.Pytester) -> None:
    library = pytester.mkdir("library")
    (library / "steady.yaml").write_text(scenario())
    (library / "pair.yaml").write_text(scenario("pair", seed=5) + VARIANTS)
    (library / "ci.yaml").write_text("on: [push]\njobs: {test: {runs-on: ubuntu-latest}}\n")
    (library / "half.yaml").write_text("system: {use: x:Y}\nnotes: no topology here\n")
    (library / "nested.yml").write_text("config:\n  topology: {}\n  system: {}\n")
    result = pytester.runpytest("library", "--co", "-q")
    assert collected(result) == ["library/pair.yaml::good[seed5]", "library/pair.yaml::bad[seed5]",
                                 "library/steady.yaml::steady[seed3]"]

    result = pytester.runpytest("library", "--co", "-q", "--graylink-seeds", "3",
                                "--graylink-base-seed", "77")
    seeds = derive_seeds(77, "steady", 3)
    assert [line for line in collected(result) if "steady" in line] == [
        f"library/steady.yaml::steady[seed{seed}]" for seed in seeds]
    assert len(collected(result)) == 9
    result = pytester.runpytest("library/steady.yaml", "--co", "-q", "--graylink-seed", "12")
    assert collected(result) == ["library/steady.yaml::steady[seed12]"]


def test_yaml_under_testpaths_is_collected_only_through_the_ini_glob(
        pytester: pytest.Pytester) -> None:
    pytester.mkdir("checks")
    (pytester.path / "checks" / "steady.yaml").write_text(scenario())
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["checks"]\n')
    assert collected(pytester.runpytest("--co", "-q")) == []
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["checks"]\n'
                               'graylink_scenarios = ["checks/*.yaml"]\n')
    assert collected(pytester.runpytest("--co", "-q")) == ["checks/steady.yaml::steady[seed3]"]


def test_the_header_shows_the_base_seed(pytester: pytest.Pytester) -> None:
    (pytester.path / "steady.yaml").write_text(scenario())
    result = pytester.runpytest("steady.yaml", "--co", "--graylink-base-seed", "4242")
    result.stdout.fnmatch_lines(["graylink: base seed 4242 (--graylink-base-seed)*"])
    result = pytester.runpytest("steady.yaml", "--co")
    result.stdout.fnmatch_lines(["graylink: base seed 0 (default)*"])
    result = pytester.runpytest("steady.yaml", "--co", "--graylink-base-seed", "random")
    drawn = re.search(r"graylink: base seed (\d+) \(drawn at random", result.stdout.str())
    assert drawn is not None
    result = pytester.runpytest("steady.yaml", "--graylink-seed", "1", "--graylink-seeds", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_passing_scenario_passes_and_a_failing_one_shows_how_to_reproduce_it(
        pytester: pytest.Pytester) -> None:
    (pytester.path / "pair.yaml").write_text(scenario("pair", seed=5) + VARIANTS)
    result = pytester.runpytest("pair.yaml", "-p", "no:cacheprovider",
                                "--graylink-report-dir", "out")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "reproduce: graylink run pair.yaml --seed 5 --variant bad",
        "       or: pytest 'pair.yaml::bad[seed5]' --graylink-seed 5",
        "FAILED: pair?bad? (seed 5) - failure",
        "*?invariant? at t=2.500000s: planted invariant",
        "  report: out/pair-bad-seed5.json",
    ])
    assert "pair.yaml::good" not in result.stdout.str().split("short test summary")[0].split(
        "FAILURES")[-1]
    assert (pytester.path / "out" / "pair-good-seed5.json").exists()


def test_an_invalid_scenario_is_a_collection_error_naming_the_line(
        pytester: pytest.Pytester) -> None:
    (pytester.path / "bad.yaml").write_text(scenario().replace("duration_s: 2", "duration_s: -2"))
    result = pytester.runpytest("bad.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest's code for collection errors
    result.stdout.fnmatch_lines(["*invalid scenario file: *bad.yaml:3:*duration_s*"])


def test_failing_seeds_are_remembered_and_replayed_first(pytester: pytest.Pytester) -> None:
    (pytester.path / "a.yaml").write_text(scenario("alpha", seed=1))
    (pytester.path / "b.yaml").write_text(scenario("beta", seed=2, failures="[invariant]"))
    first = pytester.runpytest("a.yaml", "b.yaml", "--graylink-seed", "9", "-v")
    first.assert_outcomes(passed=1, failed=1)

    # Next run, default seeds: the remembered failure b.yaml seed 9 is added and runs first.
    second = pytester.runpytest("a.yaml", "b.yaml", "-v")
    second.stdout.fnmatch_lines(["graylink: *1 remembered failing seed, replayed first*"])
    order = [line.split(" ")[0] for line in second.stdout.lines if " PASSED" in line
             or " FAILED" in line and "::" in line and not line.startswith("FAILED")]
    assert order == ["b.yaml::beta[seed9]", "a.yaml::alpha[seed1]", "b.yaml::beta[seed2]"]
    second.assert_outcomes(passed=1, failed=2)

    # Fixed: both remembered seeds (9, and now 2) are replayed first, pass, and are forgotten.
    (pytester.path / "b.yaml").write_text(scenario("beta", seed=2))
    third = pytester.runpytest("a.yaml", "b.yaml", "--co", "-q")
    assert collected(third) == ["b.yaml::beta[seed2]", "b.yaml::beta[seed9]", "a.yaml::alpha[seed1]"]
    pytester.runpytest("a.yaml", "b.yaml").assert_outcomes(passed=3)
    fourth = pytester.runpytest("a.yaml", "b.yaml", "--co", "-q")
    assert collected(fourth) == ["a.yaml::alpha[seed1]", "b.yaml::beta[seed2]"]


def test_determinism_mode_catches_a_planted_set_order_bug(pytester: pytest.Pytester) -> None:
    (pytester.path / "ordered.yaml").write_text(GOSSIP.format(ordered="true"))
    (pytester.path / "unordered.yaml").write_text(GOSSIP.format(ordered="false"))
    plain = pytester.runpytest("ordered.yaml", "unordered.yaml", "-p", "no:cacheprovider")
    plain.assert_outcomes(passed=2)  # without the mode, the bug is invisible in one process
    result = pytester.runpytest("ordered.yaml", "unordered.yaml", "-p", "no:cacheprovider",
                                "--graylink-determinism")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "reproduce: graylink run unordered.yaml --seed 1",
        "NOT deterministic: the same seed gave different traces",
        "*PYTHONHASHSEED=1: digest *",
        "*traces diverge at event #*",
    ])
    assert "FAILED unordered.yaml::gossip[seed1]" in result.stdout.str()


PYTHON_TESTS = '''
import dataclasses
import pytest
from harness import Scenario, SystemSpec, Topology

LEAKS = []


class LeakySystem:
    """Deterministic per seed only in a fresh process: each run sends one more message."""

    def __init__(self, config):
        LEAKS.append(1)
        self.count = len(LEAKS)

    def setup(self, world):
        count = self.count

        class Program:
            def __init__(self, ctx):
                self.ctx = ctx

            def on_start(self):
                for _ in range(count):
                    self.ctx.send("n2" if self.ctx.name == "n1" else "n1", "ping")

            def on_message(self, source, message):
                pass

        for name in world.node_names():
            world.node(name).install(Program)

    def check(self, world):
        return []

    def metrics(self, world):
        return {}


def planted(failures):
    return Scenario(name="planted", topology=Topology.from_azs({"az-a": ["n1"], "az-b": ["n2"]}),
                    duration_s=1, heal_s=0.5,
                    system=SystemSpec("planted_systems:ScriptedVerdictSystem",
                                      {"failures": failures}))


def test_passes(graylink_run, graylink_seed):
    result = graylink_run(planted([]))
    assert result.passed and result.seed == graylink_seed


def test_fails(graylink_run):
    result = graylink_run(planted(["invariant"]))
    assert result.passed


def test_leaks(graylink_run):
    leaky = Scenario(name="leaky", topology=Topology.from_azs({"az-a": ["n1"], "az-b": ["n2"]}),
                     duration_s=1, heal_s=0.5, system=SystemSpec("test_python:LeakySystem"))
    assert graylink_run(leaky).passed
'''


def test_python_tests_get_seeds_runs_and_evidence(pytester: pytest.Pytester) -> None:
    pytester.syspathinsert()
    pytester.makepyfile(test_python=PYTHON_TESTS)
    result = pytester.runpytest("-v", "--graylink-seeds", "2", "--graylink-base-seed", "5")
    seeds = derive_seeds(5, "test_python.py::test_passes", 2)
    result.stdout.fnmatch_lines([escape(f"test_python.py::test_passes[seed{seed}]") + " PASSED*"
                                 for seed in seeds])
    result.assert_outcomes(passed=4, failed=2)
    fails_seed = derive_seeds(5, "test_python.py::test_fails", 2)[0]
    result.stdout.fnmatch_lines([
        "*Captured graylink call*",
        escape(f"reproduce: pytest 'test_python.py::test_fails[seed{fails_seed}]' --graylink-seed "
               f"{fails_seed}"),
        f"graylink run <scenario.yaml> --seed {fails_seed}",
        "*?invariant?*planted invariant*",
    ])
    replay = pytester.runpytest("-v", "--graylink-base-seed", "5")
    first = next(line for line in replay.stdout.lines
                 if "::" in line and ("PASSED" in line or "FAILED" in line))
    assert first.startswith("test_python.py::test_fails[seed")  # a remembered failure, replayed first

    determinism = pytester.runpytest("-p", "no:cacheprovider", "--graylink-determinism",
                                     "-k", "leaks or passes")
    determinism.assert_outcomes(passed=1, failed=1)
    determinism.stdout.fnmatch_lines(["*NOT deterministic: leaky seed * gave digest *in the same process"])


def test_the_reference_cluster_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cluster='''
import pytest
from systems.dynamo.config import WorkloadConfig

@pytest.fixture
def graylink_workload():
    return WorkloadConfig(clients=3, operations_per_s=4.0)

def test_cluster(graylink_cluster, graylink_simulation, graylink_result, graylink_history,
                 graylink_seed):
    assert len(graylink_cluster.topology.nodes) == 9
    assert graylink_simulation.seed == graylink_seed == graylink_result.seed
    assert graylink_result.passed, graylink_result.render_text()
    assert {entry.process for entry in graylink_history} and len(graylink_history) > 100
    assert len(graylink_simulation.system.layout.clients) == 3

# The README's example, as written there.
import dataclasses
from harness import ScheduledFault, faults

def test_a_leader_crash_loses_nothing(graylink_cluster, graylink_run):
    crash = ScheduledFault(10.0, faults.Crash("leader(0)", duration_s=5))
    result = graylink_run(dataclasses.replace(graylink_cluster, faults=(crash,)))
    assert result.passed and result.metrics["lost_acknowledged_writes"] == 0
    assert [fault.description for fault in result.faults][0].startswith("crash")
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--graylink-seed", "3")
    result.assert_outcomes(passed=2)
