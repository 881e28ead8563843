"""The HTML report: escaped, self-contained, the same from a saved run as live, variants side by side;
and the recording behind it: sampled within its caps, fates right, digests untouched."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import ROOT, subprocess_env
from harness import (LinkConfig, Scenario, ScheduledFault, SystemSpec, Topology, World,
                     load_scenario, run_scenario)
from harness.faults import Crash, Partition
from harness.html_assets import SCRIPT
from harness.html_report import load_result, render_html
from harness.recording import Recording
from harness.result import Result
from html_systems import EVIL, EVIL_KEY, EVIL_LANE, EVIL_VALUE

REGISTER = ROOT / "scenarios" / "register-crash-and-partition.yaml"
VARIANTS = ROOT / "scenarios" / "register-ack-before-fsync.yaml"


def _evil_result() -> Result:
    topology = Topology.from_azs({f"az{EVIL_KEY}": ["n1<i>", "n2&amp;"]})
    scenario = Scenario(name=f"evil{EVIL_LANE}", topology=topology, description=EVIL,
                        system=SystemSpec("html_systems:EvilSystem", {}), duration_s=1.0,
                        heal_s=0.5, faults=(ScheduledFault(0.3, Crash(node="n1<i>",
                                                                      duration_s=0.2)),))
    return run_scenario(scenario, 3)


class _Page(HTMLParser):
    """The tags, attributes, script bodies and text of a page."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


# -- escaping and self-containment -------------------------------------------------------------------
def test_user_data_is_escaped_everywhere() -> None:
    result = _evil_result()
    recording = result.recording
    assert recording["system"]["error"] is None
    assert any(row[4] == EVIL for row in recording["messages"]["rows"])  # it reached the picture
    assert recording["system"]["operations"] and recording["node_states"]
    page = render_html([result])
    parsed = _Page(page)
    assert [tag for tag, _ in parsed.tags].count("script") == 1
    assert parsed.scripts == [SCRIPT]  # the one script is ours, with no data in it
    assert not [tag for tag, _ in parsed.tags if tag in ("img", "i")]
    assert not [name for _, attrs in parsed.tags for name in attrs if name.startswith("on")]
    for raw in (EVIL_KEY, EVIL_VALUE, EVIL_LANE, "n1<i>"):
        assert raw not in page
    text = "".join(parsed.text)
    for shown in (EVIL, EVIL_KEY, EVIL_LANE, "n1<i>", "n2&amp;"):  # ... and the reader sees them
        assert shown in text, shown
    assert "a&amp;b&lt;/script&gt;" in page and "n2&amp;amp;" in page


def test_the_page_references_nothing_outside_itself() -> None:
    page = render_html([run_scenario(load_scenario(REGISTER), 1)])
    assert not re.search(r"(?i)https?:|//[a-z0-9]", page.replace("</", ""))
    assert not re.search(r"(?i)\s(?:src|href|srcset|action|xlink:href)\s*=", page)
    assert not re.search(r"url\((?!#)", page) and "@import" not in page
    assert page.count("<script>") == 1 and "<script src" not in page


# -- saved and live ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, variant", [(REGISTER, None), (VARIANTS, "buggy")])
def test_a_run_read_back_from_its_json_renders_the_same_page(tmp_path: Path, path: Path,
                                                             variant: str | None) -> None:
    scenario = load_scenario(path)
    result = run_scenario(scenario.variant(variant) if variant else scenario, 2)
    saved = tmp_path / "run.json"
    saved.write_text(result.to_json())
    loaded = load_result(saved)
    assert loaded == result
    assert render_html([loaded]) == render_html([result])
    assert json.loads(saved.read_text())["recording"]["messages"]["rows"]


def test_cli_run_writes_html_and_report_redraws_it_byte_for_byte(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    page = tmp_path / "page.html"
    run = _graylink("run", str(VARIANTS), "--seed", "1", "--report-dir", str(reports),
                    "--html", str(page))
    assert run.returncode == 0, run.stderr
    runs = [reports / f"register-ack-before-fsync-{v}-seed1.json" for v in ("buggy", "fixed")]
    side_by_side = reports / "register-ack-before-fsync-seed1.html"
    assert page.read_text() == side_by_side.read_text()
    for path in runs:
        assert path.with_suffix(".html").exists()
    again = _graylink("report", *map(str, runs))
    assert again.returncode == 0, again.stderr
    assert str(side_by_side) in again.stdout  # the default name for one scenario and seed
    assert side_by_side.read_text() == page.read_text()
    one = _graylink("report", str(runs[0]), "-o", str(tmp_path / "one.html"))
    assert one.returncode == 0 and (tmp_path / "one.html").read_text() == (
        runs[0].with_suffix(".html").read_text())


def test_variants_are_shown_side_by_side(tmp_path: Path) -> None:
    scenario = load_scenario(VARIANTS)
    results = [run_scenario(run, 1) for run in scenario.variant_scenarios()]
    page = render_html(results)
    parsed = _Page(page)
    assert [tag for tag, _ in parsed.tags].count("svg") >= 2 + 1  # two timelines (+ legend icons)
    timelines = [attrs for tag, attrs in parsed.tags if tag == "svg"
                 and "timeline" in (attrs.get("class") or "")]
    assert len(timelines) == 2
    assert {attrs["data-end"] for attrs in timelines} == {timelines[0]["data-end"]}  # one axis
    comparison = page[page.index("Side by side"):page.index("Timelines, on one time axis")]
    assert "buggy" in comparison and "fixed" in comparison and "stale_reads" in comparison
    assert "cell-bad" not in comparison  # both variants meet their expectations
    failing = dataclasses.replace(results[1], metrics={**results[1].metrics, "stale_reads": 3},
                                  checks=tuple(
                                      dataclasses.replace(c, verdict="fail")
                                      if c.name == "expect: stale_reads == 0" else c
                                      for c in results[1].checks))
    assert "cell-bad" in render_html([results[0], failing])


def test_the_reference_system_draws_leases_elections_and_the_gray_link() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "s02-gray-link-leader-to-follower.yaml")
    result = run_scenario(scenario.variant("without-peer-check"), 1)
    system = result.recording["system"]
    assert system["error"] is None and system["lanes"][0] == "partition 0"
    leases = [band for band in system["bands"] if band[0] == "partition 0" and band[3] == "lease"]
    assert len({band[4] for band in leases}) == 2  # the healthy leader deposed: a second holder
    assert any(marker[2] == "spurious-election" for marker in system["markers"])
    assert any(row[5] == "gray" for row in result.recording["messages"]["rows"])
    assert {op[8] for op in system["operations"]} >= {"ok"}
    page = render_html([result])
    assert 'class="marker spurious-election"' in page and 'class="msg gray"' in page
    assert Result.from_dict(json.loads(result.to_json())) == result


def test_canary_alarms_and_remediations_are_drawn_and_versions_only_when_deployed() -> None:
    from library_runs import library_run  # shared with the library's tests: run once per session

    result = library_run("s04-routers-cannot-reach-leader.yaml", "remediation")
    markers = result.recording["system"]["markers"]
    alarms = [marker for marker in markers if marker[2] == "alarm"]
    moves = [marker for marker in markers if marker[2] == "remediation"]
    assert alarms and moves and alarms[0][0] == moves[0][0] == "partition 0"
    assert alarms[0][1] <= moves[0][1] and "probes failed" in alarms[0][3]
    assert not [band for band in result.recording["system"]["bands"] if band[3] == "version"]
    page = render_html([result])
    assert 'class="marker alarm"' in page and 'class="marker remediation"' in page


@pytest.mark.parametrize("arguments, message", [
    (["report", "missing.json"], "no such file"),
    (["report", "README.md"], "not a run's JSON report"),
    (["report", "pyproject.toml"], "not a run's JSON report"),
])
def test_report_refuses_what_is_not_a_run(arguments: list[str], message: str) -> None:
    completed = _graylink(*arguments)
    assert completed.returncode == 2
    assert message in completed.stderr and "Traceback" not in completed.stderr


def test_report_refuses_json_that_is_not_a_run(tmp_path: Path) -> None:
    for content in ("[1, 2]", '{"scenario": "x"}', '{"scenario": "x", "seed": "many"}'):
        bad = tmp_path / "bad.json"
        bad.write_text(content)
        completed = _graylink("report", str(bad))
        assert completed.returncode == 2, content
        assert "not a run's JSON report" in completed.stderr


# -- the recording -------------------------------------------------------------------------------------
class _Chatter:
    """Sends one message to every other node every millisecond."""

    def __init__(self, ctx) -> None:  # type: ignore[no-untyped-def]
        self.ctx = ctx

    def on_start(self) -> None:
        self.ctx.set_timer(1_000_000, self.tick)

    def tick(self) -> None:
        for name in self.ctx.nodes:
            if name != self.ctx.name:
                self.ctx.send(name, b"ping")
        self.ctx.set_timer(1_000_000, self.tick)

    def on_message(self, source: str, message: object) -> None:
        pass


def _chatty_world(loss: float = 0.0) -> World:
    world = World(5, Topology.from_azs({"a": ["n1", "n2"], "b": ["n3"]}),
                  link=LinkConfig(loss_probability=loss))
    for name in world.node_names():
        world.node(name).install(_Chatter)
        world.node(name).start()
    return world


def test_the_sample_stays_within_its_caps_and_is_uniform() -> None:
    world = _chatty_world(loss=0.2)
    recording = Recording(world, message_cap=40, drop_cap=10)
    world.kernel.run(until_ns=2_000_000_000)  # 2 s: 6 messages a millisecond, 12,000 in all
    data = recording.export()
    rows = data["messages"]["rows"]
    sent = data["messages"]["sent"]
    assert sent == world.network.statistics()["messages_sent"] > 10_000
    delivered = [row for row in rows if row[5] == "delivered"]
    dropped = [row for row in rows if row[5] == "loss"]
    assert 20 < len(delivered) <= 40 and 5 <= len(dropped) <= 10
    stride = data["messages"]["stride"]
    assert stride & (stride - 1) == 0 and stride * 40 >= sent * 0.8  # a power of two, spread out
    times = sorted(row[0] for row in delivered)
    assert times[0] < 0.25e9 and times[-1] > 1.75e9  # over the whole run, not its start
    assert data["messages"]["dropped"] == world.network.statistics()["dropped_loss"]
    assert all(row[1] > row[0] for row in delivered)


def test_the_sample_tells_each_message_s_fate() -> None:
    world = _chatty_world()
    recording = Recording(world, message_cap=100_000, drop_cap=100_000)  # keep every message
    cut = Partition(side_a=("n3",), duration_s=0.1).apply(world)
    world.kernel.call_at(100_000_000, cut, kind="fault")
    world.kernel.call_at(200_000_000, world.node("n2").crash, kind="fault")
    world.kernel.call_at(300_000_000, world.node("n2").start, kind="fault")
    world.kernel.call_at(400_000_000, world.node("n1").pause, kind="fault")
    world.kernel.run(until_ns=500_000_000)
    data = recording.export()
    rows = data["messages"]["rows"]
    assert len(rows) == world.network.statistics()["messages_sent"]
    fates = {row[5] for row in rows}
    assert {"delivered", "partition", "lost"} <= fates
    assert all(row[2] == "n3" or row[3] == "n3" for row in rows if row[5] == "partition")
    assert all(row[3] == "n2" and 200e6 <= row[1] < 300e6 for row in rows if row[5] == "lost")
    states = {(name, state): (start, end) for name, state, start, end in data["node_states"]}
    assert states[("n2", "crashed")] == (200_000_000, 300_000_000)
    assert states[("n1", "paused")] == (400_000_000, None)


def test_the_recording_changes_no_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = load_scenario(REGISTER)
    recorded = run_scenario(scenario, 4)
    assert len(recorded.recording["messages"]["rows"]) > 100
    assert recorded.recording["node_states"]

    class NoRecording:
        def __init__(self, world: World) -> None:
            pass

        def export(self, *args: object, **kwargs: object) -> dict[str, object]:
            return {}

    monkeypatch.setattr("harness.world.Recording", NoRecording)
    bare = run_scenario(scenario, 4)
    assert bare.recording == {}
    assert bare.trace_digest == recorded.trace_digest and bare.events == recorded.events
    assert bare.metrics == recorded.metrics


def test_a_timeline_hook_that_raises_is_reported_not_fatal() -> None:
    class Broken:
        def timeline(self, world: World) -> None:
            raise RuntimeError(EVIL)

    world = _chatty_world()
    data = world.recording.export(Broken())
    assert "RuntimeError" in data["system"]["error"]
    result = dataclasses.replace(run_scenario(load_scenario(REGISTER), 1), recording=data)
    page = render_html([result])
    assert "timeline() failed" in page and EVIL not in page


# -- a real browser -----------------------------------------------------------------------------------
@pytest.mark.browser
def test_the_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    if shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_html_render.py"), "--out", str(tmp_path),
         str(REGISTER), str(VARIANTS)],
        capture_output=True, text=True, cwd=ROOT, env=subprocess_env(), check=False, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 2 and all(png.stat().st_size > 20_000 for png in pngs)
    assert "2 timelines" in completed.stdout  # the variants' page ran its script on both


def _graylink(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *arguments], capture_output=True,
                          text=True, cwd=ROOT, env=subprocess_env(), check=False, timeout=300)
