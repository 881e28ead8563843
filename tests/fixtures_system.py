"""Tiny systems for the scenario loader's tests: ``system.use`` needs importable classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.deploy import Version
from harness.params import param


@dataclass(frozen=True, slots=True)
class EchoConfig:
    greeting: str = param("what each node says", "hello")
    replicas: int = param("how many replicas", 3, minimum=1, maximum=9)
    verbose: bool = param("log every message", False)
    leader: str = param("the leading node; empty means the first", "", ref="node")
    weights: tuple[float, ...] = param("per-replica weights", (), minimum=0)
    timeout_ms: float | None = param("reply timeout; omit for none", None, minimum=0,
                                     exclusive_minimum=True)
    mode: str = param("how replies are sent", "fast", choices=("fast", "safe"))


class EchoSystem:
    """A system with a ``Config`` dataclass: the loader validates ``system.config`` against it."""

    Config = EchoConfig

    def __init__(self, config: EchoConfig) -> None:
        self.config = config


class PlainSystem:
    """A system without a ``Config`` dataclass: it receives a plain dict. It declares one version,
    so that deployment faults can be written against it (the loader checks versions)."""

    VERSIONS = {"v1": Version(reads_format=1, writes_format=1)}
    DEPLOY_ROLES = {"server": True}

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config


@dataclass(frozen=True, slots=True)
class Tuning:
    retries: int = param("how often to retry", 2, minimum=0, maximum=10)
    backoff_ms: float = param("pause between retries", 10.0, minimum=0)


@dataclass(frozen=True, slots=True)
class TunedConfig:
    label: str = param("a name for the run", "base")
    tuning: Tuning = field(default_factory=Tuning)  # retry settings
    safe: bool = param("a mitigation", True)


class TunedSystem:
    """A ``Config`` with a nested dataclass: variants deep-merge into it."""

    Config = TunedConfig

    def __init__(self, config: TunedConfig) -> None:
        self.config = config
