"""The command line: summaries, reports, exit codes, and the three kinds of error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, subprocess_env
from harness import cli

CLEAN = ROOT / "scenarios" / "register-crash-and-partition.yaml"
BUGGY = ROOT / "scenarios" / "register-ack-before-fsync.yaml"

MINIMAL = """name: {name}
duration_s: 3
heal_s: 1
topology: {{az-a: [n1], az-b: [n2]}}
system: {{use: "planted_systems:{system}"}}
"""


def graylink(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=ROOT, env=subprocess_env(), check=False)


def test_run_passes_and_writes_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", str(CLEAN), "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == f"graylink run {CLEAN} --seed 1"
    assert "PASSED" in out
    saved = json.loads((tmp_path / "register-crash-and-partition-seed1.json").read_text())
    assert saved["passed"] is True and saved["seed"] == 1 and saved["faults"]
    assert (tmp_path / "register-crash-and-partition-seed1.txt").read_text().startswith("graylink run")


def test_run_json_summary_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", str(CLEAN), "--seed", "2", "--json", "--report-dir", ""])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    for key in ("scenario", "seed", "passed", "metrics", "trace_digest", "sim_time_s",
                "wall_time_s", "events"):
        assert key in summary
    assert summary["seed"] == 2 and summary["sim_time_s"] == 40.0


def unexpected_bug(tmp_path: Path) -> Path:
    """The planted-bug file, its buggy variant no longer expecting the failure it finds."""
    scenario = tmp_path / "buggy.yaml"
    scenario.write_text(BUGGY.read_text().replace("check lost-acknowledged-write fails, ", ""))
    return scenario


def test_a_failing_system_exits_1_and_opens_with_the_reproduction(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = unexpected_bug(tmp_path)
    code = cli.main(["run", str(scenario), "--variant", "buggy", "--report-dir", ""])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0] == f"graylink run {scenario} --seed 1 --variant buggy"
    assert "lost-acknowledged-write" in out and "acknowledged at t=" in out


def test_variants_run_side_by_side_and_report_separately(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.jsonl"
    code = cli.main(["run", str(BUGGY), "--report-dir", str(tmp_path), "--trace", str(trace)])
    out = capsys.readouterr().out
    assert code == 0, out  # the buggy variant finds the bug it expects; the fixed one loses nothing
    assert (tmp_path / "trace-buggy.jsonl").exists() and (tmp_path / "trace-fixed.jsonl").exists()
    assert out.splitlines()[0] == f"graylink run {BUGGY} --seed 1 --variant buggy"
    assert f"graylink run {BUGGY} --seed 1 --variant fixed" in out
    assert "expected failures" in out and "acknowledged at t=" in out
    table = out[out.index("variants of register-ack-before-fsync (seed 1):"):].splitlines()
    assert table[1].split() == ["buggy", "fixed"]
    assert table[2].split() == ["verdict", "PASSED", "PASSED"]
    assert table[4].split()[:3] == ["check", "lost-acknowledged-write", "fail"]
    assert table[5].split()[0] == "stale_reads" and table[5].split()[2] == "0"
    for variant in ("buggy", "fixed"):
        saved = json.loads((tmp_path / f"register-ack-before-fsync-{variant}-seed1.json").read_text())
        assert saved["variant"] == variant and saved["passed"] is True
        assert saved["reproduce"].endswith(f"--seed 1 --variant {variant}")
        assert (tmp_path / f"register-ack-before-fsync-{variant}-seed1.txt").exists()


def test_one_failing_variant_fails_the_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", str(unexpected_bug(tmp_path)), "--report-dir", "", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1
    assert summary["passed"] is False and summary["scenario"] == "register-ack-before-fsync"
    assert {name: run["passed"] for name, run in summary["variants"].items()} == {
        "buggy": False, "fixed": True}


def test_a_failed_expectation_exits_1_and_shows_the_actual_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "greedy.yaml"
    scenario.write_text(CLEAN.read_text() + "  - writes_ok >= 100000\n")
    code = cli.main(["run", str(scenario), "--report-dir", ""])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL    writes_ok >= 100000: writes_ok = " in out
    assert "[expectation] at t=40.000000s: writes_ok >= 100000 does not hold" in out


def test_an_unknown_variant_is_bad_input() -> None:
    completed = graylink("run", str(BUGGY), "--variant", "repaired")
    assert completed.returncode == 2
    assert "no variant 'repaired'; its variants: buggy, fixed" in completed.stderr
    assert graylink("run", str(CLEAN), "--variant", "x").returncode == 2


def test_check_determinism_of_a_variant() -> None:
    completed = graylink("check-determinism", str(BUGGY), "--variant", "fixed")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"graylink check-determinism {BUGGY} --seed 1 --variant fixed" in completed.stdout
    assert "deterministic" in completed.stdout


def test_an_exception_in_node_code_fails_the_run_with_node_and_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "crash.yaml"
    scenario.write_text(MINIMAL.format(name="crasher", system="CrashingSystem"))
    code = cli.main(["run", str(scenario), "--seed", "4", "--report-dir", ""])
    out = capsys.readouterr().out
    assert code == 1
    assert "[exception] at t=1.000000s on n1: RuntimeError: replica state corrupted" in out
    assert "last events before the end:" in out


def test_bad_input_exits_2_naming_file_line_and_field(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(CLEAN.read_text().replace("timeout_ms: 500", "timeout_ms: -5"))
    completed = graylink("run", str(scenario))
    assert completed.returncode == 2
    line = next(i for i, text in enumerate(scenario.read_text().splitlines(), 1)
                if "timeout_ms: -5" in text)
    assert f"bad.yaml:{line}:" in completed.stderr
    assert "timeout_ms" in completed.stderr and "-5" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("args", [["run", "missing.yaml"], ["run"], ["run", "x.yaml", "--seed", "-1"],
                                  ["frobnicate"], []])
def test_usage_errors_exit_2(args: list[str]) -> None:
    completed = graylink(*args)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr


def test_internal_errors_exit_3_and_still_report(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "metrics.yaml"
    scenario.write_text(MINIMAL.format(name="broken-metrics", system="BrokenMetricsSystem"))
    code = cli.main(["run", str(scenario), "--report-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 3
    assert "INTERNAL ERROR" in out
    assert json.loads((tmp_path / "broken-metrics-seed0.json").read_text())["reason"] == "internal-error"


def test_an_interrupted_run_still_writes_its_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from harness.simulation import Simulation

    def interrupt(self: Simulation) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Simulation, "_heal", interrupt)
    code = cli.main(["run", str(CLEAN), "--report-dir", str(tmp_path)])
    assert code == 130
    saved = json.loads((tmp_path / "register-crash-and-partition-seed1.json").read_text())
    assert saved["reason"] == "interrupted" and saved["events"] > 0
    assert "interrupted" in capsys.readouterr().out


def test_validate_reports_each_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    completed = graylink("validate", str(CLEAN), str(bad), str(BUGGY))
    assert completed.returncode == 2
    assert "ok: " in completed.stdout and "bad.yaml" in completed.stderr
    assert "4 expectations)" in completed.stdout and "variants: buggy, fixed" in completed.stdout


@pytest.mark.parametrize(("old", "new", "words"), [
    ("  - writes_ok >= 100", "  - writes_ok => 100", "did you mean '>='?"),
    ("  - writes_ok >= 100", "  - writes_ok >= lots", "'lots' is not a number"),
    ("    expect: [stale_reads == 0]", "    expect: [check stale_reads]", "missing passes or fails"),
    ("  fixed:", "  buggy:", "duplicate variant 'buggy'"),
    ("  fixed:", "  Fixed:", "not a usable variant name"),
    ("{ack_before_fsync: false}", "{ack_before_fsync: off}", "ambiguous"),
    ("{ack_before_fsync: false}", "{ack_before_fsink: false}", "did you mean 'ack_before_fsync'?"),
    ("{ack_before_fsync: false}", "{write_interval_ms: -1}", "allowed: >"),
])
def test_validate_finds_mistakes_in_expectations_and_variants(
        tmp_path: Path, old: str, new: str, words: str) -> None:
    text = BUGGY.read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    line = max(i for i, row in enumerate(bad.read_text().splitlines(), 1) if new in row)
    completed = graylink("validate", str(bad))
    assert completed.returncode == 2
    assert f"bad.yaml:{line}:" in completed.stderr and words in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr


def test_console_script_and_module_agree() -> None:
    completed = graylink("run", str(CLEAN), "--json", "--report-dir", "")
    assert completed.returncode == 0
    assert json.loads(completed.stdout)["passed"] is True


def test_junit_xml_has_a_case_per_variant_with_the_reproduction(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ElementTree

    junit = tmp_path / "junit.xml"
    scenario = tmp_path / "crash.yaml"
    scenario.write_text(MINIMAL.format(name="crasher", system="CrashingSystem"))
    assert cli.main(["run", str(scenario), "--seed", "4", "--report-dir", "", "--junit",
                     str(junit)]) == 1
    cases = ElementTree.parse(junit).getroot().findall(".//testcase")
    assert [case.get("name") for case in cases] == ["crasher seed 4"]
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith(f"graylink run {scenario} --seed 4")
    assert "replica state corrupted" in failure.get("message", "")

    variants = tmp_path / "variants.xml"
    assert cli.main(["run", str(ROOT / "scenarios" / "register-ack-before-fsync.yaml"),
                     "--report-dir", "", "--junit", str(variants)]) == 0
    names = [case.get("name") for case in ElementTree.parse(variants).getroot().iter("testcase")]
    assert names == ["register-ack-before-fsync[buggy] seed 1",
                     "register-ack-before-fsync[fixed] seed 1"]


def test_replay_confirms_the_recorded_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(CLEAN), "--seed", "3", "--report-dir", str(tmp_path)]) == 0
    recorded = tmp_path / "register-crash-and-partition-seed3.json"
    capsys.readouterr()
    assert cli.main(["replay", str(recorded)]) == 0
    assert "the same run, event for event" in capsys.readouterr().out
    tampered = json.loads(recorded.read_text())
    tampered["trace_digest"] = "0" * 32
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    assert cli.main(["replay", str(tmp_path / "tampered.json")]) == 1
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert cli.main(["replay", str(tmp_path / "junk.json")]) == 2
    assert cli.main(["replay", str(tmp_path / "missing.json")]) == 2


def test_seeds_runs_each_seed_and_summarises_the_failures(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "seeds.xml"
    rare = ROOT / "tests" / "data" / "register-long-crashes.yaml"  # misses its bug on seeds 2, 3
    code = cli.main(["run", str(rare), "--variant", "buggy", "--seeds", "3", "--report-dir",
                     str(tmp_path), "--junit", str(junit)])
    captured = capsys.readouterr()
    assert captured.err.count("register-long-crashes[buggy] seed") == 3
    assert "[3/3]" in captured.err
    assert (tmp_path / "register-long-crashes-buggy-seed3.json").exists()
    assert junit.read_text().count("<testcase") == 3
    passed = [line for line in captured.out.splitlines() if "runs passed" in line]
    assert passed and passed[0].endswith("1 of 3 runs passed")
    assert code == 1
    for line in captured.out.splitlines()[1:]:
        if line.startswith("  graylink run"):
            assert "--variant buggy" in line  # each failing run with its reproduction
    assert graylink("run", str(BUGGY), "--seed", "1", "--seeds", "2").returncode == 2
    assert graylink("run", str(BUGGY), "--seeds", "0").returncode == 2
