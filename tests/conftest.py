"""Shared test set-up: ``tests/`` is importable (planted systems), also for CLI subprocesses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a ``python -m harness`` subprocess that can import the planted systems."""
    paths = [str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p), **extra)
