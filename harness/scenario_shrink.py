"""Shrinking a failing scenario to one a person can read: few faults, few clients, a short run.

Theory of operation. A failing run is a scenario and a seed. The shrinker keeps the seed and tries
smaller scenarios, one simulation each, keeping a candidate when it still fails *the same way*: it
fails of the original's first reported failure (``primary_kind``: a checker's name,
``exception``…; a system's checkers come safety first), so shrinking does not slide from the bug
it found to, say, a convergence failure of a run made too short. The heal phase is never
shortened, for the same reason: it is the time the system is given to converge. Passes, in order:

1. **materialise** the random fault profile: expand it, from the seed, into the scripted faults it
   stands for (the same draws ``Simulation`` makes), so each of them can be removed on its own; a
   baseline message loss stays in a profile of its own;
2. **whole kinds**: every fault of one kind at once (of kinds with two or more), the most
   numerous first, under this seed, else simulation seeds 0 to 3 (a materialised profile's clock
   drift on every node is noise, but each part of it shifts the interleaving as a new seed
   would);
   **delta-debug the faults** (ddmin: drop halves, then quarters, … then single faults), then drop
   the baseline loss, then **reseed** (pass 8) at once: the number of faults is what a reader
   counts first, and every later pass costs a run per fault or per field of a fault, so the budget
   goes to the fault count before it goes to simplifying faults that may not stay;
3. **shorten the run**: the fault timeline moved earlier as a whole (its first fault at a quarter,
   else half, of its time: a fault drawn late leaves a long run before it), then the fault phase
   cut just past the last fault's end (or to half);
4. **fewer clients**: every ``clients`` field of the system's config, smallest first;
5. **simpler knobs**: each drawn config field back to the base scenario's value (a value equal to
   its default is not even written in the YAML);
6. **simpler faults**: each fault's fields back to their defaults, its time to a whole second;
7. faults again (a simpler run may need fewer of them);
8. **reseed**: while two or more faults remain, try dropping them under simulation seeds 0 to 7,
   coarse first (each half under every seed, then each quarter, down to single faults); one that
   still fails the same way is kept with its seed, and the faults are delta-debugged again (the interleaving is part of the test case: Hypothesis shrinks its seed
   too).

Every pass stops early when the run budget (``max_runs``) is spent; results are cached by
(scenario, seed), so no candidate is run twice. Why not Hypothesis's own shrinker: it shrinks the
choice sequence that drew the scenario, and each of its steps is a whole simulation (about a
second); it typically needs hundreds. These passes know the scenario's structure and need tens.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from harness.result import Result
from harness.scenario import Scenario
from harness.scenario_writer import scenario_to_yaml
from harness.system import resolve_system_class
from harness.timeline import FaultProfile, ScheduledFault, expand_profile
from harness.world import World

__all__ = ["ScenarioShrinker", "failure_kinds", "materialise_profile", "primary_kind",
           "same_failure", "scenario_size"]

Runner = Callable[[Scenario, int], Result]


def failure_kinds(result: Result) -> frozenset[str]:
    """What a failing run failed of: the kinds of its failures (checker names, ``exception``…)."""
    return frozenset(failure.kind for failure in result.failures)


def primary_kind(result: Result) -> str:
    """The failure a shrunk run must keep: the first the run reports (the system's own check,
    then its checkers in their order: safety before convergence and liveness), else its reason."""
    return result.failures[0].kind if result.failures else result.reason


def same_failure(result: Result, primary: str) -> bool:
    """``result`` fails, and fails of ``primary`` among whatever else."""
    return not result.passed and (primary in failure_kinds(result) or primary == result.reason)


@dataclass(frozen=True, slots=True)
class ScenarioSize:
    """How big a scenario is for a reader."""

    fault_actions: int  # scripted faults, plus the faults a random profile would draw
    random_rates: int  # rates of the random profile that are switched on
    clients: int | None  # the system config's ``clients``, if it has one
    duration_s: float
    heal_s: float

    def describe(self) -> str:
        parts = [f"{self.fault_actions} fault action{'s' * (self.fault_actions != 1)}"]
        if self.random_rates:
            parts.append(f"{self.random_rates} random-fault rate{'s' * (self.random_rates != 1)}")
        if self.clients is not None:
            parts.append(f"{self.clients} client{'s' * (self.clients != 1)}")
        parts.append(f"{self.duration_s:g} s + {self.heal_s:g} s heal")
        return ", ".join(parts)


def scenario_size(scenario: Scenario, seed: int | None = None) -> ScenarioSize:
    """The size of ``scenario``; with ``seed``, a random profile counts the faults it draws."""
    profile = scenario.random_faults
    rates = 0 if profile is None else sum(
        1 for item in dataclasses.fields(profile)
        if item.name.endswith(("_per_minute", "skew_ms_max")) and getattr(profile, item.name) > 0)
    actions = len(scenario.faults)
    if rates and seed is not None:
        actions += len(_expanded(scenario, seed))
    return ScenarioSize(actions, rates, _clients(scenario.system.config), scenario.duration_s,
                        scenario.heal_s)


def _clients(config: Any) -> int | None:
    for path in _client_paths(config):
        value = _get(config, path)
        if isinstance(value, int):
            return value
    return None


def _client_paths(config: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of every field named ``clients`` in a (nested) dataclass config."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        return
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if item.name == "clients" and isinstance(value, int) and not isinstance(value, bool):
            yield prefix + (item.name,)
        elif dataclasses.is_dataclass(value):
            yield from _client_paths(value, prefix + (item.name,))


def _get(config: Any, path: Sequence[str]) -> Any:
    for name in path:
        config = getattr(config, name)
    return config


def _set(config: Any, path: Sequence[str], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(config, **{path[0]: value})
    return dataclasses.replace(config, **{path[0]: _set(getattr(config, path[0]), path[1:], value)})


def _leaf_paths(config: Any, base: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of the config's leaf fields whose value differs from ``base``'s."""
    for item in dataclasses.fields(config):
        value, old = getattr(config, item.name), getattr(base, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and \
                type(value) is type(old):
            yield from _leaf_paths(value, old, prefix + (item.name,))
        elif value != old:
            yield prefix + (item.name,)


# -- materialising a random profile ------------------------------------------------------------------
def _expanded(scenario: Scenario, seed: int) -> list[ScheduledFault]:
    """The faults ``Simulation`` would draw from the scenario's random profile with ``seed``: the
    same world (the system's set-up adds its nodes) and the same stream, ``faults/random``."""
    profile = scenario.random_faults
    if profile is None:
        return []
    world = World(seed, scenario.topology, link=scenario.link, disk=scenario.disk)
    spec = scenario.system
    system = resolve_system_class(spec.use)(spec.config if spec.config is not None else {})
    world.system = system
    system.setup(world)
    return expand_profile(profile, world, world.rng.fork("faults/random"), 0.0, scenario.duration_s)


def materialise_profile(scenario: Scenario, seed: int) -> Scenario:
    """The scenario with its random profile's faults written out as scripted faults (the baseline
    loss, which is not a fault action, stays in a profile of its own)."""
    profile = scenario.random_faults
    if profile is None:
        return scenario
    drawn = _expanded(scenario, seed)
    loss = profile.loss_probability
    rest = FaultProfile(loss_probability=loss) if loss > 0 else None
    faults = tuple(sorted(scenario.faults + tuple(drawn), key=lambda item: item.at_s))
    return dataclasses.replace(scenario, faults=faults, random_faults=rest)


def _live_profile(scenario: Scenario) -> bool:
    """A random profile that still draws faults (not just a baseline loss)."""
    profile = scenario.random_faults
    return profile is not None and profile != FaultProfile(
        loss_probability=profile.loss_probability)


# -- the shrinker ---------------------------------------------------------------------------------------
class ScenarioShrinker:
    """Shrinks ``scenario`` (failing with ``seed``, as ``result`` shows) by the passes above;
    ``best``, ``seed`` and ``best_result`` are the smallest failing run so far. ``confirm``, if
    given, must also hold for a candidate to be kept (a differential oracle: the run passes with
    the suspected bug switched off).

    ``run(scenario, seed)`` runs one simulation; ``base_config`` is the config the varied fields go
    back to; ``progress(text)`` is told about each kept step."""

    def __init__(self, scenario: Scenario, seed: int, result: Result, run: Runner, *,
                 base_config: Any = None, max_runs: int = 150,
                 progress: Callable[[str], None] | None = None,
                 confirm: Callable[[Scenario, int], bool] | None = None) -> None:
        self.best, self.seed, self.best_result = scenario, seed, result
        self.primary = primary_kind(result)
        self._run = run
        self.base_config = base_config
        self.max_runs = max_runs
        self.runs = 0
        self._progress = progress or (lambda text: None)
        self._confirm = confirm  # a differential oracle a kept candidate must also satisfy
        self._cache: dict[str, Result | None] = {f"{seed}\n{scenario_to_yaml(scenario)}": result}

    @property
    def exhausted(self) -> bool:
        return self.runs >= self.max_runs

    def fails(self, candidate: Scenario, seed: int | None = None) -> bool:
        """Run ``candidate`` (with ``seed``, default the current one); if it fails the same way,
        it becomes the best so far, with that seed."""
        seed = self.seed if seed is None else seed
        key = f"{seed}\n{scenario_to_yaml(candidate)}"
        if key in self._cache:
            cached = self._cache[key]
            if cached is not None:
                self.best, self.best_result, self.seed = candidate, cached, seed
            return cached is not None
        if self.exhausted:
            return False
        self.runs += 1
        result = self._run(candidate, seed)
        if result.reason == "interrupted":
            raise KeyboardInterrupt
        failed = same_failure(result, self.primary) and (
            self._confirm is None or self._confirm(candidate, seed))
        self._cache[key] = result if failed else None
        if failed:
            self.best, self.best_result, self.seed = candidate, result, seed
            self._progress(f"shrink run {self.runs}: still fails "
                           f"({', '.join(sorted(failure_kinds(result)))}): "
                           f"{scenario_size(candidate).describe()}")
        return failed

    def shrink(self) -> tuple[Scenario, Result]:
        self._materialise()
        self._kinds()
        self._faults()
        self._drop_loss()
        self._reseed()  # the fault count first: the other passes then run on fewer faults
        self._earlier()
        self._duration()
        self._clients()
        self._knobs()
        self._simplify_faults()
        self._faults()
        self._reseed()
        return self.best, self.best_result

    def _reseed(self, seeds: Sequence[int] = tuple(range(8))) -> None:
        """When no fault can go with this seed, try dropping them under a few other seeds: a bug
        that needs four faults under one interleaving may need two under another. Coarse first,
        as ddmin: each half of the faults under every seed, then each quarter, down to single
        faults. Faults that change every node's timing (a materialised profile's clock drifts, one
        per node) cannot go one by one under the seed that found the failure, since each changes
        the interleaving; all of them together often can under another. Repeated, with the faults
        delta-debugged again under the new seed, while it removes faults."""
        progress = True
        while progress and len(self.best.faults) >= 2 and not self.exhausted:
            progress = False
            faults, chunks = self.best.faults, 2
            while not progress:
                size = math.ceil(len(faults) / chunks)
                for seed in seeds:
                    if seed == self.seed:
                        continue
                    for start in range(0, len(faults), size):
                        candidate = dataclasses.replace(
                            self.best, faults=faults[:start] + faults[start + size:])
                        if self.exhausted:
                            return
                        if self.fails(candidate, seed):
                            self._progress(f"reseeded: simulation seed {seed}")
                            progress = True
                            break
                    if progress:
                        break
                if size == 1:
                    break
                chunks = min(chunks * 2, len(faults))
            if progress:
                self._faults()

    # -- passes ---------------------------------------------------------------------------------------
    def _materialise(self) -> None:
        profile = self.best.random_faults
        if profile is None or self.exhausted:
            return
        candidate = materialise_profile(self.best, self.seed)
        if candidate != self.best:
            self.fails(candidate)

    def _kinds(self, seeds: Sequence[int] = (0, 1, 2, 3)) -> None:
        """Every fault of one kind at once, the most numerous kind first, under this seed and then
        a few others. A materialised profile gives a kind per node (a clock drift and a skew on
        each of nine nodes): noise around the one or two faults that matter, and each of them
        shifts every timer of its node, so that removing any part of it changes the interleaving
        as a new seed would. Removed whole, under a seed or two, it usually goes at once, where
        ddmin under the finding seed would spend the budget on it."""
        counts: dict[str, int] = {}
        for item in self.best.faults:
            counts[item.fault.kind] = counts.get(item.fault.kind, 0) + 1
        for kind in sorted((k for k, n in counts.items() if n >= 2), key=lambda k: -counts[k]):
            kept = tuple(item for item in self.best.faults if item.fault.kind != kind)
            candidate = dataclasses.replace(self.best, faults=kept)
            for seed in (self.seed, *[seed for seed in seeds if seed != self.seed]):
                if self.exhausted:
                    return
                if self.fails(candidate, seed):
                    self._progress(f"dropped every {kind}" + (
                        f" (simulation seed {seed})" if seed != self.seed else ""))
                    break

    def _faults(self) -> None:
        """ddmin over the scripted faults: drop chunks, halving the chunk size down to one."""
        chunks = 2
        while len(self.best.faults) > 0 and not self.exhausted:
            faults = self.best.faults
            size = math.ceil(len(faults) / chunks)
            removed = False
            for start in range(0, len(faults), size):
                candidate = faults[:start] + faults[start + size:]
                if self.fails(dataclasses.replace(self.best, faults=candidate)):
                    removed = True
                    break
            if removed:
                chunks = max(chunks - 1, 2)
            elif size == 1:
                break
            else:
                chunks = min(chunks * 2, len(faults))

    def _earlier(self) -> None:
        """The whole fault timeline moved earlier, its gaps kept: its first fault at a quarter, else
        at half of its time (whole seconds), so that the fault phase can then be cut short."""
        scenario = self.best
        if not scenario.faults or _live_profile(scenario):
            return
        first = min(item.at_s for item in scenario.faults)
        for target in sorted({math.floor(first / 4), math.floor(first / 2)}):
            if 0 < target < first and not self.exhausted:
                shift = first - target
                moved = tuple(ScheduledFault(round(item.at_s - shift, 3), item.fault)
                              for item in scenario.faults)
                if self.fails(dataclasses.replace(scenario, faults=moved)):
                    return

    def _drop_loss(self) -> None:
        if self.best.random_faults is not None and not self.exhausted:
            self.fails(dataclasses.replace(self.best, random_faults=None))

    def _duration(self) -> None:
        scenario = self.best
        if _live_profile(scenario):
            return  # a live random profile draws over the whole phase: its length is its content
        last_start = max((item.at_s for item in scenario.faults), default=0.0)
        last_end = max((item.at_s + (item.fault.duration_s or 0.0) for item in scenario.faults),
                       default=0.0)
        floor = math.floor(last_start) + 1
        candidates = sorted({max(floor, math.ceil(last_end) + extra) for extra in (1, 5)}
                            | {max(floor, math.ceil(scenario.duration_s / 2))})
        for duration in candidates:
            if duration < scenario.duration_s and self.fails(
                    dataclasses.replace(self.best, duration_s=float(duration))):
                break

    def _clients(self) -> None:
        config = self.best.system.config
        for path in list(_client_paths(config)):
            current = _get(self.best.system.config, path)
            for count in sorted({1, 2, current // 4, current // 2}):
                if 0 < count < current and self.fails(self._with_config(
                        _set(self.best.system.config, path, count))):
                    break

    def _knobs(self) -> None:
        base, config = self.base_config, self.best.system.config
        if base is None or type(base) is not type(config) or not dataclasses.is_dataclass(config):
            return
        paths = list(_leaf_paths(config, base))
        if not paths or self.exhausted:
            return
        reset = config
        for path in paths:
            if path[-1] != "clients":
                reset = _set(reset, path, _get(base, path))
        if reset != config and self.fails(self._with_config(reset)):
            return
        for path in paths:
            if path[-1] != "clients":
                self.fails(self._with_config(_set(self.best.system.config, path, _get(base, path))))

    def _simplify_faults(self) -> None:
        """Each fault's fields back to their defaults, one at a time, then its time to a whole
        second (kept one by one, cumulatively)."""
        for index in range(len(self.best.faults)):
            if index >= len(self.best.faults) or self.exhausted:
                return
            fault = self.best.faults[index].fault
            for item in dataclasses.fields(fault):  # type: ignore[arg-type]
                if item.default is dataclasses.MISSING or "param" not in item.metadata or \
                        getattr(fault, item.name) == item.default:
                    continue
                current = self.best.faults[index]
                self._replace_fault(index, ScheduledFault(current.at_s, dataclasses.replace(
                    current.fault, **{item.name: item.default})))
            current = self.best.faults[index]
            if current.at_s != math.floor(current.at_s):
                self._replace_fault(index, ScheduledFault(float(math.floor(current.at_s)),
                                                          current.fault))

    def _replace_fault(self, index: int, scheduled: ScheduledFault) -> bool:
        faults = list(self.best.faults)
        faults[index] = scheduled
        return self.fails(dataclasses.replace(self.best, faults=tuple(faults)))

    def _with_config(self, config: Any) -> Scenario:
        return dataclasses.replace(self.best, system=dataclasses.replace(self.best.system,
                                                                         config=config))

