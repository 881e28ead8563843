"""Graylink in pytest: scenario files as test items, seeds as parameters, fixtures for Python tests.

Registered as the ``graylink`` plugin through the ``pytest11`` entry point, so it is active wherever
Graylink is installed (``pytest -p no:graylink`` switches it off).

Which YAML files are scenarios. A ``.yaml``/``.yml`` file is collected only if its top level has both
a ``topology:`` and a ``system:`` key (checked on the text, at column 0: CI configs, compose files and
other YAML never have both), *and* either

- it, or a directory above it, was named on the command line (``pytest scenarios/``,
  ``pytest scenarios/s01-leader-crash.yaml``), or
- it matches a glob of the ``graylink_scenarios`` ini setting, relative to the rootdir (e.g.
  ``graylink_scenarios = ["scenarios/*.yaml"]``), which is how a plain ``pytest`` (testpaths) includes
  a library. Directories reached only through ``testpaths`` are otherwise not searched for scenarios.

A scenario file that fails validation is a collection error showing its file, line and field.

Items. Each file gives one item per variant × seed, named ``<variant>[seed<N>]`` (``<name>[seed<N>]``
for a file without variants). The seeds:

- default: the scenario's own seed (as ``graylink run``);
- ``--graylink-seed N``: just N, for every file (and every Python test using ``graylink_seed``);
- ``--graylink-seeds K``: K seeds derived from the base seed and the scenario's name
  (``harness.sweep.derive_seeds``; for a Python test, from its node id), the same seeds
  ``graylink sweep --seeds K --base-seed B`` runs;
- the base seed is ``--graylink-base-seed B`` (or the ``graylink_base_seed`` ini setting; ``random``
  draws one), else 0. The report header prints it.

Failing seeds are remembered in pytest's cache (``.pytest_cache``, key ``graylink/failing-seeds``),
per file and variant (per test function for Python tests), like Hypothesis's example database: the
next run adds them to the items and runs them before everything else; a remembered seed that passes
is forgotten. With ``-p no:cacheprovider`` nothing is remembered. ``--graylink-seed N`` runs only N.

A failing item shows the command that reproduces it (``graylink run FILE --seed N --variant V``, and
the pytest command) and the run's text report, its evidence (``Result.render_text()``).
``--graylink-report-dir DIR`` writes every item's JSON, text and history reports there.

Determinism mode (``--graylink-determinism``): each scenario item also runs in two fresh processes
with ``PYTHONHASHSEED`` 1 and 2, and every trace digest must equal the in-process one; a mismatch
fails the item with ``graylink check-determinism``'s first diverging event. A Python test's runs
(``graylink_run``) are repeated in-process instead (catching state leaking between runs; hash-order
bugs need a fresh process, hence a scenario file).

Fixtures for Python tests: ``graylink_seed`` (the test's seed, parametrized as above),
``graylink_run`` (``graylink_run(scenario)`` runs it with the test's seed and returns the ``Result``;
its evidence joins the failure report), ``graylink_scenario`` (what ``graylink_simulation`` runs;
default: the ``graylink_cluster`` fixture, which ``systems.dynamo.pytest_fixtures`` provides with
``graylink_workload``; override either in a conftest or module), ``graylink_simulation`` (the
``Simulation`` of ``graylink_scenario`` with the test's seed, after its run), ``graylink_result`` (its
``Result``) and ``graylink_history`` (the ``History`` its clients recorded).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.history import History
    from harness.result import Result
    from harness.scenario import Scenario
    from harness.simulation import Simulation

CACHE_KEY = "graylink/failing-seeds"
SEED_FIXTURE = "graylink_seed"
_TOP_LEVEL = (re.compile(r"^topology[ \t]*:", re.MULTILINE), re.compile(r"^system[ \t]*:", re.MULTILINE))
_MAX_SCENARIO_BYTES = 4 * 1024 * 1024


# -- options ---------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("graylink", "Graylink deterministic fault-injection scenarios")
    group.addoption("--graylink-seed", type=_non_negative, default=None, metavar="N",
                    help="run every scenario (and Python test using graylink_seed) with seed N "
                         "only: replay one seed")
    group.addoption("--graylink-seeds", type=_positive, default=None, metavar="K",
                    help="K seeds per scenario file (per Python test), derived from the base seed "
                         "and the scenario's name (the test's id)")
    group.addoption("--graylink-base-seed", default=None, metavar="B",
                    help="the base seed the K seeds derive from (an integer, or 'random'); default "
                         "the graylink_base_seed ini setting, else 0; printed in the header")
    group.addoption("--graylink-report-dir", default=None, metavar="DIR",
                    help="write every run's JSON, text and history reports to DIR")
    group.addoption("--graylink-determinism", action="store_true", default=None,
                    help="run each scenario item again in two fresh processes (PYTHONHASHSEED 1 "
                         "and 2) and each Python test's runs twice; the digests must agree")
    parser.addini("graylink_seeds", "default of --graylink-seeds (empty: each scenario's own seed)",
                  default="")
    parser.addini("graylink_base_seed", "default of --graylink-base-seed", default="0")
    parser.addini("graylink_report_dir", "default of --graylink-report-dir (empty: no reports)",
                  default="")
    parser.addini("graylink_determinism", "default of --graylink-determinism", type="bool",
                  default=False)
    parser.addini("graylink_scenarios", "globs (relative to the rootdir) of scenario files to collect "
                  "even when not named on the command line", type="args", default=[])


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {value}")
    return value


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(str(text).strip(), 10)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


@dataclasses.dataclass
class Settings:
    """The plugin's settings for one session, from the options and ini file."""

    seed: int | None
    seeds: int | None
    base_seed: int
    base_seed_origin: str
    report_dir: str
    determinism: bool
    globs: list[str]
    explicit: list[Path]
    rootpath: Path
    invocation_dir: Path
    database: SeedDatabase

    def wants(self, path: Path) -> bool:
        """Named on the command line (or below something that was), or matching an ini glob."""
        resolved = path.resolve()
        if any(resolved == root or root in resolved.parents for root in self.explicit):
            return True
        try:
            relative = resolved.relative_to(self.rootpath).as_posix()
        except ValueError:
            relative = resolved.as_posix()
        return any(fnmatch.fnmatch(relative, glob) for glob in self.globs)

    def planned_seeds(self, key: str, own_seed: int | None) -> list[int]:
        """The seeds a file (own_seed: its scenario's seed) or Python test runs, before replays."""
        from harness.sweep import derive_seeds

        if self.seed is not None:
            return [self.seed]
        if self.seeds is None and own_seed is not None:
            return [own_seed]
        return derive_seeds(self.base_seed, key, self.seeds or 1)

    def seeds_for(self, key: str, seed_key: str, own_seed: int | None) -> list[int]:
        """Remembered failing seeds of ``key`` first (unless one seed was asked for), then the
        planned ones; each once."""
        planned = self.planned_seeds(seed_key, own_seed)
        if self.seed is not None:
            return planned
        return list(dict.fromkeys([*self.database.remembered(key), *planned]))


_SETTINGS = pytest.StashKey[Settings]()
_TRACKED = pytest.StashKey[dict[str, tuple[str, int]]]()  # nodeid -> (database key, seed)
_RECORDER = pytest.StashKey["_Recorder"]()


def pytest_configure(config: pytest.Config) -> None:
    seed = config.getoption("graylink_seed")
    seeds = config.getoption("graylink_seeds")
    if seed is not None and seeds is not None:
        raise pytest.UsageError("--graylink-seed N replays one seed; --graylink-seeds K runs K: "
                                "give one of them")
    try:
        if seeds is None and str(config.getini("graylink_seeds")).strip():
            seeds = _positive(config.getini("graylink_seeds"))
        base_text = config.getoption("graylink_base_seed")
        origin = "--graylink-base-seed"
        if base_text is None:
            base_text, origin = str(config.getini("graylink_base_seed")).strip() or "0", "ini"
            if base_text == "0":
                origin = "default"
        if base_text == "random":
            from harness.sweep import SEED_SPACE

            base_seed, origin = secrets.randbelow(SEED_SPACE), f"drawn at random ({origin})"
        else:
            base_seed = _non_negative(base_text)
    except ValueError as error:
        raise pytest.UsageError(f"graylink: {error}") from None
    determinism = config.getoption("graylink_determinism")
    if determinism is None:
        determinism = bool(config.getini("graylink_determinism"))
    report_dir = config.getoption("graylink_report_dir") or str(config.getini("graylink_report_dir"))
    config.stash[_SETTINGS] = Settings(
        seed=seed, seeds=seeds, base_seed=base_seed, base_seed_origin=origin,
        report_dir=report_dir, determinism=determinism,
        globs=list(config.getini("graylink_scenarios")), explicit=_explicit_paths(config),
        rootpath=config.rootpath.resolve(), invocation_dir=config.invocation_params.dir,
        database=SeedDatabase(getattr(config, "cache", None)))
    config.stash[_TRACKED] = {}
    config.stash[_RECORDER] = _Recorder(config)
    config.pluginmanager.register(config.stash[_RECORDER], "graylink-recorder")


def _explicit_paths(config: pytest.Config) -> list[Path]:
    """The paths named on the command line (not those that came from ``testpaths``)."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    base = config.invocation_params.dir
    return [(base / arg.split("::")[0]).resolve() for arg in config.args]


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        return []
    if settings.seed is not None:
        seeds = f"seed {settings.seed} only (--graylink-seed)"
    elif settings.seeds is not None:
        seeds = f"{settings.seeds} seeds per scenario file and test, derived from the base seed"
    else:
        seeds = "each scenario's own seed; one derived seed per Python test"
    remembered = settings.database.count()
    memory = "failing seeds not remembered (no cache provider)"
    if settings.database.enabled:
        memory = (f"{remembered} remembered failing seed{'s' if remembered != 1 else ''}"
                  + (", replayed first" if remembered and settings.seed is None else ""))
    mode = "on" if settings.determinism else "off"
    header = (f"graylink: base seed {settings.base_seed} ({settings.base_seed_origin}); {seeds}; "
              f"{memory}; determinism mode {mode}")
    return [header]


# -- the failing-seed database ---------------------------------------------------------------------
class SeedDatabase:
    """Failing seeds per key (a file and variant, or a test function), kept in pytest's cache."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        stored = cache.get(CACHE_KEY, {}) if cache is not None else {}
        self.seeds: dict[str, list[int]] = {
            str(key): [seed for seed in value if isinstance(seed, int)]
            for key, value in (stored.items() if isinstance(stored, dict) else ())
            if isinstance(value, list)}
        self.changed = False

    @property
    def enabled(self) -> bool:
        return self.cache is not None

    def remembered(self, key: str) -> list[int]:
        return list(self.seeds.get(key, ()))

    def count(self) -> int:
        return sum(len(seeds) for seeds in self.seeds.values())

    def record(self, key: str, seed: int, failed: bool) -> None:
        seeds = self.seeds.setdefault(key, [])
        if failed and seed not in seeds:
            seeds.append(seed)
            self.changed = True
        elif not failed and seed in seeds:
            seeds.remove(seed)
            self.changed = True
        if not seeds:
            del self.seeds[key]

    def save(self) -> None:
        if self.cache is not None and self.changed:
            self.cache.set(CACHE_KEY, {key: sorted(seeds) for key, seeds in sorted(self.seeds.items())})


# -- collecting scenario files ---------------------------------------------------------------------
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    settings = parent.config.stash.get(_SETTINGS, None)
    if settings is None or not settings.wants(file_path) or not looks_like_scenario(file_path):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


def looks_like_scenario(path: Path) -> bool:
    """Both ``topology:`` and ``system:`` as top-level keys (column 0), judged on the text."""
    try:
        if path.stat().st_size > _MAX_SCENARIO_BYTES:
            return False
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError:
        return False
    return all(pattern.search(text) for pattern in _TOP_LEVEL)


class ScenarioFile(pytest.File):
    """A scenario YAML file: one item per variant × seed."""

    def collect(self) -> Iterator[ScenarioItem]:
        from harness.errors import ScenarioError
        from harness.scenario_loader import load_scenario

        settings = self.config.stash[_SETTINGS]
        try:
            scenario = load_scenario(self.path)
        except ScenarioError as error:
            raise self.CollectError(f"invalid scenario file: {error}") from None
        scenario = dataclasses.replace(scenario, source=_display_path(self.path,
                                                                      settings.invocation_dir))
        for run in scenario.variant_scenarios():
            label = run.variant_name or scenario.name
            key = f"{self.nodeid}::{label}"
            for seed in settings.seeds_for(key, scenario.name, scenario.seed):
                yield ScenarioItem.from_parent(self, name=f"{label}[seed{seed}]", scenario=run,
                                               seed=seed, key=key)


def _display_path(path: Path, invocation_dir: Path) -> str:
    """The path as the user would type it from where pytest was started."""
    relative = os.path.relpath(path, invocation_dir)
    return str(path) if relative.startswith("..") else relative


class GraylinkFailure(Exception):
    """A failed item: its text is the whole failure report (reproduction first)."""


class ScenarioItem(pytest.Item):
    """One run: a scenario file's variant with one seed."""

    def __init__(self, *, scenario: Scenario, seed: int, key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.seed = seed
        self.key = key
        self.result: Result | None = None

    def runtest(self) -> None:
        from harness.simulation import Simulation

        settings = self.config.stash[_SETTINGS]
        simulation = Simulation(self.scenario, self.seed)
        result = self.result = simulation.run()
        written = _write_reports(settings, result, simulation)
        if result.reason == "interrupted":
            raise KeyboardInterrupt
        problem = self._determinism_problem(result) if settings.determinism else None
        if problem is None and result.passed:
            return
        lines = [f"reproduce: {result.reproduce}", f"       or: {self.pytest_command()}"]
        if problem is not None:
            lines += ["", problem]
        lines += ["", result.render_text()] + [
            f"  report: {_display_path(path, settings.invocation_dir)}" for path in written]
        raise GraylinkFailure("\n".join(lines))

    def pytest_command(self) -> str:
        settings = self.config.stash[_SETTINGS]
        file_part = _display_path(self.path, settings.invocation_dir)
        return f"pytest {shlex.quote(f'{file_part}::{self.name}')} --graylink-seed {self.seed}"

    def _determinism_problem(self, result: Result) -> str | None:
        """None if two fresh processes (PYTHONHASHSEED 1 and 2) give this run's digest."""
        digests = {"this process": result.trace_digest}
        for hash_seed in ("1", "2"):
            summary = _fresh_run(self._command("run", "--json", "--report-dir", ""), hash_seed,
                                 self.config.invocation_params.dir)
            digests[f"PYTHONHASHSEED={hash_seed}"] = str(summary["trace_digest"])
        if len(set(digests.values())) == 1:
            return None
        lines = ["NOT deterministic: the same seed gave different traces"]
        lines += [f"  {where}: digest {digest}" for where, digest in digests.items()]
        explained = subprocess.run(self._command("check-determinism"), capture_output=True,
                                   text=True, env=_child_environment("0"), check=False,
                                   cwd=self.config.invocation_params.dir)
        lines += ["", explained.stdout.rstrip()]
        return "\n".join(lines)

    def _command(self, command: str, *options: str) -> list[str]:
        argv = [sys.executable, "-m", "harness", command, str(self.path), "--seed", str(self.seed),
                *options]
        if self.scenario.variant_name is not None:
            argv += ["--variant", self.scenario.variant_name]
        return argv

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, GraylinkFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.scenario.name} seed {self.seed}"


def _fresh_run(argv: list[str], hash_seed: str, cwd: Path) -> dict[str, Any]:
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd,
                               env=_child_environment(hash_seed))
    if completed.returncode not in (0, 1):
        raise GraylinkFailure(f"the run in a fresh process (PYTHONHASHSEED={hash_seed}) exited "
                              f"{completed.returncode}:\n{completed.stderr or completed.stdout}")
    return dict(json.loads(completed.stdout))


def _child_environment(hash_seed: str) -> dict[str, str]:
    """This process's import path (so the child finds the same systems), another hash seed."""
    paths = [entry for entry in sys.path if entry and os.path.isdir(entry)]
    existing = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONHASHSEED=hash_seed,
                PYTHONPATH=os.pathsep.join([*paths, *([existing] if existing else [])]))


def _write_reports(settings: Settings, result: Result, simulation: Simulation) -> list[Path]:
    if not settings.report_dir:
        return []
    from harness.sweep import write_reports

    directory = Path(settings.report_dir)
    if not directory.is_absolute():
        directory = settings.invocation_dir / directory
    return write_reports(result, directory, getattr(simulation.system, "history", None))


# -- seeds for Python tests, ordering, remembering -------------------------------------------------
def _function_key(nodeid: str) -> str:
    """A test function's node id without its parameters: the database key of its seeds."""
    return nodeid.split("[", 1)[0]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if SEED_FIXTURE not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if SEED_FIXTURE in (names.replace(" ", "").split(",") if isinstance(names, str)
                            else list(names)):
            return  # the test chose its seeds itself
    settings = metafunc.config.stash[_SETTINGS]
    key = _function_key(metafunc.definition.nodeid)
    seeds = settings.seeds_for(key, key, None)
    metafunc.parametrize(SEED_FIXTURE, seeds, ids=[f"seed{seed}" for seed in seeds])


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Track every seeded item; move the replays of remembered failing seeds to the front."""
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        return
    tracked = config.stash[_TRACKED]
    for item in items:
        if isinstance(item, ScenarioItem):
            tracked[item.nodeid] = (item.key, item.seed)
        else:
            params = getattr(getattr(item, "callspec", None), "params", {})
            if isinstance(params.get(SEED_FIXTURE), int):
                tracked[item.nodeid] = (_function_key(item.nodeid), params[SEED_FIXTURE])

    def replay(item: pytest.Item) -> bool:
        entry = tracked.get(item.nodeid)
        return entry is not None and entry[1] in settings.database.remembered(entry[0])

    items[:] = sorted(items, key=lambda item: not replay(item))  # stable: otherwise unchanged


class _Recorder:
    """Remembers the outcome of every seeded item (a plugin object per session: it knows its config)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.config.stash[_TRACKED].get(report.nodeid)
        if entry is None:
            return
        database = self.config.stash[_SETTINGS].database
        if report.failed:
            database.record(*entry, failed=True)
        elif report.when == "call" and report.passed:
            database.record(*entry, failed=False)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.config.stash[_SETTINGS].database.save()


def pytest_unconfigure(config: pytest.Config) -> None:
    recorder = config.stash.get(_RECORDER, None)
    if recorder is not None and config.pluginmanager.is_registered(recorder):
        config.pluginmanager.unregister(recorder)


# -- fixtures for Python tests ---------------------------------------------------------------------
class GraylinkRunner:
    """``graylink_run(scenario, seed=None)``: one run with the test's seed (or ``seed``)."""

    def __init__(self, request: pytest.FixtureRequest, seed: int) -> None:
        self.request = request
        self.seed = seed
        self.simulation: Simulation | None = None
        self.result: Result | None = None

    def __call__(self, scenario: Scenario, seed: int | None = None) -> Result:
        from harness.simulation import Simulation

        settings = self.request.config.stash[_SETTINGS]
        seed = self.seed if seed is None else seed
        simulation = Simulation(scenario, seed)
        result = simulation.run()
        self.simulation, self.result = simulation, result
        if result.reason == "interrupted":
            raise KeyboardInterrupt
        written = _write_reports(settings, result, simulation)
        node = self.request.node
        evidence = [f"reproduce: pytest {shlex.quote(node.nodeid)} --graylink-seed {seed}",
                    result.render_text(), *(f"  report: {path}" for path in written)]
        node.add_report_section("call", "graylink", "\n".join(evidence))
        if settings.determinism:
            again = Simulation(scenario, seed).run()
            if again.trace_digest != result.trace_digest:
                pytest.fail(f"NOT deterministic: {scenario.name} seed {seed} gave digest "
                            f"{result.trace_digest} ({result.events} events), then "
                            f"{again.trace_digest} ({again.events} events) in the same process",
                            pytrace=False)
        return result


@pytest.fixture
def graylink_seed(request: pytest.FixtureRequest) -> int:
    """The test's seed (tests requesting it are parametrized by the plugin; this is the fallback)."""
    settings = request.config.stash[_SETTINGS]
    key = _function_key(request.node.nodeid)
    return settings.seeds_for(key, key, None)[0]


@pytest.fixture
def graylink_run(request: pytest.FixtureRequest, graylink_seed: int) -> GraylinkRunner:
    return GraylinkRunner(request, graylink_seed)


@pytest.fixture
def graylink_scenario(request: pytest.FixtureRequest) -> Scenario:
    """What ``graylink_simulation`` runs: by default the ``graylink_cluster`` fixture (the reference
    system's); override this fixture to run your own scenario."""
    try:
        return request.getfixturevalue("graylink_cluster")  # type: ignore[no-any-return]
    except pytest.FixtureLookupError:
        pytest.fail("graylink_scenario: define a `graylink_scenario` fixture returning the Scenario "
                    "to run (no `graylink_cluster` fixture is installed)", pytrace=False)


@pytest.fixture
def graylink_simulation(graylink_scenario: Scenario, graylink_run: GraylinkRunner) -> Simulation:
    """The simulation of ``graylink_scenario`` with the test's seed, already run."""
    graylink_run(graylink_scenario)
    assert graylink_run.simulation is not None
    return graylink_run.simulation


@pytest.fixture
def graylink_result(graylink_simulation: Simulation, graylink_run: GraylinkRunner) -> Result:
    """The ``Result`` of ``graylink_simulation``."""
    assert graylink_run.result is not None
    return graylink_run.result


@pytest.fixture
def graylink_history(graylink_simulation: Simulation) -> History:
    """What the clients of ``graylink_simulation`` saw: its system's ``history``."""
    from harness.history import History

    history = getattr(graylink_simulation.system, "history", None)
    if not isinstance(history, History):
        pytest.fail(f"graylink_history: the system {type(graylink_simulation.system).__name__} "
                    f"keeps no `history` (a harness.history.History)", pytrace=False)
    return history
