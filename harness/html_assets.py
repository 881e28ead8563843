"""The HTML report's fixed parts, all inline: the stylesheet, the script, the timeline's legend and
its zoom controls. Nothing refers to an external resource, so a report works offline.

The script only zooms: every timeline element placed in time carries ``data-a`` (start) and maybe
``data-b`` (end) in seconds, and ``relayout(t0, t1)`` recomputes their x positions for a window of
time, on every timeline of the page at once (variants stay aligned). Drag across a timeline to zoom
in; double-click, or the "whole run" button, to see the whole run again. It reads nothing but these
attributes: no data is embedded in the script. ``report.html#t=14-18`` opens zoomed on 14 s to
18 s. When it has run, the page's root element carries ``data-timelines`` (how many it found): the
render check (``scripts/check_html_render.py``) reads it to know that the script ran without error.
"""

from __future__ import annotations

from html import escape

__all__ = ["CONTROLS", "LEGEND", "SCRIPT", "STYLE"]

STYLE = """
:root { --ok: #3a9d5d; --fail: #d1495b; --unknown: #e0a030; --ink: #1f2328; --muted: #656d76;
  --line: #d0d7de; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink);
  margin: 0; background: #fff; }
main { max-width: 1360px; margin: 0 auto; padding: 18px 20px 60px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 22px 0 6px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
  overflow-x: auto; white-space: pre-wrap; word-break: break-word; margin: 6px 0; }
.banner { border-radius: 8px; padding: 12px 16px; color: #fff; display: flex; gap: 14px;
  align-items: baseline; flex-wrap: wrap; }
.banner.passed { background: #2d7d46; } .banner.failed { background: #b3261e; }
.banner.error { background: #6f42c1; }
.banner .verdict { font-weight: 700; font-size: 18px; letter-spacing: .5px; }
.banner .what { font-size: 16px; font-weight: 600; } .banner .why { opacity: .9; }
.repro { margin: 10px 0; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.repro code { background: #0d1117; color: #e6edf3; padding: 6px 10px; border-radius: 6px;
  font-size: 13px; user-select: all; }
.repro .hint { color: var(--muted); font-size: 12.5px; }
.story { white-space: pre-wrap; background: #fffbea; border-left: 4px solid #e0b000;
  padding: 8px 12px; margin: 10px 0; border-radius: 0 6px 6px 0; max-width: 1000px; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 22px; color: var(--muted); margin: 8px 0; }
.facts b { color: var(--ink); font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px 4px 0; text-align: left;
  vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .4px; color: var(--muted);
  font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
.chip { display: inline-block; min-width: 58px; text-align: center; border-radius: 10px;
  padding: 0 8px; font-size: 12px; font-weight: 700; color: #fff; }
.chip.pass, .chip.ok, .chip.passed { background: var(--ok); }
.chip.fail, .chip.failed { background: var(--fail); }
.chip.unknown { background: var(--unknown); }
.chip.expected { background: #8a6d3b; }
.cell-bad { color: var(--fail); font-weight: 700; }
.note { color: var(--muted); font-size: 12.5px; margin: 4px 0; }
.note.bad { color: var(--fail); font-weight: 600; }
details > summary { cursor: pointer; color: #0969da; margin: 4px 0; }
.metrics { columns: 3 330px; column-gap: 28px; }
.metrics div { break-inside: avoid; display: flex; justify-content: space-between; gap: 12px;
  border-bottom: 1px dotted var(--line); padding: 1px 0; }
.metrics div.named { font-weight: 700; }
.metrics span:last-child { font-variant-numeric: tabular-nums; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12.5px; color: var(--muted);
  margin: 6px 0; align-items: center; }
.legend svg { vertical-align: middle; margin-right: 4px; }
.controls { display: flex; gap: 10px; align-items: center; font-size: 12.5px; color: var(--muted);
  margin: 4px 0; }
.controls button { font: inherit; padding: 2px 10px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--soft); cursor: pointer; }
.timeline-box { overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; padding: 4px 0; }
.timeline-box + .timeline-title { margin-top: 16px; }
.timeline-title { font-weight: 600; margin: 6px 0 2px; }
svg.timeline { display: block; font: 11px -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  cursor: crosshair; user-select: none; }
svg.timeline .tick { stroke: #eaeef2; }
svg.timeline .tick-label { fill: var(--muted); text-anchor: middle; }
svg.timeline .group { font-weight: 700; fill: #444; font-size: 11px; text-transform: uppercase;
  letter-spacing: .6px; }
svg.timeline .group.az { fill: #0b5cad; }
svg.timeline .group-rule { stroke: #d8dee4; }
svg.timeline .lane-label { text-anchor: end; fill: var(--ink); }
svg.timeline .lane-label.small { font-size: 9.5px; fill: var(--muted); }
svg.timeline .lane-label .role { fill: #8c959f; font-size: 9.5px; }
svg.timeline .lane-bg { stroke: #e3e7eb; stroke-width: 1; }
svg.timeline .lane-bg.client { stroke: #f0f2f4; }
svg.timeline .heal { fill: #e9f6ec; }
svg.timeline .phase { fill: #2d7d46; font-weight: 600; }
svg.timeline .state.paused { fill: #f6c667; }
svg.timeline .state.idle { fill: #eeeeee; }
svg.timeline .state-label { fill: #7a1c26; font-weight: 700; font-size: 10px;
  paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg.timeline .band { fill: #9aa7b4; opacity: .85; }
svg.timeline .band.out-of-service { fill: #8e6bbf; opacity: .45; }
svg.timeline .band-label { fill: #fff; font-size: 10px; font-weight: 700; pointer-events: none; }
svg.timeline .band-label.dark { fill: #1f2328; }
svg.timeline .fault { opacity: .85; }
svg.timeline .fault-label { fill: #222; font-size: 10.5px; }
svg.timeline .marker { fill: #fff; stroke: #222; stroke-width: 1.2; }
svg.timeline .marker.spurious-election { fill: #e53935; stroke: #7f0000; }
svg.timeline .marker.leader { stroke: #fff; stroke-width: .8; }
svg.timeline .marker.membership { fill: #8e6bbf; stroke: #3b2360; }
svg.timeline .marker.alarm { fill: #ffb300; stroke: #7a4f00; }
svg.timeline .marker.remediation { fill: #43a047; stroke: #1b5e20; fill-rule: evenodd; }
svg.timeline .op { stroke: none; }
svg.timeline .op.ok { fill: var(--ok); opacity: .55; }
svg.timeline .op.fail { fill: var(--fail); }
svg.timeline .op.unknown { fill: var(--unknown); }
svg.timeline .op.answered { fill: #7ea6d8; }
svg.timeline .msg { stroke: #4a6fa5; stroke-width: .7; opacity: .22; }
svg.timeline .msg.corrupted { stroke: #ef6c00; opacity: .9; stroke-width: 1.2; }
svg.timeline .msg.lost { stroke: #c62828; opacity: .5; stroke-dasharray: 1 2; }
svg.timeline .msg.partition, svg.timeline .msg.gray, svg.timeline .msg.loss,
svg.timeline .msg.queue-full, svg.timeline .msg.cut { stroke: #c62828; opacity: .85;
  stroke-width: 1.2; }
svg.timeline .msg.in-flight, svg.timeline .msg.held { stroke: #888; stroke-dasharray: 1 2; }
svg.timeline .violation { stroke: #b3261e; stroke-width: 2; stroke-dasharray: 8 4; }
svg.timeline .violation.expected { stroke: #8a6d3b; }
svg.timeline .violation-label { fill: #b3261e; font-weight: 700; paint-order: stroke; stroke: #fff;
  stroke-width: 3px; }
svg.timeline .violation-label.expected { fill: #8a6d3b; }
svg.timeline .brush { fill: rgba(9, 105, 218, .12); stroke: #0969da; pointer-events: none; }
.compare td.num, .compare th.num { text-align: right; }
"""

SCRIPT = """
(function () {
  'use strict';
  var svgs = Array.prototype.slice.call(document.querySelectorAll('svg.timeline'));
  if (!svgs.length) { document.documentElement.setAttribute('data-timelines', '0'); return; }
  var full = Math.max.apply(null, svgs.map(function (s) { return +s.dataset.end; }));
  var view = [0, full];
  var label = document.querySelectorAll('.zoom-window');
  function step(span) {  // keep alike with html_timeline.tick_step
    var raw = span / 10, power = Math.pow(10, Math.floor(Math.log10(raw))), f = [1, 2, 5, 10];
    for (var i = 0; i < f.length; i++) { if (raw <= f[i] * power) { return f[i] * power; } }
    return 10 * power;
  }
  function fmt(t, s) { var d = Math.max(0, -Math.floor(Math.log10(s))); return t.toFixed(d) + ' s'; }
  function relayout(t0, t1) {
    view = [t0, t1];
    svgs.forEach(function (svg) {
      var left = +svg.dataset.left, width = +svg.dataset.width, top = +svg.dataset.top;
      var height = +svg.getAttribute('height');
      function X(t) { return left + (t - t0) / (t1 - t0) * width; }
      svg.querySelectorAll('[data-a]').forEach(function (el) {
        var a = +el.dataset.a, b = el.dataset.b === undefined ? a : +el.dataset.b;
        var tag = el.tagName.toLowerCase();
        if (tag === 'rect') {
          el.setAttribute('x', X(a));
          el.setAttribute('width', Math.max(X(b) - X(a), +(el.dataset.min || 1)));
        } else if (tag === 'line') {
          el.setAttribute('x1', X(a)); el.setAttribute('x2', X(b));
        } else if (tag === 'text') {  // a band's label stays in view while the band is
          var from = el.dataset.b === undefined ? X(a) : Math.max(X(a), left);
          el.setAttribute('x', from + +(el.dataset.dx || 0));
          if (el.dataset.b !== undefined) {  // shown while its band has room for it
            var room = Math.min(X(b), left + width) - from;
            el.style.display = room >= +(el.dataset.need || 0) ? '' : 'none';
          }
        } else {
          el.setAttribute('transform', 'translate(' + X(a) + ',' + el.dataset.y + ')');
        }
      });
      var axis = svg.querySelector('g.axis'), s = step(t1 - t0), html = '';
      for (var t = Math.ceil(t0 / s) * s; t <= t1 + 1e-9; t += s) {
        var x = X(t);
        html += '<line class="tick" x1="' + x + '" x2="' + x + '" y1="' + (top - 6) + '" y2="' +
          height + '"></line><text class="tick-label" x="' + x + '" y="' + (top - 10) + '">' +
          fmt(t, s) + '</text>';
      }
      axis.innerHTML = html;
    });
    label.forEach(function (el) {
      el.textContent = t0 === 0 && t1 === full ? 'the whole run' :
        t0.toFixed(3) + ' s to ' + t1.toFixed(3) + ' s';
    });
  }
  svgs.forEach(function (svg) {
    var brush = svg.querySelector('.brush'), start = null;
    function time(event) {
      var box = svg.getBoundingClientRect(), scale = box.width / svg.viewBox.baseVal.width;
      var x = (event.clientX - box.left) / scale, left = +svg.dataset.left;
      var width = +svg.dataset.width;
      x = Math.min(Math.max(x, left), left + width);
      return { x: x, t: view[0] + (x - left) / width * (view[1] - view[0]) };
    }
    svg.addEventListener('mousedown', function (event) {
      start = time(event); brush.setAttribute('x', start.x); brush.setAttribute('width', 0);
    });
    svg.addEventListener('mousemove', function (event) {
      if (start === null) { return; }
      var now = time(event);
      brush.setAttribute('x', Math.min(start.x, now.x));
      brush.setAttribute('width', Math.abs(now.x - start.x));
    });
    window.addEventListener('mouseup', function (event) {
      if (start === null) { return; }
      var end = time(event), a = Math.min(start.t, end.t), b = Math.max(start.t, end.t);
      var moved = Math.abs(end.x - start.x);
      start = null; brush.setAttribute('width', 0);
      if (moved > 4 && b - a > 1e-6) { relayout(a, b); }
    });
    svg.addEventListener('dblclick', function () { relayout(0, full); });
  });
  document.querySelectorAll('button.zoom-reset').forEach(function (button) {
    button.addEventListener('click', function () { relayout(0, full); });
  });
  document.querySelectorAll('button.zoom-out').forEach(function (button) {
    button.addEventListener('click', function () {
      var middle = (view[0] + view[1]) / 2, half = view[1] - view[0];
      relayout(Math.max(0, middle - half), Math.min(full, middle + half));
    });
  });
  function fromHash() {  // report.html#t=14-18 opens zoomed on 14 s to 18 s: a link to a moment
    var match = /^#t=([0-9.]+)-([0-9.]+)$/.exec(window.location.hash);
    if (match && +match[2] > +match[1]) { relayout(+match[1], Math.min(+match[2], full)); }
  }
  window.addEventListener('hashchange', fromHash);
  fromHash();
  document.documentElement.setAttribute('data-timelines', String(svgs.length));
})();
"""


def _legend() -> str:
    """What each mark of a timeline means."""
    def swatch(shape: str) -> str:
        return f'<svg width="22" height="12" aria-hidden="true">{shape}</svg>'
    items = [
        ('<rect x="1" y="2" width="20" height="8" fill="#4e79a7"/>',
         "lease held (colour = holder)"),
        ('<path d="M11,1L16,6L11,11L6,6Z" fill="#fff" stroke="#222"/>', "election started"),
        ('<path d="M11,1L16,6L11,11L6,6Z" fill="#e53935" stroke="#7f0000"/>',
         "spurious election (a healthy leader deposed)"),
        ('<circle cx="11" cy="6" r="3.2" fill="#4e79a7"/>', "became leader"),
        ('<path d="M7.5,2.5H14.5V9.5H7.5Z" fill="#8e6bbf" stroke="#3b2360"/>', "membership change"),
        ('<path d="M11,0.5L16,10L6,10Z" fill="#ffb300" stroke="#7a4f00"/>', "alarm"),
        ('<path d="M7,2H15V10H7Z M11,4A2,2 0 1 0 11.01,4Z" fill="#43a047" stroke="#1b5e20" '
         'fill-rule="evenodd"/>', "automation acted"),
        ('<rect x="1" y="1" width="20" height="10" fill="#f6d5d8" stroke="#d1495b"/>', "crashed"),
        ('<rect x="1" y="1" width="20" height="10" fill="#d9d9d9" stroke="#555"/>', "powered off"),
        ('<rect x="1" y="1" width="20" height="10" fill="#f6c667"/>', "paused"),
        ('<line x1="4" y1="0" x2="16" y2="12" stroke="#4a6fa5"/>', "message"),
        ('<line x1="11" y1="0" x2="11" y2="8" stroke="#c62828" stroke-width="1.4"/>'
         '<path d="M8,6L14,12M8,12L14,6" stroke="#c62828" stroke-width="1.4"/>', "message dropped"),
        ('<line x1="4" y1="0" x2="16" y2="12" stroke="#ef6c00" stroke-width="1.4"/>',
         "message corrupted"),
        ('<line x1="4" y1="0" x2="14" y2="10" stroke="#c62828" stroke-dasharray="1 2"/>'
         '<circle cx="16" cy="10" r="2.4" fill="#fff" stroke="#c62828"/>',
         "message to a node that was down"),
        ('<rect x="1" y="3" width="20" height="6" fill="#3a9d5d" opacity=".55"/>', "operation ok"),
        ('<rect x="1" y="3" width="20" height="6" fill="#d1495b"/>', "failed"),
        ('<rect x="1" y="3" width="20" height="6" fill="#e0a030"/>', "outcome unknown"),
        ('<rect x="1" y="3" width="20" height="6" fill="#7ea6d8"/>',
         "answered: condition false"),
        ('<rect x="1" y="1" width="20" height="10" fill="#e9f6ec"/>', "heal phase"),
        ('<line x1="11" y1="0" x2="11" y2="12" stroke="#b3261e" stroke-dasharray="3 2" '
         'stroke-width="1.5"/>', "failure seen"),
    ]
    return '<div class="legend">' + "".join(
        f'<span>{swatch(shape)}{escape(text)}</span>' for shape, text in items) + '</div>'


def _controls() -> str:
    """The zoom buttons and what the window shows."""
    return ('<div class="controls"><span>Drag across the timeline to zoom in; hover over anything '
            'for details.</span><button class="zoom-out" type="button">zoom out</button>'
            '<button class="zoom-reset" type="button">whole run</button>'
            '<span>showing <b class="zoom-window">the whole run</b></span></div>')


LEGEND = _legend()
CONTROLS = _controls()
