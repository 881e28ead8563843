"""Checkers: verdicts on what a run's clients saw.

- Linearizability against a sequential model (``check_history``, ``check_operations``; models by name in
  ``MODELS``: ``register``, ``cas-register``, ``kv``), per key, by the Wing–Gong–Lowe search with
  memoisation (Porcupine's algorithm). See ``linearizability.py``, ``models.py`` and ``search.py``.
- Reading histories from files: ``read_history`` (JSONL, Jepsen logs); ``HistoryFormatError``.
- Every other check returns a ``CheckResult`` (verdict pass | fail | unknown, summary, evidence,
  metrics; ``verdict.py``): ``linearizability_check``, ``check_durability`` (acknowledged writes
  survive the heal), ``check_convergence`` (replicas agree by digest) and ``time_to_recover``,
  ``check_liveness`` (progress while healthy), ``check_availability`` (windows, unavailability intervals,
  latency), ``check_leases`` and ``election_summary`` (leadership).
"""

from harness.checkers.availability import (UnavailableInterval, Window, check_availability,
                                           latency_percentiles_ms, success_windows,
                                           unavailability_intervals)
from harness.checkers.convergence import check_convergence, time_to_recover
from harness.checkers.durability import DURABILITY_MAX_STEPS, check_durability
from harness.checkers.history_formats import (FORMATS, HistoryFormatError, read_history,
                                              read_jepsen_log, read_jsonl)
from harness.checkers.leadership import Lease, check_leases, election_summary, lease_overlaps
from harness.checkers.linearizability import (DEFAULT_MAX_STEPS, KeyVerdict, LinearizabilityResult,
                                              check_history, check_operations)
from harness.checkers.models import (CAS_REGISTER, KV, MODELS, REGISTER, REJECT, UNKNOWN, Call,
                                     Model, freeze, get_model, partition_by_key, thaw)
from harness.checkers.liveness import QuietGap, check_liveness, quiet_gaps
from harness.checkers.search import LINEARIZABLE, NOT_LINEARIZABLE, UNKNOWN_VERDICT
from harness.checkers.verdict import (CheckResult, answered, is_eventually_consistent_read,
                                      linearizability_check)

__all__ = [
    "CAS_REGISTER", "DEFAULT_MAX_STEPS", "FORMATS", "KV", "LINEARIZABLE", "MODELS",
    "NOT_LINEARIZABLE", "REGISTER", "REJECT", "UNKNOWN", "UNKNOWN_VERDICT", "Call",
    "HistoryFormatError", "KeyVerdict", "LinearizabilityResult", "Model", "check_history",
    "check_operations", "freeze", "get_model", "partition_by_key", "read_history",
    "read_jepsen_log", "read_jsonl", "thaw",
    # checks returning a CheckResult
    "DURABILITY_MAX_STEPS", "CheckResult", "Lease", "QuietGap", "UnavailableInterval", "Window",
    "answered", "check_availability", "check_convergence", "check_durability", "check_leases",
    "check_liveness", "election_summary", "is_eventually_consistent_read", "latency_percentiles_ms",
    "lease_overlaps", "linearizability_check", "quiet_gaps", "success_windows", "time_to_recover",
    "unavailability_intervals",
]
