"""Checkers: verdicts on what a run's clients saw.

- Linearizability against a sequential model (``check_history``, ``check_operations``; models by name in
  ``MODELS``: ``register``, ``cas-register``, ``kv``), per key, by the Wing–Gong–Lowe search with
  memoisation (Porcupine's algorithm). See ``linearizability.py``, ``models.py`` and ``search.py``.
- Reading histories from files: ``read_history`` (JSONL, Jepsen logs); ``HistoryFormatError``.
"""

from harness.checkers.history_formats import (FORMATS, HistoryFormatError, read_history,
                                              read_jepsen_log, read_jsonl)
from harness.checkers.linearizability import (DEFAULT_MAX_STEPS, KeyVerdict, LinearizabilityResult,
                                              check_history, check_operations)
from harness.checkers.models import (CAS_REGISTER, KV, MODELS, REGISTER, REJECT, UNKNOWN, Call,
                                     Model, freeze, get_model, partition_by_key, thaw)
from harness.checkers.search import LINEARIZABLE, NOT_LINEARIZABLE, UNKNOWN_VERDICT

__all__ = [
    "CAS_REGISTER", "DEFAULT_MAX_STEPS", "FORMATS", "KV", "LINEARIZABLE", "MODELS",
    "NOT_LINEARIZABLE", "REGISTER", "REJECT", "UNKNOWN", "UNKNOWN_VERDICT", "Call",
    "HistoryFormatError", "KeyVerdict", "LinearizabilityResult", "Model", "check_history",
    "check_operations", "freeze", "get_model", "partition_by_key", "read_history",
    "read_jepsen_log", "read_jsonl", "thaw",
]
