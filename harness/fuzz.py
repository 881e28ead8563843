"""Fuzzing around a scenario: Hypothesis draws faults, workload and knobs; the simulator the rest.

Theory of operation. ``fuzz(base, settings)`` keeps the base scenario's topology, system, network,
disk and phases, and lets Hypothesis draw, per run, a scenario around it (``harness.strategies``:
scripted faults of every kind in ``FAULT_KINDS`` aimed at the topology's nodes and the system's node
selectors, maybe a random fault profile, and the ``vary`` sections of the system's config, by
default its ``workload``) plus an integer simulation seed. The simulator draws everything else
(every message's delay, every client's keys) from that seed: a Hypothesis test case holds a few
thousand choices, a run makes millions. Each run is judged by every checker the system has (the
base's expectations and variants are dropped: they describe the base's own story).

Exploration (``FuzzSettings.explore``). By default every case is drawn afresh: case ``i`` from the
scenario strategy with a random stream of its own, seeded from (``--seed``, ``i``), through
Hypothesis's generator but not its engine (``_FreshExplorer`` says why: the engine spends a small
budget of one-second runs on minimal examples and near-copies). A case drawn twice is not run
again and does not count. Guided search: after each run, the run's signals (by default the
metrics ``elections``, ``time_without_leader_s``, ``unavailable_s``, ``operations.info``,
``checksum_rejections``… that the system reports) are compared with the best so far; after a
warm-up, a quarter of the cases are drawn near the best run of one signal (its choices kept up to
a random point, the rest drawn afresh), so the search leans towards runs with more elections, more
unavailability, more corruption, where bugs live. ``explore="hypothesis"`` runs Hypothesis's own
engine instead (its generate and target phases, ``hypothesis.target`` fed the same signals); its
shrinker needs it.

On the first failing run, exploration stops and the scenario shrinker
(``harness.scenario_shrink``) reduces the failing scenario, keeping its seed, to few fault actions,
few clients and a short run; ``hypothesis_shrink_runs > 0`` lets Hypothesis's own shrinker go
first, for that many runs. The shrunk scenario is written as YAML, with its seed, to the report
directory, then loaded back from that file and run again: the report says whether the file
reproduces the failure (same failing checks, same trace digest).

Determinism. Fresh draws depend on ``--seed`` and the case's index alone (and guided ones on the
results of earlier runs, themselves deterministic); the engine runs with ``@seed(settings.seed)``,
``database=None`` (no example database: nothing from an earlier run is replayed), no deadline and
no health checks. Either way the same ``--seed`` explores the same cases in the same order;
``FuzzOutcome.exploration_digest`` (SHA-256 of every explored case's YAML and seed) proves it.
``--budget N`` is therefore fully reproducible; ``--time S`` explores the same sequence but stops
where the wall clock says, which is read only between runs, never inside one. The same Hypothesis
version is needed for the same sequence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, reject
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis import target as hypothesis_target
from hypothesis.errors import Unsatisfiable

from harness.result import Result
from harness.scenario import Scenario
from harness.scenario_loader import load_scenario
from harness.scenario_shrink import (
    ScenarioShrinker,
    ScenarioSize,
    failure_kinds,
    primary_kind,
    same_failure,
    scenario_size,
)
from harness.scenario_writer import scenario_to_yaml
from harness.simulation import Simulation
from harness.strategies import FaultSpace, scenarios
from harness.system import resolve_system_class

__all__ = ["DEFAULT_TARGETS", "Finding", "FuzzOutcome", "FuzzSettings", "fuzz"]

# Signals the search maximises, where the system reports them: turbulence (elections, time without
# a leader, unavailability, unknown outcomes, silence) and corruption that reached the system's
# integrity checks (what a corrupting fault did, whatever the system then made of it).
DEFAULT_TARGETS = ("elections", "elections.spurious", "time_without_leader_s", "unavailable_s",
                   "operations.info", "longest_quiet_s", "checksum_rejections")
_SEED_RANGE = 2**32 - 1


@dataclass(frozen=True)
class FuzzSettings:
    """How to fuzz. Exactly one of ``budget`` (runs) and ``time_s`` (wall seconds) is usually given;
    with both, whichever ends first."""

    budget: int | None = 100
    time_s: float | None = None
    seed: int = 0  # Hypothesis's seed: the same seed explores the same cases
    max_faults: int = 6  # scripted faults per run (a random profile may add more)
    kinds: tuple[str, ...] | None = None  # fault kinds or families to draw; None: all
    vary: tuple[str, ...] = ("workload",)  # config fields drawn (those the system's config has)
    random_faults: bool = True  # also draw random fault profiles
    keep_faults: bool = False  # keep the base scenario's scripted faults and add drawn ones
    keep_expectations: bool = False  # judge the base's own expectations too (its invariants)
    targets: tuple[str, ...] | None = None  # metrics for hypothesis.target; None: DEFAULT_TARGETS
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # "kind.field" → values
    shrink: bool = True  # run the scenario shrinker on a failure
    max_shrink_runs: int = 150  # per failure shrunk
    # A failure that does not shrink to at most this many fault actions sends (fresh) exploration
    # on, within the budget, for another one; the smallest shrunk failure is reported. None: the
    # first failure ends exploration, whatever it shrinks to.
    shrink_goal: int | None = None
    hypothesis_shrink_runs: int = 0  # let Hypothesis's own shrinker spend this many runs first
    # How cases are drawn: "fresh" (each from its own seeded stream, see ``_FreshExplorer``) or
    # "hypothesis" (Hypothesis's engine: its generate and target phases; needed by its shrinker).
    explore: str = "fresh"
    guided_share: float = 0.25  # fresh: share of the runs after a warm-up drawn near a best run


@dataclass(frozen=True)
class Finding:
    """A failing run: the scenario, its seed, its result, and when the fuzzer got there."""

    scenario: Scenario
    seed: int
    result: Result
    run: int  # 1-based, counting simulations of the exploration
    wall_s: float  # since the fuzzing started
    cpu_s: float = 0.0  # CPU time of this process since the fuzzing started (load-independent)

    def size(self) -> ScenarioSize:
        return scenario_size(self.scenario, self.seed)


@dataclass
class FuzzOutcome:
    """What a fuzzing session did."""

    base: Scenario
    settings: FuzzSettings
    runs: int = 0  # simulations while exploring (the baseline run not counted)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    stopped: str = "budget"  # budget | time | failure | exhausted | interrupted
    exploration_digest: str = ""
    message_types: tuple[str, ...] = ()
    first: Finding | None = None  # the first failing run
    shrunk: Finding | None = None  # the smallest failing scenario found
    origin: Finding | None = None  # the failing run ``shrunk`` was shrunk from
    failures_shrunk: int = 0  # more than one when the first missed ``settings.shrink_goal``
    shrink_runs: int = 0  # summed over the failures shrunk
    shrink_wall_s: float = 0.0
    path: Path | None = None  # the YAML written
    reproduced: bool | None = None  # the file, loaded and run again, fails the same way
    reproduction: Result | None = None
    unconfirmed: list[Finding] = field(default_factory=list)  # failures ``confirm`` refused

    @property
    def failed(self) -> bool:
        return self.first is not None


class _Failed(Exception):
    """Raised inside the Hypothesis test for a failing run (Hypothesis then stops or shrinks)."""


class _OutOfTime(BaseException):
    """Raised inside the Hypothesis test when ``time_s`` is spent; not an Exception, so Hypothesis
    does not take it for a failure and lets it through."""


def _stripped(scenario: Scenario, keep_expectations: bool) -> Scenario:
    return dataclasses.replace(scenario, variants=(), variant_name=None,
                               expectations=scenario.expectations if keep_expectations else ())


def run_case(scenario: Scenario, seed: int) -> Result:
    """One run of a drawn scenario."""
    return Simulation(scenario, seed).run()


def observe_message_types(scenario: Scenario, seed: int) -> tuple[Result, tuple[str, ...]]:
    """Run ``scenario`` and return the type names of the messages its nodes sent (what a gray link's
    ``message_type`` may name). Observing does not change the run."""
    simulation = Simulation(scenario, seed)
    network = simulation.world.network
    seen: dict[str, None] = {}
    send = network.send

    def observed_send(source: str, destination: str, message: Any, *args: Any, **kwargs: Any
                      ) -> None:
        seen.setdefault(type(message).__name__, None)
        send(source, destination, message, *args, **kwargs)

    network.send = observed_send  # type: ignore[method-assign]
    result = simulation.run()
    return result, tuple(sorted(seen))


def fuzz(base: Scenario, settings: FuzzSettings | None = None, *,
         report_dir: str | Path | None = "reports",
         progress: Callable[[str], None] | None = None,
         run: Callable[[Scenario, int], Result] = run_case,
         confirm: Callable[[Scenario, int], bool] | None = None) -> FuzzOutcome:
    """Explore around ``base`` (see the module's docstring); on a failure, shrink it and write it.

    ``confirm(scenario, seed)``, if given, must also hold for a failing run to count, in exploring
    and in shrinking: a differential oracle, such as "the same run with the suspected bug switched
    off passes" (``benchmarks/bug_hunt.py``). Failing runs it refuses are kept in
    ``FuzzOutcome.unconfirmed`` and exploration goes on."""
    settings = settings or FuzzSettings()
    say = progress or (lambda text: None)
    if base.variants:
        raise ValueError(f"{base.name!r} has variants ({', '.join(v.name for v in base.variants)});"
                         f" fuzz one of them: scenario.variant(NAME)")
    base = _stripped(base, settings.keep_expectations)
    outcome = FuzzOutcome(base=base, settings=settings)
    system_class = resolve_system_class(base.system.use)
    started, cpu_started = time.perf_counter(), time.process_time()
    baseline, outcome.message_types = observe_message_types(base, base.seed)
    say(f"baseline: {base.name} seed {base.seed} {'passed' if baseline.passed else 'FAILED'}; "
        f"message types seen: {', '.join(outcome.message_types) or 'none'}")
    space = FaultSpace.of(base, system_class=system_class, message_types=outcome.message_types,
                          kinds=settings.kinds, bounds=settings.bounds,
                          choices=settings.choices)
    drawn = st.tuples(scenarios(base, space=space, vary=settings.vary,
                                min_faults=min(1, settings.max_faults),
                                max_faults=settings.max_faults,
                                random_faults=settings.random_faults,
                                keep_faults=settings.keep_faults,
                                keep_expectations=settings.keep_expectations),
                      st.integers(0, _SEED_RANGE))
    engine = settings.explore
    if engine not in ("fresh", "hypothesis"):
        raise ValueError(f"FuzzSettings.explore must be 'fresh' or 'hypothesis', not {engine!r}")
    if engine == "fresh" and settings.hypothesis_shrink_runs > 0:
        engine = "hypothesis"  # Hypothesis can shrink only what its own engine found
    if engine == "fresh" and not fresh_draws_supported():
        say("this Hypothesis version lacks the choice-sequence API fresh draws use; exploring "
            "with Hypothesis's engine instead")
        engine = "hypothesis"
    explorer = (_FreshExplorer if engine == "fresh" else _Explorer)(
        settings, run, say, started, cpu_started, confirm)
    if not baseline.passed and (confirm is None or confirm(base, base.seed)):
        # the scenario as written already fails: that is the finding
        explorer.first = Finding(base, base.seed, baseline, 0, time.perf_counter() - started,
                                 time.process_time() - cpu_started)
        explorer.stopped = "failure"
    else:
        try:
            explorer.explore(drawn)
        except KeyboardInterrupt:
            outcome.stopped = "interrupted"
    outcome.runs, outcome.first = explorer.runs, explorer.first
    outcome.unconfirmed = explorer.unconfirmed
    outcome.exploration_digest = explorer.digest.hexdigest()[:16]
    if outcome.stopped != "interrupted":
        outcome.stopped = explorer.stopped
    outcome.wall_s = time.perf_counter() - started
    outcome.cpu_s = time.process_time() - cpu_started
    if outcome.first is None or outcome.stopped == "interrupted":
        return outcome
    found = explorer.smallest or outcome.first
    outcome.shrunk = found
    while settings.shrink:
        shrunk = _shrink(found, base, settings, run, say, confirm, outcome)
        outcome.failures_shrunk += 1
        if outcome.shrunk is found or _size_key(shrunk) < _size_key(outcome.shrunk):
            outcome.shrunk, outcome.origin = shrunk, found
        goal = settings.shrink_goal
        size = outcome.shrunk.size().fault_actions
        if goal is None or size <= goal or outcome.stopped == "interrupted" or \
                not isinstance(explorer, _FreshExplorer):
            break
        say(f"failure {outcome.failures_shrunk} shrank to {shrunk.size().fault_actions} fault "
            f"actions (the smallest so far: {size}), more than the goal of {goal}: exploring on "
            f"for another failure")
        explorer.resume()
        try:
            explorer.explore(drawn)
        except KeyboardInterrupt:
            outcome.stopped = "interrupted"
        outcome.runs = explorer.runs
        outcome.exploration_digest = explorer.digest.hexdigest()[:16]
        if explorer.first is None or outcome.stopped == "interrupted":
            break
        found = explorer.first
    if report_dir is not None:
        outcome.path = write_finding(outcome, report_dir)
        outcome.reproduction = _rerun(outcome.path)
        reference = outcome.shrunk.result
        outcome.reproduced = (not outcome.reproduction.passed
                              and failure_kinds(outcome.reproduction) == failure_kinds(reference)
                              and outcome.reproduction.trace_digest == reference.trace_digest)
    outcome.wall_s = time.perf_counter() - started
    outcome.cpu_s = time.process_time() - cpu_started
    return outcome


def _shrink(found: Finding, base: Scenario, settings: FuzzSettings,
            run: Callable[[Scenario, int], Result], say: Callable[[str], None],
            confirm: Callable[[Scenario, int], bool] | None, outcome: FuzzOutcome) -> Finding:
    """``found`` shrunk (its runs and time added to ``outcome``); on an interrupt, as far as it got."""
    shrink_started = time.perf_counter()
    shrinker = ScenarioShrinker(found.scenario, found.seed, found.result, run,
                                base_config=base.system.config,
                                max_runs=settings.max_shrink_runs, progress=say, confirm=confirm)
    try:
        scenario, result = shrinker.shrink()
    except KeyboardInterrupt:
        scenario, result = shrinker.best, shrinker.best_result
        outcome.stopped = "interrupted"
    outcome.shrink_runs += shrinker.runs
    outcome.shrink_wall_s += time.perf_counter() - shrink_started
    return Finding(scenario, shrinker.seed, result, found.run, found.wall_s, found.cpu_s)


def _size_key(finding: Finding) -> tuple[int, int, float]:
    """Smaller is easier to read: fault actions, then random-fault rates, then the run's length."""
    size = finding.size()
    return size.fault_actions, size.random_rates, size.duration_s


class _Explorer:
    """The Hypothesis side: runs drawn cases, feeds targets, remembers the first failure."""

    def __init__(self, settings: FuzzSettings, run: Callable[[Scenario, int], Result],
                 say: Callable[[str], None], started: float, cpu_started: float,
                 confirm: Callable[[Scenario, int], bool] | None = None) -> None:
        self.settings, self._run, self._say, self._started = settings, run, say, started
        self._cpu_started, self._confirm = cpu_started, confirm
        self.unconfirmed: list[Finding] = []
        self._refused: set[tuple[str, int]] = set()  # failing cases ``confirm`` refused
        self.runs = 0
        self.first: Finding | None = None
        self.smallest: Finding | None = None  # with Hypothesis shrinking: its latest failure
        self.stopped = "budget"
        self.digest = hashlib.sha256()
        self._results: dict[tuple[str, int], Result] = {}
        self._shrink_runs = 0

    def explore(self, drawn: st.SearchStrategy[tuple[Scenario, int]]) -> None:
        settings = self.settings
        phases = [Phase.generate, Phase.target]
        if settings.hypothesis_shrink_runs > 0:
            phases.append(Phase.shrink)
        budget = settings.budget if settings.budget is not None else 10**9

        @hypothesis_seed(settings.seed)
        @hypothesis_settings(max_examples=budget, database=None, deadline=None,
                             derandomize=False, phases=phases, report_multiple_bugs=False,
                             suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                             print_blob=False)
        @given(drawn)
        def explore(case: tuple[Scenario, int]) -> None:
            self.case(*case)

        try:
            explore()
        except _OutOfTime:
            self.stopped = "time"
        except _Failed:
            self.stopped = "failure"
        except Unsatisfiable:  # every case Hypothesis could draw was already run
            self.stopped = "exhausted"
        except Exception:
            if self.first is None:
                raise
            self.stopped = "failure"
        else:
            if settings.budget is not None and self.runs < settings.budget:
                self.stopped = "exhausted"  # Hypothesis found no new case to try

    def case(self, scenario: Scenario, seed: int) -> None:
        key = (scenario_to_yaml(scenario), seed)
        result = self._results.get(key)
        if result is None:
            result = self._new_run(scenario, seed, key)
            if result is None:
                return  # Hypothesis's shrinking budget is spent: counts as passing
        elif result.passed or key in self._refused:
            reject()  # drawn again (a mutation): not a new case, not counted against the budget
        if self._fails(result) and key not in self._refused:
            # The one place a failure is raised: Hypothesis tells failures apart by where they
            # are raised, and its final replay of a failing case comes through here too.
            raise _Failed(result.failures[0].describe() if result.failures else result.reason)

    def resume(self) -> None:
        """Explore on after a failure, for another (``FuzzSettings.shrink_goal``): the next
        ``explore`` goes on with the next case, the budget counting on."""
        self.first = self.smallest = None
        self.stopped = "budget"

    def _fails(self, result: Result) -> bool:
        """A failure; while Hypothesis shrinks, only the same failure as the first counts."""
        if self.first is None:
            return not result.passed
        return same_failure(result, primary_kind(self.first.result))

    def _new_run(self, scenario: Scenario, seed: int, key: tuple[str, int]) -> Result | None:
        if self.first is not None:  # Hypothesis is shrinking
            if self._shrink_runs >= self.settings.hypothesis_shrink_runs:
                return None
            self._shrink_runs += 1
        elif self._out_of_time():
            raise _OutOfTime
        result = self._run(scenario, seed)
        if result.reason == "interrupted":
            raise KeyboardInterrupt
        self._results[key] = result
        if self.first is None:
            self.runs += 1
            self.digest.update(f"{seed}\n{key[0]}\0".encode())
        self._report(scenario, seed, result)
        self._target(result)
        if self._fails(result):
            finding = Finding(scenario, seed, result, self.runs,
                              time.perf_counter() - self._started,
                              time.process_time() - self._cpu_started)
            if self._confirm is not None and not self._confirm(scenario, seed):
                self._refused.add(key)
                if self.first is None:
                    self.unconfirmed.append(finding)
                    self._say(f"run {self.runs}: not confirmed (the oracle refused it); going on")
                return result
            if self.first is None:
                self.first = finding
            self.smallest = finding
        return result

    def _out_of_time(self) -> bool:
        limit = self.settings.time_s
        return limit is not None and time.perf_counter() - self._started >= limit

    def _target(self, result: Result) -> None:
        names = self.settings.targets if self.settings.targets is not None else DEFAULT_TARGETS
        for name in names:
            value = result.metrics.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                hypothesis_target(float(value), label=name)

    def _report(self, scenario: Scenario, seed: int, result: Result) -> None:
        size = scenario_size(scenario)
        if self.first is None:
            budget = f"/{self.settings.budget}" if self.settings.budget is not None else ""
            label = f"run {self.runs}{budget}"
        else:
            label = f"hypothesis shrink run {self._shrink_runs}"
        verdict = "passed" if result.passed else \
            f"FAILED ({', '.join(sorted(failure_kinds(result))) or result.reason})"
        signals = ", ".join(f"{name}={result.metrics[name]:g}" for name in
                            ("elections", "time_without_leader_s") if name in result.metrics)
        self._say(f"{label}: seed {seed}, {size.describe()}: {verdict}"
                  + (f" [{signals}]" if signals else ""))


class _FreshExplorer(_Explorer):
    """Fresh draws: case ``i`` is drawn from the scenario strategy with its own random stream,
    seeded from (``--seed``, ``i``) by SHA-256, through Hypothesis's own generator
    (``draw_case``) but not its engine. The engine is built for tests that take microseconds: of
    a small budget it spends the first tenth on minimal examples (one fault, the first kind, the
    first node), follows every example with up to five copies of it with one part duplicated,
    and from half the budget on hill-climbs its targets one small step at a time. Where a run
    takes a second, that is most of the budget spent near a few cases (measured with
    ``benchmarks/bug_hunt.py``: in one hunt, 104 of 200 runs had simulation seed 0 and 35 seeds
    were distinct; its generation alone gave 134 single-fault cases of 200); fresh draws give
    200 different cases (194 distinct seeds).

    Guidance, the part of ``target()`` that pays at this budget: after a warm-up (a fifth of the
    budget, at least 10 runs), a share of the cases (``guided_share``) is drawn near the best run
    so far of a target signal (one of them at random), from its choice sequence, half of them
    each way: cut (kept up to a random point, the rest drawn afresh: the choices are drawn in the
    order faults, random profile, workload, simulation seed, so a cut keeps the first faults and
    redraws the others, or keeps every fault and redraws the workload and the seed) or mutated
    (one to three choices drawn afresh within their own bounds, the rest kept: one field of one
    fault, say, its destination or its probability; where a changed choice changes the shape,
    a fault of another kind, the choices after it that no longer fit take their simplest value)."""

    _MAX_MISSES = 1000  # draws in a row that are invalid or already run: the space is exhausted

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._best: dict[str, tuple[float, tuple[Any, ...]]] = {}  # target → (score, nodes)
        self._nodes: tuple[Any, ...] = ()  # the choice nodes of the case being run
        self._origin = ""
        self._index = 0  # the next case to draw

    def explore(self, drawn: st.SearchStrategy[tuple[Scenario, int]]) -> None:
        settings = self.settings
        budget = settings.budget
        warm_up = max(10, budget // 5) if budget is not None else 20
        misses = 0
        while budget is None or self.runs < budget:
            rng = random.Random(case_seed(settings.seed, self._index))
            self._index += 1  # (kept: after ``resume`` the exploration goes on where it was)
            prefix: tuple[Any, ...] = ()
            self._origin = ""
            if self._best and self.runs >= warm_up and rng.random() < settings.guided_share:
                label = rng.choice(sorted(self._best))
                nodes = self._best[label][1]
                if rng.random() < 0.5:
                    prefix = tuple(node.value for node in nodes[:rng.randrange(len(nodes))])
                    how = "cut"
                else:
                    prefix, how = mutated(nodes, rng, rng.randint(1, 3)), "mutated"
                self._origin = f" (near the best {label} so far: {how})"
            case = draw_case(drawn, rng, prefix)
            key = None if case is None else (scenario_to_yaml(case[0][0]), case[0][1])
            if case is None or key in self._results:
                misses += 1
                if misses >= self._MAX_MISSES:
                    self.stopped = "exhausted"
                    return
                continue
            misses = 0
            (scenario, seed), self._nodes = case
            try:
                result = self._new_run(scenario, seed, key)
            except _OutOfTime:
                self.stopped = "time"
                return
            assert result is not None
            if self._fails(result) and key not in self._refused:
                self.stopped = "failure"
                return

    def _target(self, result: Result) -> None:
        names = self.settings.targets if self.settings.targets is not None else DEFAULT_TARGETS
        for name in names:
            value = result.metrics.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 \
                    and value > self._best.get(name, (0.0, ()))[0]:
                self._best[name] = (float(value), self._nodes)

    def _report(self, scenario: Scenario, seed: int, result: Result) -> None:
        say = self._say
        self._say = lambda text: say(text + self._origin)
        try:
            super()._report(scenario, seed, result)
        finally:
            self._say = say


def case_seed(seed: int, index: int) -> int:
    """The seed of the random stream case ``index`` of a fresh exploration is drawn from."""
    return int.from_bytes(hashlib.sha256(f"graylink-fuzz/{seed}/{index}".encode()).digest()[:8],
                          "big")


def draw_case(strategy: st.SearchStrategy[Any], rng: random.Random,
              prefix: Sequence[Any] = ()) -> tuple[Any, tuple[Any, ...]] | None:
    """One value of ``strategy`` drawn by Hypothesis's generator from ``rng`` (its first choices
    taken from ``prefix``, choice values), with the choice nodes that make it (each node's
    ``value``, ``type`` and ``constraints``); None if the draw was invalid (a filter refused it).
    Uses Hypothesis's internal ``ConjectureData``, as HypoFuzz does: the public API draws only
    inside its engine."""
    from hypothesis.control import BuildContext
    from hypothesis.errors import StopTest
    from hypothesis.internal.conjecture.data import ConjectureData

    data = ConjectureData(random=rng, prefix=tuple(prefix) or None)
    try:
        with BuildContext(data, wrapped_test=None):  # type: ignore[arg-type]
            value = data.draw(strategy)
    except StopTest:
        return None
    return value, tuple(data.nodes)


def mutated(nodes: Sequence[Any], rng: random.Random, count: int = 1) -> tuple[Any, ...]:
    """The choice values of ``nodes`` with ``count`` of them (not forced ones) drawn afresh from
    ``rng`` within their own type and constraints."""
    from hypothesis.internal.conjecture.data import ConjectureData

    values = [node.value for node in nodes]
    free = [index for index, node in enumerate(nodes) if not node.was_forced]
    scratch = ConjectureData(random=rng)
    for index in rng.sample(free, min(count, len(free))):
        node = nodes[index]
        values[index] = getattr(scratch, f"draw_{node.type}")(**node.constraints)
    return tuple(values)


def fresh_draws_supported() -> bool:
    """Whether this Hypothesis has the choice-sequence API ``draw_case`` and ``mutated`` need
    (6.1xx does)."""
    strategy = st.lists(st.integers(0, 9), min_size=2)
    try:
        first = draw_case(strategy, random.Random(1))
        if first is None:
            return False
        again = draw_case(strategy, random.Random(2), tuple(node.value for node in first[1]))
        changed = draw_case(strategy, random.Random(3), mutated(first[1], random.Random(4), 5))
    except Exception:  # noqa: BLE001 - any change of the internal API
        return False
    return again is not None and again[0] == first[0] and changed is not None


# -- the written scenario ---------------------------------------------------------------------------
def finding_name(base: Scenario, finding: Finding) -> str:
    return f"{base.name}-fuzz-seed{finding.seed}"


def write_finding(outcome: FuzzOutcome, report_dir: str | Path) -> Path:
    """The shrunk failing scenario as YAML, its seed as the file's seed, ready for ``graylink run``;
    its text report beside it."""
    assert outcome.shrunk is not None and outcome.first is not None
    shrunk, first, base = outcome.shrunk, outcome.origin or outcome.first, outcome.base
    kinds = ", ".join(sorted(failure_kinds(shrunk.result)))
    source = base.source or base.name
    command = f"graylink fuzz {source} --seed {outcome.settings.seed}"
    description = (
        f"Found by `{command}` "
        f"{f'at run {first.run}' if first.run else 'in its baseline run'} "
        f"({first.wall_s:.1f} s): {kinds} failed.\n"
        f"Shrunk from {first.size().describe()}\n"
        f"to {shrunk.size().describe()}.\n"
        + (f"(Failure {outcome.failures_shrunk} of this exploration: the ones before shrank to "
           f"more than {outcome.settings.shrink_goal} fault actions, the goal.)\n"
           if outcome.origin is not None and outcome.origin is not outcome.first else "")
        + f"`graylink run` on this file reproduces it (exit 1). To keep it as a regression test, "
        f"add `expect: [check <name> passes]` once fixed.\n")
    if base.description:
        description += f"\nThe scenario it was fuzzed from:\n{base.description}"
    scenario = dataclasses.replace(shrunk.scenario, name=finding_name(base, shrunk),
                                   description=description, seed=shrunk.seed, source=None)
    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_slug(scenario.name)}.yaml"
    path.write_text(scenario_to_yaml(scenario), encoding="utf-8")
    path.with_suffix(".txt").write_text(shrunk.result.render_text() + "\n", encoding="utf-8")
    return path


def _rerun(path: Path) -> Result:
    """The written file, loaded as ``graylink run`` loads it, run with its own seed."""
    scenario = load_scenario(path)
    return Simulation(scenario, scenario.seed).run()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "scenario"


# -- the summary ------------------------------------------------------------------------------------
def render_summary(outcome: FuzzOutcome, command: str) -> str:
    lines = [command]
    settings = outcome.settings
    if outcome.first is None:
        verdict = {"interrupted": "INTERRUPTED", "time": "PASSED (time budget spent)",
                   "exhausted": "PASSED (Hypothesis found no new case to try)"}.get(
            outcome.stopped, "PASSED")
        lines.append(f"{verdict}: no failure in {outcome.runs} runs ({outcome.wall_s:.1f} s)")
    else:
        first, shrunk = outcome.first, outcome.shrunk
        assert shrunk is not None
        where = (f"at run {first.run}" if first.run else "in the scenario as written (its "
                 "baseline run), before any exploration")
        lines.append(f"FAILED: {', '.join(sorted(failure_kinds(first.result)))} failed {where} "
                     f"({first.wall_s:.1f} s, {first.cpu_s:.1f} s CPU), simulation seed "
                     f"{first.seed}")
        lines.append(f"  first failing scenario: {first.size().describe()}")
        if settings.shrink:
            origin = outcome.origin or first
            if origin is not first:
                lines.append(f"  {outcome.failures_shrunk} failures shrunk (the goal: at most "
                             f"{settings.shrink_goal} fault actions); the smallest is the one "
                             f"at run {origin.run}: {origin.size().describe()}")
            lines.append(f"  shrunk in {outcome.shrink_runs} runs ({outcome.shrink_wall_s:.1f} s) "
                         f"to: {shrunk.size().describe()}"
                         + _operations(shrunk.result))
        for scheduled in shrunk.scenario.faults:
            lines.append(f"    {scheduled.describe()}")
        for failure in shrunk.result.failures[:3]:
            lines.append("  " + failure.describe().splitlines()[0])
        if outcome.path is not None:
            lines.append(f"  written: {outcome.path} (and {outcome.path.with_suffix('.txt').name})")
            state = ("reproduces the failure, same trace digest" if outcome.reproduced else
                     "DOES NOT reproduce the failure exactly (a nondeterminism bug: please report)")
            lines.append(f"  graylink run {outcome.path}: {state}")
    lines.append(f"  exploration digest {outcome.exploration_digest} over {outcome.runs} runs "
                 f"(the same --seed explores the same cases)")
    return "\n".join(lines)


def _operations(result: Result) -> str:
    count = operation_count(result)
    return "" if count is None else f", {count} operations"


def operation_count(result: Result) -> int | None:
    """Client operations of the run, where the system reports them (``operations.ok`` etc.)."""
    parts = [result.metrics.get(f"operations.{outcome}") for outcome in ("ok", "fail", "info")]
    if all(isinstance(part, (int, float)) for part in parts):
        return int(sum(parts))  # type: ignore[arg-type]
    return None


def parse_choices(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``kind.field=A,B`` items (the CLI's ``--choices``): the field is drawn from those values."""
    choices: dict[str, tuple[str, ...]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        words = tuple(word.strip() for word in values.split(",") if word.strip())
        if not (sep and name.strip() and words):
            raise ValueError(f"--choices {item!r}: write FIELD=A,B, e.g. deploy.version=v1,v2")
        choices[name.strip()] = words
    return choices


def parse_bounds(items: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``kind.field=LOW:HIGH`` items (the CLI's ``--bound``)."""
    bounds: dict[str, tuple[float, float]] = {}
    for item in items:
        name, sep, span = item.partition("=")
        low, colon, high = span.partition(":")
        try:
            if not (sep and colon and name):
                raise ValueError
            bounds[name.strip()] = (float(low), float(high))
        except ValueError:
            raise ValueError(f"--bound {item!r}: write FIELD=LOW:HIGH, e.g. "
                             f"clock_drift.drift_ppm=-50000:50000") from None
    return bounds
