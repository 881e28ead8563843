"""The tutorial register: its log survives torn tails, it passes under faults, and its bug is found."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness import load_scenario, run_scenario
from systems.register.replica import decode_log, encode_record

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def test_log_round_trip() -> None:
    data = encode_record(1, 10) + encode_record(2, 20)
    assert decode_log(data) == ([(1, 10), (2, 20)], len(data))


@pytest.mark.parametrize("cut", [1, 5, 9, 12])
def test_a_torn_tail_is_cut_off(cut: int) -> None:
    whole = encode_record(1, 10)
    data = whole + encode_record(2, 20)[:cut]
    assert decode_log(data) == ([(1, 10)], len(whole))


def test_a_corrupt_record_ends_the_valid_prefix() -> None:
    first, second = encode_record(1, 10), bytearray(encode_record(2, 20))
    second[-2] ^= 0x01
    assert decode_log(first + bytes(second)) == ([(1, 10)], len(first))


@pytest.mark.parametrize("seed", range(6))
def test_the_correct_register_survives_random_faults(seed: int) -> None:
    result = run_scenario(load_scenario(SCENARIOS / "register-crash-and-partition.yaml"), seed)
    assert result.passed, result.render_text()
    assert result.metrics["writes_ok"] > 100 and result.metrics["stale_reads"] == 0


def test_the_planted_bug_is_found_and_fixing_it_passes() -> None:
    scenario = load_scenario(SCENARIOS / "register-ack-before-fsync.yaml")
    buggy = run_scenario(scenario.variant("buggy"))
    assert buggy.passed, buggy.render_text()  # it expects the failure it finds
    assert {failure.kind for failure in buggy.expected_failures} == {"lost-acknowledged-write"}
    assert buggy.metrics["stale_reads"] >= 1
    fixed = run_scenario(scenario.variant("fixed"))
    assert fixed.passed and fixed.metrics["stale_reads"] == 0 and not fixed.expected_failures


def test_the_planted_bug_fails_a_run_that_does_not_expect_it() -> None:
    buggy = load_scenario(SCENARIOS / "register-ack-before-fsync.yaml").variant("buggy")
    unexpected = dataclasses.replace(buggy, expectations=tuple(
        expectation for expectation in buggy.expectations if not expectation.is_check))
    result = run_scenario(unexpected)
    assert not result.passed
    assert {failure.kind for failure in result.failures} == {"lost-acknowledged-write"}


def test_a_register_that_never_recovers_fails_liveness() -> None:
    scenario = load_scenario(SCENARIOS / "register-crash-and-partition.yaml")
    # The primary's disk is full for the rest of the run: no write can ever be acknowledged again,
    # even after the heal phase... unless the heal phase clears it, which it does. So instead keep
    # the primary partitioned away from both backups by giving the heal phase no time at all.
    no_heal = dataclasses.replace(scenario, heal_s=0.0)
    result = run_scenario(no_heal, 1)
    assert not result.passed
    assert any(failure.kind == "liveness" for failure in result.failures)
