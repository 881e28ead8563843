"""The one promise: a seed decides the run, bit for bit, across processes and PYTHONHASHSEED values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, subprocess_env
from harness import load_scenario, parse_scenario, run_scenario

SCENARIO = ROOT / "scenarios" / "register-crash-and-partition.yaml"

GOSSIP = """
name: gossip
duration_s: 2
heal_s: 0.5
topology: {{az-a: [a1, a2, a3], az-b: [b1, b2, b3], az-c: [c1, c2, c3]}}
system:
  use: planted_systems:GossipSystem
  config: {{ordered: {ordered}}}
"""


def test_same_seed_gives_the_same_digest() -> None:
    scenario = load_scenario(SCENARIO)
    first, second = run_scenario(scenario, 7), run_scenario(scenario, 7)
    assert first.trace_digest == second.trace_digest
    assert first.events == second.events and first.metrics == second.metrics
    assert [f.description for f in first.faults] == [f.description for f in second.faults]


def test_different_seeds_give_different_digests() -> None:
    scenario = load_scenario(SCENARIO)
    digests = {run_scenario(scenario, seed).trace_digest for seed in range(5)}
    assert len(digests) == 5


def _run_json(scenario: Path, seed: int, hash_seed: str, trace: Path | None = None) -> dict:
    command = [sys.executable, "-m", "harness", "run", str(scenario), "--seed", str(seed),
               "--json", "--report-dir", ""]
    if trace is not None:
        command += ["--trace", str(trace)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                               env=subprocess_env(PYTHONHASHSEED=hash_seed))
    assert completed.returncode in (0, 1), completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.parametrize("scenario", [SCENARIO, ROOT / "scenarios" / "s01-leader-crash.yaml"],
                         ids=["register", "dynamo"])
def test_same_digest_across_processes_and_hash_seeds(scenario: Path) -> None:
    in_process = run_scenario(load_scenario(scenario), 11).trace_digest
    digests = {_run_json(scenario, 11, hash_seed)["trace_digest"] for hash_seed in ("0", "1", "4242")}
    assert digests == {in_process}


def test_the_trace_digest_covers_every_event(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    summary = _run_json(SCENARIO, 3, "0", trace)
    lines = trace.read_text().splitlines()
    assert len(lines) == summary["events"]
    first = json.loads(lines[0])
    assert set(first) == {"i", "t_ns", "node", "kind", "detail"}


def test_check_determinism_passes_a_deterministic_scenario() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "harness", "check-determinism", str(SCENARIO), "--seed", "5"],
        capture_output=True, text=True, cwd=ROOT, env=subprocess_env(), check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "deterministic" in completed.stdout


@pytest.mark.parametrize("ordered, expected_exit", [("true", 0), ("false", 1)])
def test_check_determinism_catches_set_iteration_order(tmp_path: Path, ordered: str,
                                                       expected_exit: int) -> None:
    scenario = tmp_path / "gossip.yaml"
    scenario.write_text(GOSSIP.format(ordered=ordered))
    completed = subprocess.run(
        [sys.executable, "-m", "harness", "check-determinism", str(scenario), "--seed", "1"],
        capture_output=True, text=True, cwd=ROOT, env=subprocess_env(), check=False)
    assert completed.returncode == expected_exit, completed.stdout + completed.stderr
    if expected_exit:
        assert "NOT deterministic" in completed.stdout
        assert "traces diverge at event #" in completed.stdout
        assert "first run:" in completed.stdout and "second run:" in completed.stdout


def test_planted_set_order_bug_really_depends_on_the_hash_seed(tmp_path: Path) -> None:
    """The planted bug is real: in-process runs agree, fresh processes with other hash seeds do not."""
    scenario = parse_scenario(GOSSIP.format(ordered="false"))
    assert run_scenario(scenario, 1).trace_digest == run_scenario(scenario, 1).trace_digest
    path = tmp_path / "gossip.yaml"
    path.write_text(GOSSIP.format(ordered="false"))
    digests = {_run_json(path, 1, hash_seed)["trace_digest"] for hash_seed in ("1", "2", "3")}
    assert len(digests) > 1
