"""Convergence: after faults stop and a heal period, the replicas of each group hold the same data.

Theory of operation. The harness asks every replica of every group (a partition, a shard) for a digest
of its data once the heal period is over; this checker only compares them. A group converged if all its
replicas report one digest. A diverged group's evidence names each digest and the replicas that hold it,
the most common digest first (usually the majority's). Groups with fewer than two replicas trivially
converge. ``time_to_recover`` is the companion metric: how long after the cluster should be healthy the
service first answered ``ok``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.checkers.verdict import (FAIL_VERDICT, PASS, WRITE_OPERATIONS, CheckResult, HistoryLike,
                                      operations_of)
from harness.history import OK

__all__ = ["check_convergence", "time_to_recover"]

_GROUPS_SHOWN = 10  # evidence details at most this many diverged groups
_DIGEST_SHOWN = 12  # characters of a digest printed


def check_convergence(digests: Mapping[Any, Mapping[str, str]], *, group_label: str = "partition",
                      name: str = "convergence") -> CheckResult:
    """Fail if some group's replicas report different digests. ``digests``: group → replica → digest;
    ``group_label`` names a group in the evidence ("partition 3")."""
    groups = sorted(digests, key=repr)
    diverged = [group for group in groups if len(set(digests[group].values())) > 1]
    metrics = {"groups": len(groups), "groups_diverged": len(diverged),
               "replicas": sum(len(digests[group]) for group in groups)}
    if not diverged:
        return CheckResult(name, PASS, f"all {len(groups)} {group_label}s converged", (), metrics)
    evidence = [_divergence_line(group_label, group, digests[group])
                for group in diverged[:_GROUPS_SHOWN]]
    if len(diverged) > _GROUPS_SHOWN:
        evidence.append(f"... and {len(diverged) - _GROUPS_SHOWN} more {group_label}s")
    summary = (f"{len(diverged)} of {len(groups)} {group_label}s diverged after the heal "
               f"(first: {group_label} {diverged[0]!r})")
    return CheckResult(name, FAIL_VERDICT, summary, tuple(evidence), metrics)


def _divergence_line(group_label: str, group: Any, by_replica: Mapping[str, str]) -> str:
    """``partition 3: 2 digests among 3 replicas: 'ab12' on n1, n2; 'ff00' on n3``."""
    holders: dict[str, list[str]] = {}
    for replica in sorted(by_replica):
        holders.setdefault(by_replica[replica], []).append(replica)
    ordered = sorted(holders.items(), key=lambda pair: (-len(pair[1]), pair[0]))
    parts = [f"{_short(digest)!r} on {', '.join(replicas)}" for digest, replicas in ordered]
    return (f"{group_label} {group!r}: {len(holders)} digests among {len(by_replica)} replicas: "
            + "; ".join(parts))


def _short(digest: str) -> str:
    return digest if len(digest) <= _DIGEST_SHOWN else digest[:_DIGEST_SHOWN] + "…"


def time_to_recover(history: HistoryLike, healthy_from_ns: int, *,
                    writes_only: bool = False) -> float | None:
    """Seconds from ``healthy_from_ns`` to the first ``ok`` completion at or after it (with
    ``writes_only``, the first ``ok`` write); None if there is none."""
    completions = [operation.completed_ns for operation in operations_of(history)
                   if operation.completion == OK and operation.completed_ns is not None
                   and operation.completed_ns >= healthy_from_ns
                   and (not writes_only or operation.f in WRITE_OPERATIONS)]
    return None if not completions else (min(completions) - healthy_from_ns) / 1e9
