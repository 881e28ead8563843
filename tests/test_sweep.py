"""Many runs: `graylink sweep` on a process pool, `graylink run FILE…`, seeds, and the progress bar."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
from conftest import ROOT, subprocess_env

from harness import cli, load_scenario
from harness.progress import Progress, format_duration
from harness.sweep import derive_seeds, plan_runs, seeds_for

CLEAN = ROOT / "scenarios" / "register-crash-and-partition.yaml"
# Its buggy variant misses its bug on seeds 2, 3, 4, 5 and 7 of 1 to 8: failing runs to sweep.
BUGGY = ROOT / "tests" / "data" / "register-long-crashes.yaml"

MINIMAL = """name: {name}
duration_s: 3
heal_s: 1
topology: {{az-a: [n1], az-b: [n2]}}
system: {{use: "planted_systems:{system}"}}
"""


def graylink(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=ROOT, env=subprocess_env(), check=False)


def planted(tmp_path: Path, name: str, system: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(MINIMAL.format(name=name, system=system))
    return path


# -- seeds and plans -------------------------------------------------------------------------------
def test_derived_seeds_are_stable_distinct_and_depend_on_base_and_name() -> None:
    seeds = derive_seeds(42, "s01-leader-crash", 50)
    assert seeds == derive_seeds(42, "s01-leader-crash", 50)
    assert len(set(seeds)) == 50 and all(0 <= seed < 1_000_000 for seed in seeds)
    assert derive_seeds(42, "s01-leader-crash", 3) == seeds[:3]  # more seeds extend, never reshuffle
    assert derive_seeds(43, "s01-leader-crash", 3) != seeds[:3]
    assert derive_seeds(42, "s02-gray-link", 3) != seeds[:3]
    assert derive_seeds(7, "x", 2) == [758473, 479396]  # fixed forever: CI logs name these seeds


def test_the_plan_is_file_then_seed_then_variant() -> None:
    scenarios = {str(CLEAN): load_scenario(CLEAN), str(BUGGY): load_scenario(BUGGY)}
    plan = plan_runs(scenarios, seeds=2)
    assert [(Path(run.source).name, run.variant, run.seed) for run in plan] == [
        (CLEAN.name, None, 1), (CLEAN.name, None, 2),
        (BUGGY.name, "buggy", 1), (BUGGY.name, "fixed", 1),
        (BUGGY.name, "buggy", 2), (BUGGY.name, "fixed", 2)]
    assert [run.index for run in plan] == list(range(6))
    derived = plan_runs({str(BUGGY): scenarios[str(BUGGY)]}, seeds=2, base_seed=9, variant="fixed")
    assert [run.seed for run in derived] == derive_seeds(9, "register-long-crashes", 2)
    assert seeds_for(scenarios[str(CLEAN)], seed=5, seeds=None) == [5]


# -- graylink sweep --------------------------------------------------------------------------------
def sweep_json(*args: str) -> tuple[int, list[dict[str, object]], str]:
    completed = graylink("sweep", *args, "--json")
    return completed.returncode, json.loads(completed.stdout), completed.stderr


def test_sweep_results_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    runs = {}
    for workers in ("1", "2"):
        code, summaries, stderr = sweep_json(str(CLEAN), str(BUGGY), "--seeds", "4", "--workers",
                                             workers, "--report-dir", "")
        assert code == 1, stderr  # the buggy variant misses its bug on seeds 2 to 4
        runs[workers] = [(s["scenario"], s["seed"], s["passed"], s["trace_digest"], s["events"])
                         for s in summaries]
    assert runs["1"] == runs["2"]
    assert [(name, seed) for name, seed, *_ in runs["1"][:5]] == [
        ("register-crash-and-partition", seed) for seed in (1, 2, 3, 4)] + [
        ("register-long-crashes[buggy]", 1)]
    assert [(name, seed) for name, seed, passed, *_ in runs["1"] if not passed] == [
        ("register-long-crashes[buggy]", seed) for seed in (2, 3, 4)]


def test_sweep_writes_junit_the_failing_seeds_and_their_scenarios(tmp_path: Path) -> None:
    junit, reports = tmp_path / "sweep.xml", tmp_path / "reports"
    completed = graylink("sweep", str(BUGGY), "--seeds", "4", "--base-seed", "0", "--workers", "2",
                         "--junit", str(junit), "--report-dir", str(reports))
    assert completed.returncode in (0, 1), completed.stderr
    seeds = derive_seeds(0, "register-long-crashes", 4)
    assert ("graylink sweep: 1 file, 8 runs (4 seeds per file, derived from base seed 0), 2 workers"
            in completed.stdout)
    cases = ElementTree.parse(junit).getroot().findall(".//testcase")
    assert [case.get("name") for case in cases] == [
        f"register-long-crashes[{variant}] seed {seed}" for seed in seeds
        for variant in ("buggy", "fixed")]
    failing = [case for case in cases if case.find("failure") is not None]
    listed = (reports / "failing-seeds.txt").read_text()
    assert f"{len(cases) - len(failing)} of 8 runs passed" in completed.stdout
    assert "runs/s on 2 workers" in completed.stdout
    for case in failing:  # each failing run: reproduction in JUnit, in the summary, its reports
        message = case.find("failure").get("message", "")  # type: ignore[union-attr]
        found = re.match(r"graylink run (\S+) --seed \d+ --variant buggy", message)
        assert found is not None and found.group(1) == str(BUGGY), message
        reproduce = found.group(0)
        assert f"  {reproduce}" in completed.stdout and reproduce in listed
        seed = reproduce.split("--seed ")[1].split()[0]
        assert (reports / f"register-long-crashes-buggy-seed{seed}.json").exists()
    assert len(list(reports.glob("*.json"))) == len(failing)  # passing runs write no reports
    if failing:
        assert (reports / "scenarios" / BUGGY.name).read_text() == BUGGY.read_text()


def test_sweep_exit_codes_are_the_most_severe(tmp_path: Path) -> None:
    crashing = planted(tmp_path, "crasher", "CrashingSystem")
    broken = planted(tmp_path, "broken", "BrokenMetricsSystem")
    assert graylink("sweep", str(CLEAN), "--seeds", "2", "--report-dir", "").returncode == 0
    assert graylink("sweep", str(CLEAN), str(crashing), "--seeds", "2", "--workers", "2",
                    "--report-dir", "").returncode == 1
    completed = graylink("sweep", str(crashing), str(broken), "--seeds", "2", "--workers", "2",
                         "--report-dir", "")
    assert completed.returncode == 3, completed.stdout + completed.stderr


def test_ctrl_c_stops_the_sweep_and_still_writes_what_it_has(tmp_path: Path) -> None:
    junit = tmp_path / "partial.xml"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "sweep", str(CLEAN), "--seeds", "2000", "--workers", "2",
         "--batch", "1", "--junit", str(junit), "--report-dir", str(tmp_path / "reports")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=subprocess_env())
    assert process.stderr is not None
    for line in process.stderr:  # wait until some runs have finished
        if line.startswith("[5/2000]"):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "interrupted: " in out and "of 2000 planned runs finished" in out
    cases = ElementTree.parse(junit).getroot().findall(".//testcase")
    assert 5 <= len(cases) < 2000
    assert [case.get("name") for case in cases] == [  # in plan order, whatever finished first
        f"register-crash-and-partition seed {seed}" for seed in sorted(
            int(case.get("name", "").rsplit(" ", 1)[1]) for case in cases)]
    assert (tmp_path / "reports" / "failing-seeds.txt").exists()


# -- graylink run FILE… ----------------------------------------------------------------------------
def test_run_many_files_shows_progress_tables_and_a_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crashing = planted(tmp_path, "crasher", "CrashingSystem")
    junit = tmp_path / "all.xml"
    code = cli.main(["run", str(CLEAN), str(BUGGY), str(crashing), "--seed", "1", "--report-dir",
                     str(tmp_path), "--junit", str(junit)])
    captured = capsys.readouterr()
    assert code == 1
    assert [line.split(":")[0] for line in captured.err.splitlines()] == [
        "[1/4] register-crash-and-partition seed 1", "[2/4] register-long-crashes[buggy] seed 1",
        "[3/4] register-long-crashes[fixed] seed 1", "[4/4] crasher seed 1"]
    assert "FAILED (failure) (1 failed so far" in captured.err.splitlines()[3]
    assert "variants of register-long-crashes (seed 1):" in captured.out
    summary = captured.out[captured.out.index("3 of 4 runs passed"):].splitlines()
    assert summary[1:] == [f"  graylink run {crashing} --seed 1",
                           ("      [exception] at t=1.000000s on n1: RuntimeError: replica state "
                            "corrupted")]
    assert [case.get("name") for case in ElementTree.parse(junit).getroot().iter("testcase")] == [
        "register-crash-and-partition seed 1", "register-long-crashes[buggy] seed 1",
        "register-long-crashes[fixed] seed 1", "crasher seed 1"]
    assert (tmp_path / "register-crash-and-partition-seed1.json").exists()
    assert (tmp_path / "crasher-seed1.txt").exists()


def test_run_many_files_exits_with_the_most_severe_code(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    crashing = planted(tmp_path, "crasher", "CrashingSystem")
    broken = planted(tmp_path, "broken", "BrokenMetricsSystem")
    assert cli.main(["run", str(CLEAN), str(broken), str(crashing), "--report-dir", ""]) == 3
    capsys.readouterr()
    assert cli.main(["run", str(CLEAN), str(CLEAN), "--report-dir", "", "--json"]) == 0
    summaries = json.loads(capsys.readouterr().out)
    assert len(summaries) == 1  # a file named twice runs once


def test_trace_is_for_one_run_and_bad_files_stop_everything(tmp_path: Path) -> None:
    completed = graylink("run", str(CLEAN), str(BUGGY), "--trace", str(tmp_path / "t.jsonl"))
    assert completed.returncode == 2
    assert "--trace: --trace writes the events of one run" in completed.stderr
    assert graylink("run", str(CLEAN), "--seeds", "2", "--trace", "t.jsonl").returncode == 2
    bad, worse = tmp_path / "bad.yaml", tmp_path / "worse.yaml"
    bad.write_text("name: x\n")
    worse.write_text(CLEAN.read_text().replace("duration_s: 30", "duration_s: -1"))
    completed = graylink("run", str(CLEAN), str(bad), str(worse), "--report-dir", "")
    assert completed.returncode == 2
    assert "2 scenario files are invalid, nothing was run" in completed.stderr
    assert "bad.yaml" in completed.stderr and "worse.yaml" in completed.stderr
    assert "[1/" not in completed.stderr
    assert graylink("sweep", str(bad)).returncode == 2
    assert graylink("sweep", str(CLEAN), "--workers", "0").returncode == 2


# -- the progress bar ------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_on_a_terminal_is_one_updating_line_with_failures_above_it() -> None:
    from harness import run_scenario

    passing = run_scenario(load_scenario(CLEAN), 1)
    failing = run_scenario(load_scenario(BUGGY).variant("buggy"), 3)
    assert not failing.passed
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(4, stream, tty=True, clock=clock)
    for result in (passing, failing, passing):
        clock.now += 10
        progress.update(result)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r") >= 3 and text.endswith("\n") and text.count("\n") == 2
    assert "3/4, 1 failed so far, 0.10 runs/s, ETA 0:10" in text
    assert f"FAILED register-long-crashes[buggy] seed 3 (failure): {failing.reproduce}\n" in text
    plain = io.StringIO()
    progress = Progress(2, plain, tty=False, clock=clock)
    progress.update(passing)
    assert plain.getvalue().startswith("[1/2] register-crash-and-partition seed 1: passed (0 failed")
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "1:05"


def test_progress_is_a_real_tty_line_under_a_pseudo_terminal(tmp_path: Path) -> None:
    """`graylink run FILE… --seeds K` on a terminal draws one line updated with carriage returns."""
    import os
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "harness", "run", str(CLEAN), "--seeds", "3",
                                "--report-dir", ""], stdout=subprocess.PIPE, stderr=follower,
                               cwd=ROOT, env=subprocess_env(COLUMNS="120"))
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    out, _ = process.communicate(timeout=60)
    os.close(leader)
    drawn = b"".join(chunks).decode()
    assert process.returncode == 0
    assert drawn.count("\r") >= 3 and "] 3/3, 0 failed so far" in drawn and "[1/3]" not in drawn
    assert b"3 of 3 runs passed" in out


def test_rate_is_reported(tmp_path: Path) -> None:
    started = time.monotonic()
    completed = graylink("sweep", str(CLEAN), "--seeds", "3", "--workers", "1", "--report-dir", "")
    assert completed.returncode == 0
    line = next(line for line in completed.stdout.splitlines() if "runs/s" in line)
    assert line.startswith("3 runs in ") and line.endswith("runs/s on 1 worker")
    assert float(line.split(" runs in ")[1].split(" s")[0]) <= time.monotonic() - started
