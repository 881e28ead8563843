"""The checkers beyond linearizability, each shown a clean input it passes and a planted bug it catches:
CheckResult, linearizability as a check, durability, convergence, liveness, check_availability, leadership.
Histories are built by hand (no simulator)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from harness.checkers import (KV, REGISTER, CheckResult, Lease, UnavailableInterval, Window,
                              check_availability, check_convergence, check_durability, check_leases,
                              check_liveness, election_summary, is_eventually_consistent_read,
                              latency_percentiles_ms, linearizability_check, quiet_gaps,
                              success_windows, time_to_recover, unavailability_intervals)
from harness.errors import Failure
from harness.history import FAIL, INFO, OK, History

S = 1_000_000_000  # nanoseconds in a second


class HistoryBuilder:
    """Operations given by their span, recorded as a History in time order (completions first at one
    instant, so a process can start its next operation when the last one ends)."""

    def __init__(self) -> None:
        self._events: list[tuple[int, int, int, tuple[Any, ...]]] = []

    def add(self, process: int, f: str, key: Any, argument: Any, invoked_s: float,
            completed_s: float | None, outcome: str | None = OK, result: Any = None,
            error: str | None = None) -> HistoryBuilder:
        sequence = len(self._events)
        self._events.append((round(invoked_s * S), 1, sequence, ("invoke", process, f, key, argument)))
        if outcome is not None:
            assert completed_s is not None
            self._events.append((round(completed_s * S), 0, sequence, (outcome, result, error)))
        return self

    def history(self) -> History:
        history, open_entries = History(), {}
        for time_ns, _, sequence, event in sorted(self._events):
            if event[0] == "invoke":
                open_entries[sequence] = history.invoke(event[1], event[2], event[3], event[4], time_ns)
            else:
                history.complete(open_entries.pop(sequence), event[0], event[1], time_ns, error=event[2])
        return history


# -- CheckResult ---------------------------------------------------------------------------------------
def test_check_result_validates_and_converts() -> None:
    with pytest.raises(ValueError, match="verdict"):
        CheckResult("x", "maybe", "s")
    with pytest.raises(ValueError, match="one line"):
        CheckResult("x", "pass", "two\nlines")
    failed = CheckResult("durability", "fail", "lost a write", ["line 1"], {"b": 1, "a": 2}, 5 * S)
    assert failed.evidence == ("line 1",) and list(failed.metrics) == ["a", "b"]
    assert not failed.passed
    assert failed.failure() == Failure("durability", "lost a write", 5 * S, evidence=("line 1",))
    assert json.loads(json.dumps(failed.to_dict()))["metrics"] == {"a": 2.0, "b": 1.0}
    assert "[durability] FAIL: lost a write" in failed.describe()
    assert CheckResult("x", "pass", "fine").failure() is None
    assert CheckResult("x", "unknown", "undecided").failure() is None
    assert CheckResult("x", "fail", "no time").failure(default_time_ns=7).time_ns == 7


# -- linearizability as a check ------------------------------------------------------------------------
def _stale_read(consistent: bool) -> History:
    return (HistoryBuilder()
            .add(1, "put_item", "k", {"item": {"v": 1}}, 0, 1)
            .add(1, "put_item", "k", {"item": {"v": 2}}, 2, 3)
            .add(2, "get_item", "k", {"consistent": consistent}, 4, 5, result={"v": 1})
            .history())


def test_linearizability_check_maps_verdicts() -> None:
    clean = (HistoryBuilder().add(1, "write", None, 1, 0, 1).add(2, "read", None, None, 2, 3, result=1)
             .history())
    assert linearizability_check(clean, REGISTER).verdict == "pass"

    stale = linearizability_check(_stale_read(consistent=True), KV)
    assert stale.verdict == "fail" and stale.time_ns == 5 * S
    assert stale.summary.startswith("NOT-LINEARIZABLE")
    assert any("get_item" in line for line in stale.evidence)
    assert stale.metrics["keys.not_linearizable"] == 1


def test_linearizability_check_excludes_eventually_consistent_reads() -> None:
    history = _stale_read(consistent=False)
    assert linearizability_check(history, KV).verdict == "fail"
    assert linearizability_check(history, KV, exclude=is_eventually_consistent_read).passed


def test_linearizability_check_out_of_budget_is_unknown_never_pass() -> None:
    builder = HistoryBuilder()
    for process in range(6):
        builder.add(process, "write", None, process, 0, 10)
    builder.add(9, "read", None, None, 11, 12, result=5)
    result = linearizability_check(builder.history(), REGISTER, max_steps=2)
    assert result.verdict == "unknown" and not result.passed and result.failure() is None


# -- durability ----------------------------------------------------------------------------------------
def _holders(key: Any) -> dict[str, str]:
    return {"n2": "wal index 7, term 3", "n1": "wal index 7, term 3"}


def _puts(*values: Any) -> HistoryBuilder:
    """Sequential acknowledged puts of ``values`` on key "k": the i-th in [2i, 2i+1] s."""
    builder = HistoryBuilder()
    for index, value in enumerate(values):
        builder.add(1, "put", "k", value, 2 * index, 2 * index + 1)
    return builder


def test_durability_passes_when_the_latest_acknowledged_write_survives() -> None:
    result = check_durability(_puts("a", "b").history(), {"k": "b"}, holders=_holders)
    assert result.passed and result.metrics["lost_acknowledged_writes"] == 0


def test_durability_catches_a_lost_acknowledged_write() -> None:
    result = check_durability(_puts("a", "b").history(), {"k": "a"}, holders=_holders)
    assert result.verdict == "fail"
    assert result.metrics["lost_acknowledged_writes"] == 1
    text = "\n".join(result.evidence)
    assert "key 'k': the final value 'a'" in text
    assert "latest acknowledged write, missing: put 'b' by process 1, acknowledged at 3.000000 s" in text
    assert "replicas that ever held it: n1 (wal index 7, term 3); n2 (wal index 7, term 3)" in text
    assert result.time_ns == 3 * S
    failure = result.failure()
    assert failure is not None and failure.kind == "durability" and failure.time_ns == 3 * S


def test_durability_names_every_lost_write_latest_first() -> None:
    result = check_durability(_puts("a", "b", "c", "d").history(), {"k": "b"})
    text = "\n".join(result.evidence)
    assert "missing: put 'd'" in text and "2 acknowledged writes are missing" in text
    assert text.index("put 'd'") < text.index("put 'c'")
    assert "put 'b' by" not in text.split("missing (latest first):")[1]


def test_durability_does_not_flag_an_overwrite_by_a_concurrent_write() -> None:
    history = (HistoryBuilder().add(1, "put", "k", "a", 0, 10).add(2, "put", "k", "b", 5, 20)
               .history())
    assert check_durability(history, {"k": "a"}).passed  # b took effect first, then a
    assert check_durability(history, {"k": "b"}).passed


def test_durability_accepts_an_unknown_write_either_way() -> None:
    history = _puts("a").add(2, "put", "k", "b", 2, 3, outcome=INFO, error="timeout").history()
    assert check_durability(history, {"k": "a"}).passed
    assert check_durability(history, {"k": "b"}).passed
    assert check_durability(history, {"k": None}).verdict == "fail"  # a was acknowledged


def test_durability_catches_a_value_never_written_and_a_resurrected_delete() -> None:
    corrupt = check_durability(_puts("a").history(), {"k": "zzz"})
    assert corrupt.verdict == "fail"
    assert any("never written" in line for line in corrupt.evidence)
    deleted = _puts("a").add(1, "delete", "k", None, 2, 3).history()
    resurrected = check_durability(deleted, {"k": "a"})
    assert resurrected.verdict == "fail"
    assert any("missing: delete None" in line for line in resurrected.evidence)


def test_durability_on_items_catches_a_lost_update() -> None:
    history = (HistoryBuilder()
               .add(1, "put_item", "user#1", {"item": {"n": 1}}, 0, 1)
               .add(1, "update_item", "user#1", {"set": {"n": 2}}, 2, 3)
               .add(2, "get_item", "user#1", {"consistent": True}, 4, 5, result={"n": 2})
               .add(4, "put_item", "user#2", {"item": {"n": 9}}, 0, 1)
               .add(3, "delete_item", "user#2", {"condition": {"attribute": "n", "equals": 8}}, 2, 3,
                    outcome=FAIL, error="condition_failed")
               .history())
    result = check_durability(history, {"user#1": {"n": 1}, "user#2": {"n": 9}})
    assert result.verdict == "fail" and result.metrics["lost_acknowledged_writes"] == 1
    assert "key 'user#1'" in result.evidence[0]
    assert result.evidence[1] == ("latest acknowledged write, missing: update_item {'set': {'n': 2}} "
                                  "by process 1, acknowledged at 3.000000 s (invoked at 2.000000 s)")
    # and a read had seen n=2: the conflict shows it against the final read
    assert "reads contradict the final value too" in result.evidence[2]
    assert "get_item {'consistent': True} -> ok {'n': 2}" in result.evidence[3]
    assert check_durability(history, {"user#1": {"n": 2}, "user#2": {"n": 9}}).passed


def test_durability_catches_an_observed_unknown_write_that_vanished() -> None:
    history = (_puts("a").add(2, "put", "k", "b", 2, 3, outcome=INFO, error="timeout")
               .add(3, "get", "k", None, 4, 5, result="b").history())
    result = check_durability(history, {"k": "a"})
    assert result.verdict == "fail" and result.time_ns == 1 * S
    assert "the writes alone allow this value, but a read saw a value now gone" in result.evidence[2]
    assert check_durability(history, {"k": "b"}).passed


def test_durability_judges_a_key_with_a_stale_read_on_its_writes() -> None:
    history = _puts("a", "b").add(2, "get", "k", None, 5, 6, result="a").history()
    kept = check_durability(history, {"k": "b"})
    assert kept.passed and kept.metrics["keys_judged_on_writes_only"] == 1
    lost = check_durability(history, {"k": "a"})
    assert lost.verdict == "fail"
    assert any("judged on the key's writes alone" in line for line in lost.evidence)


def test_durability_is_unknown_when_the_writes_contradict_each_other_or_the_budget_runs_out() -> None:
    create = {"item": {"n": 1}, "condition": {"item_exists": False}}
    contradiction = (HistoryBuilder().add(1, "put_item", "k", create, 0, 1)
                     .add(1, "put_item", "k", create, 2, 3).history())
    assert check_durability(contradiction, {"k": {"n": 1}}).verdict == "unknown"
    builder = HistoryBuilder()
    for process in range(8):
        builder.add(process, "put", "k", process, 0, 10)
    result = check_durability(builder.history(), {"k": 3}, max_steps=2)
    assert result.verdict == "unknown" and result.metrics["keys_unknown"] == 1


def test_durability_checks_only_the_keys_read_back() -> None:
    history = _puts("a").add(1, "put", "other", "x", 2, 3).history()
    assert check_durability(history, {"k": "a"}).metrics["keys_checked"] == 1
    assert check_durability(history, {"k": "a", "never": None}).passed
    assert check_durability(history, {"never": "ghost"}).verdict == "fail"


# -- convergence ---------------------------------------------------------------------------------------
def test_convergence_passes_when_replicas_agree() -> None:
    result = check_convergence({1: {"n1": "abc", "n2": "abc"}, 2: {"n3": "d"}})
    assert result.passed and result.metrics == {"groups": 2, "groups_diverged": 0, "replicas": 3}


def test_convergence_names_the_diverged_group_and_who_holds_what() -> None:
    digests = {1: {"n1": "abc", "n2": "abc"},
               2: {"n1": "ffff0000ffff0000", "n2": "ffff0000ffff0000", "n3": "0123"}}
    result = check_convergence(digests)
    assert result.verdict == "fail" and result.metrics["groups_diverged"] == 1
    assert result.evidence == (("partition 2: 2 digests among 3 replicas: 'ffff0000ffff…' on n1, n2; "
                               "'0123' on n3"),)
    assert "partition 2" in result.summary


def test_time_to_recover() -> None:
    history = (HistoryBuilder().add(1, "put", "k", "a", 0, 1)
               .add(1, "get", "k", None, 10, 12, result="a")
               .add(2, "put", "k", "b", 10, 15)
               .add(3, "put", "k", "c", 11, 14, outcome=INFO)
               .history())
    assert time_to_recover(history, 10 * S) == 2.0
    assert time_to_recover(history, 10 * S, writes_only=True) == 5.0
    assert time_to_recover(history, 20 * S) is None


# -- liveness ------------------------------------------------------------------------------------------
def _stalled_history() -> History:
    """ok completions at 11, 12, then nothing ok until 30 (timeouts and refusals in between)."""
    builder = (HistoryBuilder().add(1, "put", "k", 1, 10, 11).add(1, "get", "k", None, 11, 12, result=1))
    builder.add(2, "put", "k", 2, 13, 15, outcome=INFO, error="timeout")
    builder.add(3, "put", "k", 3, 15, 17, outcome=INFO, error="timeout")
    builder.add(1, "get", "k", None, 16, 17, outcome=FAIL, error="not-leader")
    builder.add(4, "get", "k", None, 20, None, outcome=None)
    builder.add(1, "get", "k", None, 28, 30, result=1)
    return builder.history()


def test_liveness_passes_with_steady_progress() -> None:
    result = check_liveness(_stalled_history(), healthy_from_ns=10 * S, end_ns=30 * S,
                            max_quiet_s=18.0)
    assert result.passed
    # The quiet stretch starts with the first operation asked after the last success (13 s).
    assert result.metrics["longest_quiet_s"] == 17.0 and result.metrics["time_to_recover_s"] == 1.0


def test_liveness_catches_a_quiet_gap_with_its_reason() -> None:
    result = check_liveness(_stalled_history(), healthy_from_ns=10 * S, end_ns=30 * S,
                            max_quiet_s=5.0)
    assert result.verdict == "fail" and result.metrics["quiet_gaps"] == 1
    assert result.time_ns == 18 * S  # 13 s (first unanswered ask) + 5 s: past the bound
    assert result.evidence == (
        ("quiet from 13.000000 s to 30.000000 s (17.000 s > 5.0 s): 5 operations invoked in it: "
        "1 fail (not-leader), 2 info (timeout), 1 ok at its end or later, 1 open"),)


def test_liveness_fails_a_service_that_never_recovers() -> None:
    result = check_liveness(_stalled_history(), healthy_from_ns=13 * S, end_ns=25 * S,
                            max_quiet_s=5.0)
    assert result.verdict == "fail" and "time_to_recover_s" in result.metrics
    stuck = _stalled_history()
    stuck.invoke(9, "get", "k", None, 32 * S)  # asked after the last success, never answered
    never = check_liveness(stuck, healthy_from_ns=31 * S, end_ns=40 * S, max_quiet_s=5.0)
    assert never.verdict == "fail" and "time_to_recover_s" not in never.metrics
    assert never.evidence[0].startswith("quiet from 32.000000 s to 40.000000 s")
    # Nobody asked anything after 31 s: silence is not a failure to make progress.
    idle = check_liveness(_stalled_history(), healthy_from_ns=31 * S, end_ns=40 * S, max_quiet_s=5.0)
    assert idle.passed
    assert quiet_gaps([], 0, 5 * S) == []
    with pytest.raises(ValueError, match="max_quiet_s"):
        check_liveness(History(), healthy_from_ns=0, end_ns=1, max_quiet_s=0)


# -- availability --------------------------------------------------------------------------------------
def _availability_history() -> History:
    """Two partitions (key a* → 1, b* → 2), 10-second windows.

    partition 1: writes ok at 1, fail 12 (invoked), info 14, ok completes 25 → writes down [12, 25];
                 reads ok throughout (2, 13, 22).
    partition 2: a read timing out at 31, still open from 35: down from 31 to the end (40).
    """
    builder = HistoryBuilder()
    builder.add(1, "put_item", "a1", {"item": {"n": 1}}, 0, 1)
    builder.add(2, "get_item", "a1", {"consistent": True}, 1.5, 2, result={"n": 1})
    builder.add(1, "put_item", "a1", {"item": {"n": 2}}, 12, 13, outcome=FAIL, error="not-leader")
    builder.add(2, "get_item", "a1", {"consistent": False}, 12.5, 13, result={"n": 1})
    builder.add(3, "put_item", "a1", {"item": {"n": 3}}, 14, 19, outcome=INFO, error="timeout")
    builder.add(2, "get_item", "a1", {"consistent": True}, 21, 22, result={"n": 1})
    builder.add(1, "update_item", "a2", {"set": {"n": 4}, "condition": {"item_exists": True}}, 23, 23.5,
                outcome=FAIL, error="condition_failed")  # an answer: counts as a success
    builder.add(1, "put_item", "a1", {"item": {"n": 5}}, 24, 25)
    builder.add(4, "put_item", "b1", {"item": {"n": 1}}, 30, 30.25)
    builder.add(4, "get_item", "b1", {"consistent": True}, 31, 33, outcome=FAIL, error="timeout")
    builder.add(5, "get_item", "b1", {"consistent": True}, 35, None, outcome=None)
    builder.add(4, "put_item", "b1", {"item": {"n": 2}}, 39, 40, outcome=INFO, error="timeout")
    return builder.history()


def _partition(key: str) -> int:
    return 1 if key.startswith("a") else 2


def test_availability_windows() -> None:
    operations = _availability_history().operations()
    windows = success_windows(operations, window_s=10.0, start_ns=0, end_ns=40 * S)
    assert windows == [Window(0, 10 * S, 2, 2), Window(10 * S, 20 * S, 3, 1),
                       Window(20 * S, 30 * S, 3, 3), Window(30 * S, 40 * S, 4, 1)]
    assert windows[1].success_ratio == pytest.approx(1 / 3)
    assert success_windows(operations, window_s=300.0, end_ns=40 * S) == [Window(0, 40 * S, 12, 7)]


def test_unavailability_intervals_per_partition_and_kind() -> None:
    operations = _availability_history().operations()
    def intervals(kind: str) -> list[UnavailableInterval]:
        return unavailability_intervals(operations, kind=kind, group_of=_partition, end_ns=40 * S)
    assert intervals("all") == [UnavailableInterval(1, "all", 12 * S, 13 * S, 1),
                                UnavailableInterval(1, "all", 14 * S, 22 * S, 1),
                                UnavailableInterval(2, "all", 31 * S, 40 * S, 3)]
    # the rejected conditional update at 23.5 s is an answer: partition 1 serves writes again then
    assert intervals("write") == [UnavailableInterval(1, "write", 12 * S, 23_500_000_000, 2),
                                  UnavailableInterval(2, "write", 39 * S, 40 * S, 1)]
    assert intervals("read") == [UnavailableInterval(2, "read", 31 * S, 40 * S, 2)]
    whole = unavailability_intervals(operations, end_ns=40 * S)
    assert [(i.group, i.start_ns, i.end_ns) for i in whole] == [("all", 12 * S, 13 * S),
                                                                ("all", 14 * S, 22 * S),
                                                                ("all", 31 * S, 40 * S)]


def test_latency_percentiles_split_strong_and_eventual_reads() -> None:
    latencies = latency_percentiles_ms(_availability_history().operations())
    assert latencies == {"get_item/eventual": {"p50": 500.0, "p99": 500.0, "max": 500.0},
                         "get_item/strong": {"p50": 500.0, "p99": 1000.0, "max": 1000.0},
                         "put_item": {"p50": 1000.0, "p99": 1000.0, "max": 1000.0},
                         "update_item": {"p50": 500.0, "p99": 500.0, "max": 500.0}}


def test_availability_metrics_and_a_pass_without_bounds() -> None:
    result = check_availability(_availability_history(), window_s=10.0, group_of=_partition)
    assert result.passed
    metrics = result.metrics
    assert metrics["availability.operations"] == 12 and metrics["availability.successes"] == 7
    assert metrics["availability.min_window_success_ratio"] == 0.25
    assert metrics["unavailable_s"] == 18.0 and metrics["unavailability_intervals"] == 3
    assert metrics["write_unavailable_s"] == 12.5 and metrics["read_unavailable_s"] == 9.0
    assert metrics["longest_unavailable_s"] == 11.5
    # Writes: 11.5 s in group 1 and 1 s elsewhere; the longest is one group's, not the sum.
    assert metrics["longest_write_unavailable_s"] == 11.5 and metrics["longest_read_unavailable_s"] == 9.0
    assert metrics["latency_ms.get_item/strong.p99"] == 1000.0
    assert result.evidence[0] == ("group 1 unavailable for writes from 12.000000 s to 23.500000 s "
                                  "(11.500 s, 2 failed or unknown operations)")


def test_availability_fails_on_a_broken_bound() -> None:
    history = _availability_history()
    low = check_availability(history, window_s=10.0, group_of=_partition, min_success_ratio=0.3)
    assert low.verdict == "fail" and low.time_ns == 30 * S
    assert low.summary == ("success ratio 1/4 = 0.2500 < 0.3 in the window 30.000000 s to "
                           "40.000000 s")
    long = check_availability(history, window_s=10.0, group_of=_partition, max_unavailable_s=10.0)
    assert long.verdict == "fail" and long.time_ns == 22 * S
    assert "group 1 unavailable for writes from 12.000000 s" in long.summary
    assert check_availability(history, window_s=10.0, group_of=_partition, max_unavailable_s=11.5,
                        min_success_ratio=0.25).passed
    assert check_availability(History(), min_success_ratio=0.9).verdict == "unknown"


# -- leadership ----------------------------------------------------------------------------------------
def test_back_to_back_and_self_overlapping_leases_pass() -> None:
    leases = [(1, "n1", 0, 5 * S), (1, "n2", 5 * S, 9 * S), (1, "n2", 8 * S, 12 * S),
              (2, "n1", 6 * S, 7 * S)]
    result = check_leases(leases)
    assert result.passed and result.metrics == {"leases": 4, "lease_overlaps": 0}


@dataclass(frozen=True)
class _ObservedLease:  # the shape of a system's own record (group, holder, start, end)
    partition: int
    node: str
    start_ns: int
    end_ns: int


def test_overlapping_leases_are_caught_with_both_intervals() -> None:
    leases = [(1, "n1", 0, 5 * S), _ObservedLease(3, "n1", 1 * S, 4 * S),
              _ObservedLease(3, "n2", 3_500_000_000, 6 * S)]
    result = check_leases(leases, group_label="partition")
    assert result.verdict == "fail" and result.metrics["lease_overlaps"] == 1
    assert result.time_ns == 3_500_000_000
    assert result.evidence == (
        ("partition 3: n1 held [1.000000 s, 4.000000 s) and n2 held [3.500000 s, 6.000000 s): "
        "both from 3.500000 s to 4.000000 s"),)
    open_ended = check_leases([Lease(1, "n1", 0, None), Lease(1, "n2", 9 * S, 10 * S)])
    assert open_ended.verdict == "fail"


def test_election_summary() -> None:
    elections = [(1, "n2", 5 * S, "suspicion", False), (1, "n3", 9 * S, "suspicion", True),
                 (2, "n1", 1 * S, "handoff", False)]
    leadership = [(1, "n1", 0, 4 * S), (1, "n2", 6 * S, 8 * S), (1, "n3", 7 * S, None),
                  (2, "n1", 2 * S, 10 * S)]
    metrics = election_summary(elections, leadership, end_ns=10 * S, groups=[3])
    assert metrics == {"elections": 3, "elections.spurious": 1, "elections.handoff": 1,
                       "elections.suspicion": 2, "time_without_leader_s": 2 + 2 + 10,
                       "time_without_leader_s.1": 2.0, "time_without_leader_s.2": 2.0,
                       "time_without_leader_s.3": 10.0}
    assert election_summary([])["elections"] == 0
