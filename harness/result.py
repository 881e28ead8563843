"""The result of one run: verdict, evidence, metrics, digest and the recipe to reproduce it.

A ``Result`` is plain data. ``to_dict()`` gives everything a report needs (and ``graylink replay`` needs
to re-run it, and ``graylink report`` to draw it: the ``recording``); ``from_dict`` reads it back, equal.
Its first line in every text rendering is the command that reproduces the run.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.checkers.verdict import CheckResult
from harness.errors import Failure
from harness.expectations import CHECK_PREFIX as _EXPECT
from harness.recording import dump_json
from harness.timeline import AppliedFault

__all__ = ["Result", "reproduce_command"]

# Failures raised while events were dispatched: the last events of the trace are their context.
_DURING_RUN = ("exception", "ambient-nondeterminism", "invariant", "step-limit")


def _failure(data: dict[str, Any]) -> Failure:
    return Failure(data["kind"], data["message"], int(data["time_ns"]), data.get("node"),
                   tuple(data.get("evidence", ())))


def reproduce_command(source: str | None, seed: int, variant: str | None = None) -> str:
    target = shlex.quote(source) if source else "<scenario.yaml>"
    command = f"graylink run {target} --seed {seed}"
    return f"{command} --variant {shlex.quote(variant)}" if variant else command


@dataclass(frozen=True, slots=True)
class Result:
    """What one run of a scenario with one seed did."""

    scenario: str
    source: str | None
    seed: int
    passed: bool
    reason: str  # how the run ended: "completed", "failure", "step-limit", "interrupted", "internal-error"
    failures: tuple[Failure, ...]
    metrics: dict[str, float]
    trace_digest: str
    sim_time_s: float
    wall_time_s: float
    events: int
    faults: tuple[AppliedFault, ...] = ()
    statistics: dict[str, Any] = field(default_factory=dict)
    trace_tail: tuple[str, ...] = ()  # the last events before the end, for failure reports
    checks: tuple[CheckResult, ...] = ()  # every checker's verdict, then each expectation's
    variant: str | None = None  # the variant of the scenario file this run was, if any
    expected_failures: tuple[Failure, ...] = ()  # failures an expectation `check NAME fails` foretold
    # What the HTML report draws, as plain data (``harness.recording``): node lifecycles, sampled
    # messages, the system's timeline. Empty when the run did not get as far as building its world.
    recording: dict[str, Any] = field(default_factory=dict)

    @property
    def reproduce(self) -> str:
        return reproduce_command(self.source, self.seed, self.variant)

    @property
    def internal_error(self) -> bool:
        return self.reason == "internal-error"

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary ``graylink run --json`` prints."""
        return {"scenario": self.scenario, "variant": self.variant, "seed": self.seed,
                "passed": self.passed,
                "reason": self.reason, "metrics": self.metrics, "trace_digest": self.trace_digest,
                "sim_time_s": self.sim_time_s, "wall_time_s": self.wall_time_s,
                "events": self.events, "reproduce": self.reproduce,
                "checks": {check.name: check.verdict for check in self.checks},
                "failures": [failure.describe() for failure in self.failures],
                "expected_failures": [failure.describe() for failure in self.expected_failures]}

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready data."""
        data = asdict(self)
        data["reproduce"] = self.reproduce
        return data

    def to_json(self) -> str:
        """``to_dict()`` as the JSON report: indented, each list of plain values on one line."""
        return dump_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """The Result whose ``to_dict()`` (read back from JSON) ``data`` is. A ValueError says what
        is missing or wrong."""
        try:
            return cls(
                scenario=str(data["scenario"]), source=data["source"], seed=int(data["seed"]),
                passed=bool(data["passed"]), reason=str(data["reason"]),
                failures=tuple(_failure(item) for item in data["failures"]),
                metrics=dict(data["metrics"]), trace_digest=str(data["trace_digest"]),
                sim_time_s=float(data["sim_time_s"]), wall_time_s=float(data["wall_time_s"]),
                events=int(data["events"]),
                faults=tuple(AppliedFault(**item) for item in data.get("faults", ())),
                statistics=dict(data.get("statistics", {})),
                trace_tail=tuple(data.get("trace_tail", ())),
                checks=tuple(CheckResult(**item) for item in data.get("checks", ())),
                variant=data.get("variant"),
                expected_failures=tuple(_failure(item) for item in data.get("expected_failures", ())),
                recording=dict(data.get("recording") or {}))
        except KeyError as error:
            raise ValueError(f"no {error.args[0]!r} field") from None
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(str(error)) from None

    def render_text(self) -> str:
        """A readable summary whose first line reproduces the run."""
        verdict = "PASSED" if self.passed else ("INTERNAL ERROR" if self.internal_error else "FAILED")
        lines = [self.reproduce,
                 f"{verdict}: {self.scenario} (seed {self.seed}) - {self.reason}",
                 f"  simulated {self.sim_time_s:.3f}s in {self.wall_time_s:.3f}s wall, "
                 f"{self.events} events, trace digest {self.trace_digest}"]
        if self.faults:
            lines.append(f"  faults: {len(self.faults)} applied")
            for applied in self.faults[:20]:
                end = f" until {applied.ended_ns / 1e9:.3f}s" if applied.ended_ns is not None else ""
                lines.append(f"    {applied.started_ns / 1e9:9.3f}s {applied.description}{end}")
            if len(self.faults) > 20:
                lines.append(f"    ... and {len(self.faults) - 20} more")
        checks = [check for check in self.checks if not check.name.startswith(_EXPECT)]
        expectations = [check for check in self.checks if check.name.startswith(_EXPECT)]
        for title, group in (("checks", checks), ("expectations", expectations)):
            if group:
                lines.append(f"  {title}:")
                lines.extend(f"    {check.verdict.upper():7} {check.name.removeprefix(_EXPECT)}: "
                             f"{check.summary}" for check in group)
        if self.metrics:
            lines.append("  metrics:")
            lines.extend(f"    {name} = {value:g}" if isinstance(value, (int, float))
                         else f"    {name} = {value}" for name, value in sorted(self.metrics.items()))
        for failure in self.failures:
            lines.append("  " + failure.describe().replace("\n", "\n  "))
        if self.expected_failures:
            lines.append("  expected failures (foretold by `check NAME fails`, so not failing the run):")
            lines.extend("    " + failure.describe().replace("\n", "\n    ")
                         for failure in self.expected_failures)
        during_run = any(f.kind in _DURING_RUN for f in self.failures)
        if during_run and self.trace_tail:
            lines.append("  last events before the end:")
            lines.extend(f"    {line}" for line in self.trace_tail[-10:])
        return "\n".join(lines)
