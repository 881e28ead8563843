"""The timeline of one run as inline SVG: lanes over virtual time, for the HTML report.

Theory of operation. ``render_timeline`` reads only a ``Result``: its faults, failures and its
``recording`` (plain data, see ``harness.recording``), so a run read back from its JSON report draws
exactly as it did live. Top to bottom:

- a time axis in virtual seconds, with the heal phase shaded;
- the faults as bands, coloured by family, packed into rows so that their labels never collide;
- the system's own lanes (the reference system: one per partition, its lease holders as bands in the
  holder's colour, elections as diamonds, red when spurious);
- one lane per node, grouped by availability zone: crashed, powered-off and paused intervals, bands
  the system put on the node, and on client nodes their operations, coloured by outcome;
- sampled messages as lines from the sender's lane to the receiver's, at their send and arrival
  times; a dropped copy is a short red stub ending in a cross;
- failures and violations as red vertical lines.

Every element placed in time carries ``data-a`` (and ``data-b``), in seconds, so that the page's script
can zoom by recomputing x positions (``html_assets.SCRIPT``). Every string from the run goes through
``html.escape``: keys, values, node names and labels are user data.

The module runs past the 400 lines the style guide suggests: ``_Timeline`` is one picture whose
layers share its geometry (lanes, rows, the x scale), and split in two it would read worse.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from html import escape
from typing import Any

from harness.checkers.verdict import CONDITION_FAILED_ERRORS
from harness.recording import FORMAT
from harness.result import Result
from harness.timeline import AppliedFault

__all__ = ["render_timeline", "tick_step", "LEFT", "PLOT_WIDTH"]

LEFT = 200  # the label column, px
PLOT_WIDTH = 1100  # the time axis, px
RIGHT = 14
AXIS = 34  # the axis band at the top
CHAR_PX = 6.1  # the width of a character of the 11 px labels, roughly
FAULT_ROW, SYSTEM_LANE, NODE_LANE, CLIENT_LANE, GROUP_HEAD = 24, 15, 20, 10, 17
SUB_ROW = 13  # each further row of a system lane whose bands overlap
MAX_FAULT_ROWS = 10
FAULT_ROWS_LABELLED = 4  # more rows than this to label every fault: pack bands only
LABEL_CHARS = 80  # longer labels are cut (the tooltip has them whole)

# A categorical palette (Tableau 10, then more), for nodes that bands and markers are about.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
           "#e15759", "#86bcb6", "#8cd17d", "#b6992d", "#499894", "#d37295", "#a0cbe8", "#ffbe7d")
FAMILY_COLOURS = {"network": "#8e6bbf", "process": "#d1495b", "disk": "#a0522d", "clock": "#2a9d8f",
                  "deployment": "#3b7dd8"}
ROLE_ORDER = {"server": 0, "storage": 0, "router": 1, "metadata": 2, "client": 4}
DROPPED = frozenset({"partition", "gray", "loss", "queue-full", "cut"})
STUB = 14  # px: how far a dropped message's stub reaches towards its destination
# Soft colours for bands that are about no node and have no style of their own (e.g. versions).
SOFT = ("#dbe4ee", "#f3e1c7", "#d9ead3", "#e8dcef", "#f5d6d6", "#d3ecec", "#efe8c9", "#e0e0e0")
STYLED_BANDS = frozenset({"out-of-service"})  # band kinds the stylesheet colours
# Marker shapes by kind (the stylesheet colours them): a diamond for elections (and any kind not
# named here), a dot for a new leader, a square for a membership change, a triangle for an alarm,
# a circle-in-square for what automation did about one.
MARKER_SHAPES = {
    "election": "M0,-5L5,0L0,5L-5,0Z",
    "leader": "M0,-3.2A3.2,3.2 0 1 0 0.01,-3.2Z",
    "membership": "M-3.5,-3.5H3.5V3.5H-3.5Z",
    "alarm": "M0,-5.5L5,4L-5,4Z",
    "remediation": "M-4,-4H4V4H-4Z M0,-2A2,2 0 1 0 0.01,-2Z",
}


@dataclass(frozen=True, slots=True)
class _Lane:
    name: str
    y: float  # top
    height: float
    kind: str  # "system" | "node" | "client"

    @property
    def middle(self) -> float:
        return self.y + self.height / 2


def render_timeline(result: Result, index: int, end_s: float) -> str:
    """The SVG of ``result`` on an axis from 0 to ``end_s`` virtual seconds (shared by the runs
    of one page, so that variants line up); ``index`` makes its ids unique in the page."""
    recording = result.recording
    if not recording or recording.get("format") != FORMAT:
        error = recording.get("error") if recording else None
        why = error or "this run's JSON holds no recording (an older Graylink wrote it): run it again"
        return f'<p class="note bad">No timeline: {escape(str(why))}</p>'
    return _Timeline(result, index, max(end_s, 1e-9)).render()


def tick_step(span_s: float, target: int = 10) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about ``target`` ticks over ``span_s``.
    The page's script computes the same (keep the two alike)."""
    raw = span_s / target
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def natural_key(name: str) -> tuple[Any, ...]:
    """``s2`` before ``s10``: digits compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _seconds(time_ns: float) -> str:
    text = f"{time_ns / 1e9:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _when(time_ns: float | None) -> str:
    return "never" if time_ns is None else f"{time_ns / 1e9:.3f} s"


def _cut(text: str, chars: int = LABEL_CHARS) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "…"


class _Timeline:
    """One run's picture; each ``_layer`` method returns SVG fragments."""

    def __init__(self, result: Result, index: int, end_s: float) -> None:
        self.result, self.index = result, index
        self.recording = result.recording
        self.end_s = end_s
        self.run_end_ns = int(self.recording.get("end_ns") or result.sim_time_s * 1e9)
        self.system = self.recording.get("system") or {}
        self.nodes = {name: (az, role) for name, az, role in self.recording.get("nodes", [])}
        self.colours = self._node_colours()
        self.lanes: dict[str, _Lane] = {}
        self.labels: list[str] = []  # the label column
        self.fault_rows: list[list[tuple[AppliedFault, str]]] = []  # (fault, label) per row
        self.band_rows: dict[int, int] = {}  # a system lane's band (by index) → its row in the lane
        self.height = float(AXIS)
        self._lay_out()

    # -- geometry ---------------------------------------------------------------------------------
    def x(self, time_ns: float) -> float:
        return LEFT + time_ns / 1e9 / self.end_s * PLOT_WIDTH

    def _timed(self, start_ns: float, end_ns: float | None = None) -> str:
        """The data attributes the zoom script reads."""
        text = f' data-a="{_seconds(start_ns)}"'
        return text + (f' data-b="{_seconds(end_ns)}"' if end_ns is not None else "")

    def _node_colours(self) -> dict[str, str]:
        """A colour for every node that is not a client, in lane order."""
        names = [name for name in self._node_order() if self.nodes[name][1] != "client"]
        return {name: PALETTE[position % len(PALETTE)] for position, name in enumerate(names)}

    def _node_order(self) -> list[str]:
        azs: dict[str, int] = {}
        for az, _ in self.nodes.values():
            azs.setdefault(az, len(azs))
        return sorted(self.nodes, key=lambda name: (azs[self.nodes[name][0]],
                                                    ROLE_ORDER.get(self.nodes[name][1], 3),
                                                    natural_key(name)))

    def _lay_out(self) -> None:
        self._lay_out_faults()
        system_lanes = self._system_lane_names()
        if system_lanes:
            title = self.system.get("lanes_title") or "system"
            self._group_head(title)
            rows = self._stack_system_bands()
            for name in system_lanes:
                self._add_lane(name, SYSTEM_LANE + SUB_ROW * (rows.get(name, 1) - 1), "system",
                               escape(name))
        current_az = None
        for name in self._node_order():
            az, role = self.nodes[name]
            if az != current_az:
                self._group_head(az, az=True)
                current_az = az
            client = role == "client"
            swatch = self.colours.get(name)
            label = escape(name)
            if not name.startswith(role):  # "server s1", but not "client client-1"
                label = f'<tspan class="role">{escape(role)} </tspan>{label}'
            self._add_lane(name, CLIENT_LANE if client else NODE_LANE,
                           "client" if client else "node", label, swatch)
        orphans = self._orphan_operation_lanes()
        if orphans:
            self._group_head("other clients")
            for name in orphans:
                self._add_lane(name, CLIENT_LANE, "client", escape(name))
        self.height += 8

    def _stack_system_bands(self) -> dict[str, int]:
        """Give every band on a lane of the system's a row of that lane, so that overlapping bands
        (two leases at once: the very thing a reader must see) sit one above the other. Returns the
        rows each lane needs; ``self.band_rows`` has each band's row, by its index."""
        rows_end: dict[str, list[int]] = {}
        bands = self.system.get("bands", [])
        for index in sorted(range(len(bands)), key=lambda i: (bands[i][0], bands[i][1])):
            lane, start_ns, end_ns = bands[index][:3]
            if lane in self.nodes:
                continue
            ends = rows_end.setdefault(lane, [])
            end = self.run_end_ns if end_ns is None else end_ns
            row = next((row for row, row_end in enumerate(ends) if row_end <= start_ns), len(ends))
            if row == len(ends):
                ends.append(end)
            ends[row] = max(ends[row], end)
            self.band_rows[index] = row
        return {lane: len(ends) for lane, ends in rows_end.items()}

    def _group_head(self, title: str, az: bool = False) -> None:
        self.height += 5
        css = "group az" if az else "group"
        self.labels.append(f'<text class="{css}" x="8" y="{self.height + 12:.1f}">'
                           f'{escape(title)}</text>')
        self.labels.append(f'<line class="group-rule" x1="8" x2="{LEFT + PLOT_WIDTH}" '
                           f'y1="{self.height + 15.5:.1f}" y2="{self.height + 15.5:.1f}"/>')
        self.height += GROUP_HEAD

    def _add_lane(self, name: str, height: int, kind: str, label: str,
                  swatch: str | None = None) -> None:
        lane = _Lane(name, self.height, height, kind)
        self.lanes.setdefault(name, lane)
        size = "small" if kind == "client" else ""
        self.labels.append(f'<text class="lane-label {size}" x="{LEFT - 10}" '
                           f'y="{lane.middle + 3.5:.1f}">{label}</text>')
        if swatch:
            self.labels.append(f'<rect class="swatch" x="{LEFT - 8}" y="{lane.middle - 4:.1f}" '
                               f'width="5" height="8" fill="{swatch}"/>')
        self.height += height

    def _system_lane_names(self) -> list[str]:
        names = list(self.system.get("lanes", []))
        for item in self.system.get("bands", []) + self.system.get("markers", []):
            if item[0] not in self.nodes and item[0] not in names:
                names.append(item[0])
        return names

    def _orphan_operation_lanes(self) -> list[str]:
        """Lanes for operations whose client is not a node of the run (or not named)."""
        names: list[str] = []
        for operation in self.system.get("operations", []):
            lane = operation[1] if operation[1] is not None else "clients"
            if lane not in self.nodes and lane not in names:
                names.append(lane)
        return names

    def _lay_out_faults(self) -> None:
        """Pack the faults into rows, each in the first row where it fits with its label; when that
        takes more than ``FAULT_ROWS_LABELLED`` rows, where the band alone fits (a label then shows
        only while there is room for it before the next fault of its row)."""
        faults = sorted(self.result.faults, key=lambda f: f.started_ns)
        if not faults:
            return
        self.fault_rows = self._pack(faults, labelled=True)
        if len(self.fault_rows) > FAULT_ROWS_LABELLED:
            self.fault_rows = self._pack(faults, labelled=False)
        self._group_head("faults")
        self.fault_top = self.height
        self.height += FAULT_ROW * len(self.fault_rows)

    def _pack(self, faults: list[AppliedFault], labelled: bool) -> list[list[tuple[AppliedFault, str]]]:
        rows: list[list[tuple[AppliedFault, str]]] = []
        rows_end: list[float] = []
        for fault in faults:
            start = self.x(fault.started_ns)
            end = self.x(fault.ended_ns) if fault.ended_ns is not None else start + 3
            label = _cut_middle(fault.description, 96)
            extent = max(end, start + 8 + len(label) * CHAR_PX) if labelled else end + 4
            row = next((index for index, row_end in enumerate(rows_end) if row_end + 6 <= start),
                       None)
            if row is None:
                row = min(len(rows), MAX_FAULT_ROWS - 1)
                if row == len(rows):
                    rows.append([])
                    rows_end.append(0.0)
            rows_end[row] = max(rows_end[row], extent)
            rows[row].append((fault, label))
        return rows

    # -- layers -----------------------------------------------------------------------------------
    def render(self) -> str:
        width, height = LEFT + PLOT_WIDTH + RIGHT, math.ceil(self.height)
        clip = f"clip-{self.index}"
        body = (self._lanes_background() + self._phases() + self._system_bands()
                + self._messages() + self._node_states() + self._operations()
                + self._fault_bands() + self._markers() + self._violations())
        return (f'<svg class="timeline" width="{width}" '
                f'height="{height}" viewBox="0 0 {width} {height}" data-left="{LEFT}" '
                f'data-width="{PLOT_WIDTH}" data-end="{self.end_s:.6f}" '
                f'data-top="{AXIS}" role="img" aria-label="timeline of the run">'
                f'{self._defs(clip, height)}'
                f'<g class="labels">{"".join(self.labels)}</g>'
                f'<g class="axis">{self._axis(height)}</g>'
                f'<g class="plot" clip-path="url(#{clip})">{"".join(body)}</g>'
                f'<rect class="brush" x="0" y="{AXIS}" width="0" height="{height - AXIS}"/>'
                f'</svg>')

    def _defs(self, clip: str, height: int) -> str:
        i = self.index
        return (f'<defs><clipPath id="{clip}"><rect x="{LEFT}" y="0" width="{PLOT_WIDTH}" '
                f'height="{height}"/></clipPath>'
                f'<pattern id="hatch-{i}" width="6" height="6" patternUnits="userSpaceOnUse" '
                f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f6d5d8"/>'
                f'<line x1="0" y1="0" x2="0" y2="6" stroke="#d1495b" stroke-width="2.5"/></pattern>'
                f'<pattern id="hatch-off-{i}" width="6" height="6" patternUnits="userSpaceOnUse" '
                f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#d9d9d9"/>'
                f'<line x1="0" y1="0" x2="0" y2="6" stroke="#555" stroke-width="2.5"/></pattern>'
                f'<marker id="cross-{i}" viewBox="-4 -4 8 8" markerWidth="7" markerHeight="7">'
                f'<path d="M-3,-3L3,3M-3,3L3,-3" stroke="#c62828" stroke-width="1.6"/></marker>'
                f'<marker id="dead-{i}" viewBox="-4 -4 8 8" markerWidth="6" markerHeight="6">'
                f'<circle r="2.6" fill="#fff" stroke="#c62828" stroke-width="1.4"/></marker>'
                f'</defs>')

    def _axis(self, height: int) -> str:
        step = tick_step(self.end_s)
        parts = []
        count = int(self.end_s / step + 1e-9)
        for k in range(count + 1):
            t = k * step
            x = self.x(t * 1e9)
            parts.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{AXIS - 6}" '
                         f'y2="{height}"/><text class="tick-label" x="{x:.1f}" '
                         f'y="{AXIS - 10}">{t:g} s</text>')
        return "".join(parts)

    def _lanes_background(self) -> list[str]:
        parts = []
        for lane in self.lanes.values():
            css = "lane-bg client" if lane.kind == "client" else "lane-bg"
            parts.append(f'<line class="{css}" x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" '
                         f'y1="{lane.middle:.1f}" y2="{lane.middle:.1f}"/>')
        return parts

    def _phases(self) -> list[str]:
        heal_ns = self.recording.get("heal_started_ns")
        if heal_ns is None:
            return []
        x = self.x(heal_ns)
        return [f'<rect class="heal"{self._timed(heal_ns, self.run_end_ns)} x="{x:.1f}" '
                f'y="{AXIS}" width="{self.x(self.run_end_ns) - x:.1f}" height="{self.height - AXIS:.1f}">'
                f'<title>heal phase from {_when(heal_ns)}: every fault undone, every node up; '
                f'the system must converge</title></rect>',
                f'<text class="phase"{self._timed(heal_ns)} data-dx="4" x="{x + 4:.1f}" '
                f'y="{AXIS + 11}">heal phase ▸</text>']

    def _rect(self, css: str, start_ns: float, end_ns: float | None, top: float, height: float,
              title: str, style: str = "", min_width: float = 1.0) -> str:
        end = self.run_end_ns if end_ns is None else min(end_ns, self.run_end_ns)
        x = self.x(start_ns)
        width = max(self.x(end) - x, min_width)
        fill = f' style="{style}"' if style else ""
        return (f'<rect class="{css}"{self._timed(start_ns, end)} data-min="{min_width}" '
                f'x="{x:.2f}" y="{top:.1f}" width="{width:.2f}" height="{height:.1f}"{fill}>'
                f'<title>{escape(title)}</title></rect>')

    def _label(self, text: str, start_ns: float, end_ns: float | None, y: float,
               css: str = "band-label", dx: float = 3) -> str:
        """A label inside a band, shown only while the band is wide enough for it."""
        end = self.run_end_ns if end_ns is None else min(end_ns, self.run_end_ns)
        need = len(text) * CHAR_PX + dx + 3
        hidden = ' display="none"' if self.x(end) - self.x(start_ns) < need else ""
        return (f'<text class="{css}"{self._timed(start_ns, end)} data-dx="{dx:g}" '
                f'data-need="{need:.0f}" x="{self.x(start_ns) + dx:.1f}" y="{y:.1f}"{hidden}>'
                f'{escape(text)}</text>')

    def _node_states(self) -> list[str]:
        parts = []
        words = {"crashed": "crashed", "off": "powered off", "paused": "paused",
                 "idle": "not started"}
        for name, state, start_ns, end_ns in self.recording.get("node_states", []):
            lane = self.lanes.get(name)
            if lane is None:
                continue
            fill = {"crashed": f"url(#hatch-{self.index})",
                    "off": f"url(#hatch-off-{self.index})"}.get(state, "")
            title = f"{name} {words.get(state, state)} from {_when(start_ns)} to {_when(end_ns)}"
            parts.append(self._rect(f"state {escape(state)}", start_ns, end_ns, lane.y + 1,
                                    lane.height - 2, title, f"fill:{fill}" if fill else "", 1.5))
            if lane.kind != "client":
                parts.append(self._label(words.get(state, state), start_ns, end_ns,
                                         lane.middle + 3.5, "state-label"))
        return parts

    def _system_bands(self) -> list[str]:
        parts = []
        for index, band in enumerate(self.system.get("bands", [])):
            lane_name, start_ns, end_ns, kind, label, node = band
            lane = self.lanes.get(lane_name)
            if lane is None:
                continue
            colour = self.colours.get(node) if node else None
            if colour is None and kind not in STYLED_BANDS:  # e.g. versions: a soft colour each
                colour = SOFT[zlib.crc32(f"{kind}/{label}".encode()) % len(SOFT)]
            style = f"fill:{colour}" if colour else ""
            title = f"{lane_name}: {label} ({kind}) from {_when(start_ns)} to {_when(end_ns)}"
            top, height = lane.y + 4, lane.height - 8  # on a node's lane
            if lane.kind == "system":
                top, height = lane.y + 2 + SUB_ROW * self.band_rows.get(index, 0), SUB_ROW - 2
            parts.append(self._rect(f"band {escape(kind)}", start_ns, end_ns, top, height, title,
                                    style, 1.0))
            css = "band-label dark" if colour and _light(colour) else "band-label"
            parts.append(self._label(label, start_ns, end_ns, top + height / 2 + 3.5, css, 9))
        return parts

    def _markers(self) -> list[str]:
        parts = []
        for lane_name, time_ns, kind, label, node in self.system.get("markers", []):
            lane = self.lanes.get(lane_name)
            if lane is None:
                continue
            title = f"{_when(time_ns)} {lane_name}: {label}"
            x, y = self.x(time_ns), lane.middle
            shape = MARKER_SHAPES.get(kind, MARKER_SHAPES["election"])
            colour = self.colours.get(node) if kind == "leader" and node else None
            style = f' style="fill:{colour}"' if colour else ""
            parts.append(f'<path class="marker {escape(kind)}"{self._timed(time_ns)} '
                         f'data-y="{y:.1f}" transform="translate({x:.2f},{y:.1f})" d="{shape}"'
                         f'{style}><title>{escape(title)}</title></path>')
        return parts

    def _operations(self) -> list[str]:
        parts = []
        for operation in self.system.get("operations", []):
            process, node, f, key, argument, result, invoked_ns, completed_ns, outcome, error = (
                operation)
            lane = self.lanes.get(node if node is not None else "clients")
            if lane is None:
                continue
            took = ("never completed" if completed_ns is None
                    else f"{(completed_ns - invoked_ns) / 1e6:.1f} ms")
            title = (f"{_when(invoked_ns)} {node or 'client'} process {process}: {f} "
                     f"{_short(key)} {_short(argument)} → {outcome}"
                     + (f" {_short(result)}" if result is not None else "")
                     + (f" ({error})" if error else "") + f", {took}")
            if outcome == "fail" and error in CONDITION_FAILED_ERRORS:
                outcome = "answered"  # a definite answer ("your condition is false"), not a failure
            parts.append(self._rect(f"op {escape(outcome)}", invoked_ns, completed_ns,
                                    lane.middle - 3, 6, title, "", 1.5))
        return parts

    def _messages(self) -> list[str]:
        parts = []
        i = self.index
        for sent_ns, arrived_ns, source, destination, kind, fate in (
                self.recording.get("messages", {}).get("rows", [])):
            start, end = self.lanes.get(source), self.lanes.get(destination)
            if start is None or end is None:
                continue
            x1 = self.x(sent_ns)
            if fate in DROPPED or arrived_ns is None:  # a short stub towards the destination
                y2 = start.middle + max(min(end.middle - start.middle, STUB), -STUB)
                title = f"{_when(sent_ns)} {kind} {source} → {destination}: {_fate_words(fate)}"
                marker = f' marker-end="url(#cross-{i})"' if fate in DROPPED else ""
                parts.append(f'<line class="msg {escape(fate)}"{self._timed(sent_ns)} '
                             f'x1="{x1:.2f}" x2="{x1:.2f}" y1="{start.middle:.1f}" y2="{y2:.1f}"'
                             f'{marker}><title>{escape(title)}</title></line>')
                continue
            x2 = self.x(arrived_ns)
            marker = f' marker-end="url(#dead-{i})"' if fate == "lost" else ""
            title = (f"{kind} {source} → {destination}: sent {_when(sent_ns)}, "
                     f"{_fate_words(fate)} {_when(arrived_ns)} "
                     f"({(arrived_ns - sent_ns) / 1e6:.2f} ms)")
            parts.append(f'<line class="msg {escape(fate)}"{self._timed(sent_ns, arrived_ns)} '
                         f'x1="{x1:.2f}" x2="{x2:.2f}" y1="{start.middle:.1f}" '
                         f'y2="{end.middle:.1f}"{marker}><title>{escape(title)}</title></line>')
        return parts

    def _fault_bands(self) -> list[str]:
        parts = []
        for row, faults in enumerate(self.fault_rows):
            top = self.fault_top + row * FAULT_ROW
            for position, (fault, label) in enumerate(faults):
                skipped = fault.description.startswith("skipped")
                colour = "#9e9e9e" if skipped else FAMILY_COLOURS.get(fault.family, "#777777")
                until = f" until {_when(fault.ended_ns)}" if fault.ended_ns is not None else ""
                title = f"{_when(fault.started_ns)}{until}: {fault.description}"
                end_ns = fault.ended_ns if fault.ended_ns is not None else fault.started_ns
                parts.append(self._rect(f"fault {escape(fault.family)}", fault.started_ns,
                                        end_ns, top + 13, 8, title, f"fill:{colour}", 3.0))
                # The label may use the row up to the next fault's start.
                room_ns = (faults[position + 1][0].started_ns if position + 1 < len(faults)
                           else self.end_s * 1e9)
                need = len(label) * CHAR_PX + 6
                hidden = (' display="none"'
                          if self.x(room_ns) - self.x(fault.started_ns) < need else "")
                parts.append(f'<text class="fault-label"{self._timed(fault.started_ns, room_ns)} '
                             f'data-need="{need:.0f}" x="{self.x(fault.started_ns):.1f}" '
                             f'y="{top + 10:.1f}"{hidden}>{escape(label)}'
                             f'<title>{escape(title)}</title></text>')
        return parts

    def _violations(self) -> list[str]:
        """A red line where a failure was seen (a check's violation, an exception)."""
        seen: set[tuple[int, str]] = set()
        parts = []
        failures = [(f, "failure") for f in self.result.failures] + [
            (f, "expected") for f in self.result.expected_failures]
        for failure, css in failures:
            if not 0 < failure.time_ns < self.run_end_ns or (failure.time_ns, failure.kind) in seen:
                continue
            seen.add((failure.time_ns, failure.kind))
            x = self.x(failure.time_ns)
            what = "expected failure" if css == "expected" else "failure"
            title = f"{_when(failure.time_ns)} {what} [{failure.kind}]: {failure.message}"
            parts.append(f'<line class="violation {css}"{self._timed(failure.time_ns)} '
                         f'x1="{x:.2f}" x2="{x:.2f}" y1="{AXIS}" y2="{self.height:.1f}">'
                         f'<title>{escape(title)}</title></line>'
                         f'<text class="violation-label {css}"{self._timed(failure.time_ns)} '
                         f'data-dx="3" x="{x + 3:.1f}" y="{self.height - 12:.1f}">'
                         f'✗ {escape(failure.kind)}'
                         f'</text>')
        return parts


def _cut_middle(text: str, chars: int) -> str:
    """``text`` cut in the middle, keeping its end (a fault's resolved selectors, ``[leader(0) = s7]``)."""
    if len(text) <= chars:
        return text
    tail = min(len(text) - text.rfind(" ["), chars // 2) if " [" in text else chars // 3
    return text[:chars - tail - 1] + "…" + text[len(text) - tail:]


def _light(colour: str) -> bool:
    """Whether dark text reads better than white on ``colour`` (``#rrggbb``)."""
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.299 * red + 0.587 * green + 0.114 * blue > 150


def _short(value: Any, chars: int = 60) -> str:
    if value is None:
        return ""
    return _cut(value if isinstance(value, str) else repr(value), chars)


def _fate_words(fate: str) -> str:
    return {"delivered": "delivered", "corrupted": "delivered corrupted",
            "lost": "arrived at a node that was down (lost)",
            "partition": "dropped by a partition", "gray": "dropped by a gray link",
            "loss": "lost on the link", "queue-full": "dropped: link queue full",
            "cut": "on the link when it was cut (dropped)", "held": "held by a clogged link",
            "in-flight": "still on its way when the run ended"}.get(fate, fate)
