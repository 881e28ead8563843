"""The reference system: a DynamoDB-like replicated key-value store, built to fail the way the paper says.

Mechanisms (numbers from shared/reference/dynamodb-mechanisms.md): key-range partitioning of hashed
keys (M1); three replicas per partition in three AZs (M2); Multi-Paxos-style leader election with
ballots (M3) and leader leases (M4); heartbeats and suspicion (M5) with peer confirmation before an
election (M10); WAL-first writes acknowledged after a quorum persisted them (M6); strongly and
eventually consistent reads (M7); planned leadership handoff (M11); request routers with a partition-map
cache, pushed leadership changes and misroute correction (M12, M13, M19); checksums on messages and
WAL records (M14); a metadata service of finite capacity with legacy or constant-work router caches
(M21); versions v1, v2 (a new WAL record format and replication message, emitted behind a flag)
and v2-bad (a defect under load), with format versions on messages and records (M24) and the hooks
that let ``harness.deploy`` roll them out and back (M11, M25-M27); membership leases that storage nodes renew
from the metadata service, leaving service when one runs out, with lockstep or jittered retries
(S20, the 2015 event); storage and log replicas (M8) and the healing of a group that lost a replica:
a log replica within seconds, a full storage replica after minutes, through membership changes in
the log (M9, S7); client-side canaries in every AZ (M29), an alarm on their error rate (M28) and
automation that moves a leadership away when it fires (S4), with availability measured per window,
as the storage nodes see it and as the canaries see it.

Layout: ``items`` (the state machine), ``messages`` and ``effects`` (the contracts), ``replica`` and
``wal`` (the replication protocol), ``group`` and ``healing`` (membership changes, M9),
``partitioning``, ``metadata`` and ``router`` (routing), ``versions`` and ``deployment``,
``membership`` (a storage node's membership lease), ``workload`` (clients and their History),
``canary`` (probes, alarm, automation),
``node`` (the only code touching the harness), ``observations``, ``durability_window`` and
``system`` (plugging into Graylink). Protocol logic is sans-I/O: it takes ``(now, input)`` and returns
effects, so it is unit-tested without a simulator.
"""

__all__ = ["DynamoSystem"]


def __getattr__(name: str) -> object:
    # Imported on first use, so that ``systems.dynamo.items`` and the other leaves can be imported
    # (and unit-tested) without pulling in the whole system.
    if name == "DynamoSystem":
        from systems.dynamo.system import DynamoSystem

        return DynamoSystem
    raise AttributeError(f"module 'systems.dynamo' has no attribute {name!r}")
