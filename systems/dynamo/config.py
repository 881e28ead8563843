"""Configuration of the reference system: sizes, timing knobs, mitigations and planted bugs.

No source gives DynamoDB's heartbeat interval, lease length or election timeout; the defaults below
are ours (from shared/reference/dynamodb-mechanisms.md §3), chosen to be realistic, and every one is
configurable from a scenario's ``system.config``.

Mitigations are on by default; each can be switched off to show what it buys. Planted bugs are off by
default; each, switched on, is a real defect that a checker can catch (see ``Bugs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import param

__all__ = ["DynamoConfig", "Timing", "Mitigations", "Bugs", "WorkloadConfig", "ChecksConfig",
           "CanaryConfig", "HealingConfig", "DeploymentConfig"]


@dataclass(frozen=True, slots=True)
class Timing:
    """Every timer of the protocol, in milliseconds of the node's local clock (and the metadata
    service's queue limit, which sets its capacity together with its service time)."""

    heartbeat_interval_ms: float = param("leader heartbeat (and lease renewal) period", 500.0,
                                         minimum=1)
    suspicion_timeout_ms: float = param("a follower that hears no heartbeat this long suspects the "
                                        "leader (3 missed heartbeats)", 1500.0, minimum=1)
    suspicion_jitter_ms: float = param("random extra suspicion time per replica, so candidates "
                                       "rarely collide", 300.0, minimum=0)
    lease_ms: float = param("leader lease length; a new leader waits this out", 2000.0, minimum=1)
    clock_drift_margin_ms: float = param("the lease is treated as ending this much earlier, to "
                                         "allow for clock drift between replicas", 150.0, minimum=0)
    peer_check_timeout_ms: float = param("how long a would-be candidate waits for peers to say "
                                         "whether they still hear the leader", 200.0, minimum=1)
    peer_healthy_within_ms: float = param("a peer reports the leader healthy if it heard from it "
                                          "this recently", 1000.0, minimum=1)
    election_timeout_ms: float = param("a candidate that has not won by then gives up and retries",
                                       1000.0, minimum=1)
    replication_retry_ms: float = param("the leader resends unacknowledged log entries this often",
                                        200.0, minimum=1)
    router_request_timeout_ms: float = param("a router gives up on a request after this long",
                                             2000.0, minimum=1)
    router_attempt_timeout_ms: float = param("a router that hears nothing from a replica this long "
                                             "retries the request at another replica", 500.0,
                                             minimum=1)
    router_backoff_ms_min: float = param("first retry backoff of a router", 20.0, minimum=0)
    router_backoff_ms_max: float = param("largest retry backoff of a router (full jitter)", 400.0,
                                         minimum=0)
    router_cache_ttl_s: float = param("a router's cached leader expires after this long", 30.0,
                                      minimum=0)
    metadata_service_time_ms: float = param("time the metadata service takes per request", 2.0,
                                            minimum=0)
    metadata_service_time_per_entry_ms: float = param("extra service time per partition entry "
                                                      "in a reply (a whole-map reply costs more)",
                                                      0.05, minimum=0)
    metadata_queue_capacity: int = param("requests the metadata service holds (in service and "
                                         "waiting); more are rejected at once as overload", 100,
                                         minimum=1)
    metadata_timeout_ms: float = param("a router waits this long for the metadata service", 500.0,
                                       minimum=1)
    client_timeout_ms: float = param("a client gives up on an operation after this long (outcome "
                                     "unknown)", 3000.0, minimum=1)
    membership_refresh_s: float = param("a storage node fetches its membership (the whole "
                                        "partition map) from the metadata service this often",
                                        10.0, minimum=0, exclusive_minimum=True)
    membership_timeout_ms: float = param("a storage node gives up on a membership fetch after this "
                                         "long (the metadata service still does the work)", 500.0,
                                         minimum=1)
    membership_lease_s: float = param("a successful membership fetch lets the node serve this "
                                      "long; when it runs out the node leaves service until a "
                                      "fetch succeeds", 30.0, minimum=0, exclusive_minimum=True)
    membership_retry_ms: float = param("wait after a failed membership fetch: exactly this without "
                                       "retry jitter, else the first backoff's ceiling", 100.0,
                                       minimum=0)
    membership_backoff_ms_max: float = param("largest backoff ceiling of membership retries (with "
                                             "retry jitter)", 5000.0, minimum=0)


@dataclass(frozen=True, slots=True)
class Mitigations:
    """The paper's mitigations, each on by default and switchable off."""

    peer_confirmation: bool = param("M10: ask the other replicas before starting an election", True)
    peer_confirmation_rule: str = param("M10: stand down if 'any' peer, or a 'majority' of peers, "
                                        "still hears the leader", "any", choices=("any", "majority"))
    lease_wait: bool = param("M4: a new leader waits out the old leader's lease before serving",
                             True)
    leadership_handoff: bool = param("M11: an ineligible leader hands its leadership over at once",
                                     True)
    membership_push: bool = param("M12: leaders push leadership changes to routers and metadata",
                                  True)
    checksums: bool = param("M14: checksum every message and WAL record, verified on receipt", True)
    router_cache_mode: str = param("M21: 'legacy' (fetch on a miss only) or 'constant_work' (every "
                                   "hit also refreshes in the background)", "legacy",
                                   choices=("legacy", "constant_work"))
    membership_retry_jitter: bool = param("S20: a storage node retries a failed membership fetch "
                                          "with exponential backoff and full jitter, instead of "
                                          "at a fixed interval in lockstep with every other node",
                                          True)
    canary_remediation: bool = param("S4 [inferred]: when the canary alarm fires for a partition, "
                                     "automation makes the leader the metadata service names for "
                                     "it ineligible for a while (canaries.ineligible_s), so it hands "
                                     "its leadership over (M11); needs canaries.enabled", True)
    log_replicas: bool = param("M9: a leader that finds a replica failed first adds a log replica "
                               "(the recent WAL only: seconds) that votes and counts toward the "
                               "write quorum, while the full storage replica is rebuilt (minutes); "
                               "off, the group runs short of a replica for the whole rebuild",
                               True)


@dataclass(frozen=True, slots=True)
class Bugs:
    """Planted defects, off by default. Each is real, documented, and caught by a checker."""

    ack_before_quorum: bool = param("the leader acknowledges a write once it alone has persisted it "
                                    "(lost acknowledged writes when it fails)", False)
    ack_before_fsync: bool = param("the leader acknowledges before anything is durable (lost "
                                   "acknowledged writes after a crash)", False)
    vote_without_log_check: bool = param("replicas vote for candidates whose log is behind theirs "
                                         "(committed writes overwritten)", False)
    stale_leader_serves: bool = param("a leader keeps serving after its own lease ran out (two "
                                      "leaders serve; stale reads)", False)
    lease_ignores_drift: bool = param("the lease check ignores the clock-drift margin (overlapping "
                                      "leases under skew)", False)
    accept_stale_ballot: bool = param("followers accept log entries from a deposed leader's older "
                                      "ballot (divergent replicas)", False)
    ec_read_uncommitted: bool = param("eventually consistent reads return writes not yet committed "
                                      "(reads of values that never happened)", False)
    skip_checksum_verification: bool = param("receivers compute checksums but never compare them "
                                             "(corrupt data applied)", False)
    router_never_invalidates: bool = param("routers keep a cached leader forever, ignoring pushes "
                                           "and misroute answers", False)
    log_replica_counted_twice: bool = param("the leader counts each log replica's acknowledgement "
                                            "twice toward the write quorum (writes committed on "
                                            "fewer than a majority: commits_without_quorum)", False)


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """The clients: how many, how fast, which operations on which keys."""

    clients: int = param("client processes", 20, minimum=0, maximum=10_000)
    operations_per_s: float = param("operations each client issues per second (open loop, but one "
                                    "at a time per client)", 2.0, minimum=0)
    keys: int = param("distinct partition keys", 200, minimum=1)
    key_distribution: str = param("how keys are chosen", "zipfian",
                                  choices=("uniform", "zipfian", "hot_key"))
    zipf_exponent: float = param("skew of the zipfian distribution", 1.0, minimum=0)
    put_ratio: float = param("share of put_item", 0.3, minimum=0, maximum=1)
    update_ratio: float = param("share of update_item", 0.1, minimum=0, maximum=1)
    delete_ratio: float = param("share of delete_item", 0.05, minimum=0, maximum=1)
    conditional_ratio: float = param("share of writes that carry a condition (compare-and-set)",
                                     0.2, minimum=0, maximum=1)
    consistent_read_ratio: float = param("share of reads that are strongly consistent", 0.5,
                                         minimum=0, maximum=1)


@dataclass(frozen=True, slots=True)
class ChecksConfig:
    """What the checkers demand of a run (the verdict), and the quiet period they need."""

    quiesce_s: float = param("clients stop this long before the end, so replicas can converge "
                             "before the final checks", 5.0, minimum=0)
    max_quiet_s: float = param("liveness: longest time without any successful operation once the "
                               "faults have stopped", 10.0, minimum=0, exclusive_minimum=True)
    max_unavailable_s: float | None = param("availability: longest tolerated unavailability of one "
                                            "partition; omit for no limit", None, minimum=0)
    min_success_ratio: float | None = param("availability: lowest tolerated success ratio in any "
                                            "window; omit for no limit", None, minimum=0, maximum=1)
    window_s: float = param("availability window (DynamoDB measures 5 minutes)", 300.0, minimum=0,
                            exclusive_minimum=True)
    max_check_steps: int = param("search budget of the linearizability and durability checks; "
                                 "exhausting it gives the verdict 'unknown'", 2_000_000, minimum=1)


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    """Client-side canaries (M29), the customer-facing alarm on them (M28) and the automation the
    alarm triggers (S4; switched by ``mitigations.canary_remediation``). Off by default: canaries
    add traffic and nodes."""

    enabled: bool = param("M29: run a canary client in every AZ that probes every partition "
                          "through the routers of its AZ (all routers if its AZ has none)", False)
    interval_ms: float = param("each canary sends one probe per partition and router this often "
                               "(alternately a write and a strongly consistent read of its own key)",
                               1000.0, minimum=1)
    timeout_ms: float = param("a probe without a reply after this long has failed", 3000.0,
                              minimum=1)
    alarm_window_s: float = param("M28: the alarm looks at the probes of each partition that "
                                  "completed within this last window", 5.0, minimum=0,
                                  exclusive_minimum=True)
    alarm_error_ratio: float = param("the alarm fires when at least this share of those probes "
                                     "failed ...", 0.5, minimum=0, maximum=1,
                                     exclusive_minimum=True)
    alarm_min_probes: int = param("... and at least this many completed", 5, minimum=1)
    remediation_delay_ms: float = param("the automation acts this long after the alarm fires",
                                        500.0, minimum=0)
    ineligible_s: float = param("the automation keeps the leader it moved away from ineligible "
                                "this long", 60.0, minimum=0, exclusive_minimum=True)


@dataclass(frozen=True, slots=True)
class HealingConfig:
    """Replacing a failed replica (M9, S7): detection by the partition's leader, then a log replica
    (with ``mitigations.log_replicas``) and a full storage replica built on a spare storage node.
    The sources give "a few seconds" for a log replica and "several minutes" for a storage replica
    (shared/reference/dynamodb-mechanisms.md §3); how long a replica must be silent is ours."""

    replica_failed_after_s: float = param("the leader declares a replica failed (and replaces it) "
                                          "when it has not answered for this long; longer than a "
                                          "restart or a deployment, so those never trigger it",
                                          30.0, minimum=0, exclusive_minimum=True)
    log_replica_copy_s: float = param("a new replica becomes usable as a log replica this long after "
                                      "it was installed (copying the recent WAL)", 3.0, minimum=0)
    storage_rebuild_s: float = param("a new replica becomes a full storage replica this long after "
                                     "it was installed (copying the items and the WAL)", 180.0,
                                     minimum=0)


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """Versions (M24-M27; ``versions.py``): what every node runs at the start, whether the new
    format is emitted, and the size of the defect planted in the ``v2-bad`` build (S16)."""

    initial_version: str = param("the version every node runs at the start (a deployment installs "
                                 "others)", "v1", choices=("v1", "v2", "v2-bad"))
    write_new_format: bool = param("M24: the emission flag at the start: nodes whose version "
                                   "writes a newer format (v2) emit it from the first boot", False)
    bad_build_threshold_per_s: float = param("v2-bad's defect shows only under load: a router that "
                                             "received more client requests than this in the "
                                             "last second of its clock ...", 5.0, minimum=0)
    bad_build_reject_probability: float = param("... rejects each new one with this probability "
                                                "(error internal_error)", 0.3, minimum=0,
                                                maximum=1)


@dataclass(frozen=True, slots=True)
class DynamoConfig:
    """The reference system's whole configuration (``system.config`` in a scenario)."""

    partitions: int = param("partitions (key ranges), each with three replicas in three AZs", 12,
                            minimum=1, maximum=10_000)
    routers: int = param("request routers added when the topology names none", 2, minimum=1,
                         maximum=100)
    timing: Timing = field(default_factory=Timing)
    mitigations: Mitigations = field(default_factory=Mitigations)
    bugs: Bugs = field(default_factory=Bugs)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    canaries: CanaryConfig = field(default_factory=CanaryConfig)
    healing: HealingConfig = field(default_factory=HealingConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
