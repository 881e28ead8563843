"""Progress of many runs, on stderr: one updating line on a terminal, plain lines otherwise.

On a TTY, a single line is redrawn after every run: a bar, ``done/total``, the failures so far, the
rate and an ETA, and the run that just finished; a failing run is also printed above the bar, with its
reproduction, so that it stays on screen. When stderr is not a TTY (CI logs, pipes), every run gets
one plain line, ``[done/total] <scenario> seed <N>: passed|FAILED (<reason>)``, followed by the same
counters. Written by hand: forty lines do not justify a dependency.

The ETA reads the wall clock. That is outside every run (between runs, in the parent process), so it
never touches a run's determinism.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from harness.result import Result

__all__ = ["Progress", "format_duration"]

_BAR_WIDTH = 20


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class Progress:
    """Counts finished runs out of ``total`` and shows it on ``stream``."""

    def __init__(self, total: int, stream: TextIO | None = None, *, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.tty = _isatty(self.stream) if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.failed = 0
        self._drawn = False

    def update(self, result: Result) -> None:
        """One more run finished."""
        self.done += 1
        if not result.passed:
            self.failed += 1
        label = f"{result.scenario} seed {result.seed}"
        verdict = "passed" if result.passed else f"FAILED ({result.reason})"
        if self.tty:
            if not result.passed:
                self._clear()
                self.stream.write(f"FAILED {label} ({result.reason}): {result.reproduce}\n")
            self._draw(label)
        else:
            self.stream.write(f"[{self.done}/{self.total}] {label}: {verdict} "
                              f"({self._counters()})\n")
        self.stream.flush()

    def close(self) -> None:
        """Leave the terminal clean: the final state of the bar stays, on its own line."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    # -- drawing ----------------------------------------------------------------------------------
    def _counters(self) -> str:
        elapsed = self.clock() - self.started
        parts = [f"{self.failed} failed so far"]
        if self.done and elapsed > 0:
            parts.append(f"{self.done / elapsed:.2f} runs/s")
            remaining = self.total - self.done
            parts.append(f"ETA {format_duration(elapsed / self.done * remaining)}"
                         if remaining else f"took {format_duration(elapsed)}")
        return ", ".join(parts)

    def _draw(self, label: str) -> None:
        filled = _BAR_WIDTH * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        line = f"[{bar}] {self.done}/{self.total}, {self._counters()} | {label}"
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r" + line[:width].ljust(width))
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + " " * width + "\r")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False
