"""The reference system's verdict: every checker of ``harness.checkers``, fed from one run.

After the heal phase and a quiet period (clients stop ``checks.quiesce_s`` before the end), the
system reads its own final state and asks the generic checkers:

- ``linearizability``: the strongly consistent history (eventually consistent reads excluded: they
  are not meant to be linearizable) against the ``kv`` model, per key;
- ``durability``: every acknowledged write is in the final state (read at each partition's leader, or
  its most advanced replica), with the replicas' logs as "who held it";
- ``convergence``: the replicas of each partition hold the same items (digest);
- ``committed-reads``: every eventually consistent read returned a state its key really had after
  some committed write (not a write that was never committed);
- ``liveness``: once faults stop, every partition clients use serves writes and reads again within
  ``checks.max_quiet_s``;
- ``availability``: success ratio per window, unavailability intervals per partition, latencies;
- ``leases``: no two live replicas of a partition ever held valid leases at the same true instant
  (a lease ends where its holder went down: a dead leader serves nothing under it).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from harness.checkers import (
    KV,
    CheckResult,
    check_availability,
    check_convergence,
    check_durability,
    check_leases,
    check_liveness,
    freeze,
    is_eventually_consistent_read,
    linearizability_check,
)
from harness.checkers.verdict import WRITE_OPERATIONS
from harness.history import OK
from systems.dynamo.items import apply
from systems.dynamo.partitioning import find_partition

if TYPE_CHECKING:
    from harness import World
    from systems.dynamo.replica import Replica
    from systems.dynamo.system import DynamoSystem

__all__ = ["run_checks"]


def run_checks(system: DynamoSystem, world: World) -> list[CheckResult]:
    config = system.config.checks
    history = system.history
    authorities = {p: _authority(system, world, p) for p in range(len(system.partition_map))}
    keys = sorted({entry.key for entry in history if entry.key is not None})
    final_state = {key: _final_item(system, authorities, key) for key in keys}
    healthy_from = world.heal_started_ns or 0
    end = (world.end_ns or world.kernel.now_ns) - round(config.quiesce_s * 1e9)
    return [
        linearizability_check(history, KV, max_steps=config.max_check_steps,
                              exclude=is_eventually_consistent_read),
        check_durability(history, final_state, KV, holders=lambda key: _holders(system, key),
                         max_steps=config.max_check_steps, exclude=is_eventually_consistent_read),
        check_convergence(_digests(system, world)),
        _committed_reads(system, authorities),
        check_liveness(history, healthy_from_ns=healthy_from, end_ns=max(end, healthy_from),
                       max_quiet_s=config.max_quiet_s,
                       group_of=lambda op: (f"partition {_partition_of(system, op.key)}",
                                            "writes" if op.f in WRITE_OPERATIONS else "reads")),
        # Measured once the table is ready (every partition has had its first leader), as
        # ``time_without_leader_s`` is: bootstrapping is not unavailability.
        check_availability(history, window_s=config.window_s,
                           group_of=lambda key: _partition_of(system, key),
                           start_ns=system.observations.ready_ns(len(system.partition_map)),
                           max_unavailable_s=config.max_unavailable_s,
                           min_success_ratio=config.min_success_ratio),
        # Leases as served: cut short where the holder went down (crash, power loss). A dead
        # leader's lease may not have run out, but it serves nothing under it, and it comes back
        # without it (a restarted replica re-acquires), so only a live holder's lease can overlap.
        check_leases([(i.partition, i.node, i.start_ns, i.end_ns)
                      for intervals in system.observations.serving_intervals().values()
                      for i in intervals],
                     group_label="partition"),
    ]


def _partition_of(system: DynamoSystem, key: Any) -> int:
    return find_partition(system.partition_map, str(key)).partition


def _authority(system: DynamoSystem, world: World, partition: int) -> Replica | None:
    """The replica whose committed state stands for the partition: its leader, else the most advanced."""
    replicas = {name: r for name, r in system.replicas_of(partition).items() if world.node(name).is_up}
    if not replicas:
        return None
    leader = system.leader_of(world, partition)
    if leader in replicas:
        return replicas[leader]
    return max(replicas.values(), key=lambda replica: (replica.commit_lsn, replica.name))


def _final_item(system: DynamoSystem, authorities: dict[int, Replica | None], key: str) -> Any:
    replica = authorities[_partition_of(system, key)]
    if replica is None:
        return None
    item = replica.items.get(key)
    return dict(item) if item is not None else None


def _holders(system: DynamoSystem, key: str) -> dict[str, str]:
    """For evidence: what each replica's log holds for ``key``."""
    partition = _partition_of(system, key)
    held = {}
    for name, replica in sorted(system.replicas_of(partition).items()):
        lsns = [e.lsn for e in replica.entries if e.operation is not None and e.operation.key == key]
        held[name] = (f"{len(lsns)} log entries for the key (last at lsn {lsns[-1]}), committed up "
                      f"to lsn {replica.commit_lsn}" if lsns else
                      f"no log entry for the key, committed up to lsn {replica.commit_lsn}")
    return held


def _digests(system: DynamoSystem, world: World) -> dict[int, dict[str, str]]:
    digests: dict[int, dict[str, str]] = {}
    for partition in range(len(system.partition_map)):
        digests[partition] = {
            name: hashlib.blake2b(repr(sorted((k, sorted(v.items())) for k, v in
                                              replica.items.items())).encode(),
                                  digest_size=8).hexdigest()
            for name, replica in sorted(system.replicas_of(partition).items())
            if world.node(name).is_up}
    return digests


def _committed_reads(system: DynamoSystem, authorities: dict[int, Replica | None]) -> CheckResult:
    """Eventually consistent reads may be stale, but only ever show states that were committed."""
    states: dict[str, set[Any]] = {}
    for replica in authorities.values():
        if replica is None:
            continue
        items: dict[str, Any] = {}
        for entry in replica.entries[:replica.commit_lsn]:
            if entry.operation is None or not entry.operation.is_write:
                continue
            key = entry.operation.key
            items[key], _ = apply(items.get(key), entry.operation)
            states.setdefault(key, {None}).add(freeze(items[key]))
    bad = []
    for operation in system.history.operations():
        if operation.f != "get_item" or operation.completion != OK:
            continue
        if not is_eventually_consistent_read(operation) or operation.key not in states:
            continue
        if freeze(operation.result) not in states[operation.key]:
            bad.append(operation)
    metrics = {"uncommitted_reads": float(len(bad))}
    if not bad:
        return CheckResult("committed-reads", "pass", "every eventually consistent read returned a "
                           "committed state", metrics=metrics)
    evidence = tuple(f"{op.key}: read {op.result!r} at t={op.completed_ns / 1e9:.6f}s (process "
                     f"{op.process}), a state no committed write ever produced" for op in bad[:10])
    return CheckResult("committed-reads", "fail", f"{len(bad)} eventually consistent reads returned "
                       f"uncommitted data", evidence, metrics, bad[0].completed_ns)
