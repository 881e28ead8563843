"""The HTML report: one self-contained file for one run, or for several runs side by side.

Theory of operation. ``render_html(results)`` turns ``Result``s (live, or read back from their JSON
reports by ``load_result``: the two render alike, byte for byte) into one HTML page with its
stylesheet, script and pictures inline, and no reference to anything outside it: it opens offline,
from a mail attachment or a CI artifact. For each run the page shows, in this order: the verdict, the
command that reproduces the run, the scenario's story, the timeline (``html_timeline``: faults,
leases, elections, nodes, messages, client operations), the checks with their evidence, the
expectations, the failures, the faults, the client operations that did not succeed, the metrics and
the statistics. Several runs (the variants of one scenario and seed) get a table comparing them
first, then their timelines one above the other on one time axis, then each run's details.

Everything that comes from a run goes through ``html.escape``: scenario names, descriptions, node
names, keys and values, evidence. The page embeds no data in its script.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from harness.checkers.verdict import CONDITION_FAILED_ERRORS, FAIL_VERDICT
from harness.errors import ScenarioError
from harness.expectations import CHECK_PREFIX, ExpectationError, parse_expectation
from harness.html_assets import CONTROLS, LEGEND, SCRIPT, STYLE
from harness.html_timeline import render_timeline
from harness.recording import MESSAGE_FATES
from harness.result import Result

__all__ = ["render_html", "load_result", "write_html"]

TROUBLED_SHOWN = 200  # failed and unknown operations listed, at most
EVIDENCE_SHOWN = 60  # evidence lines shown per check (the JSON has them all)


def load_result(path: str | Path) -> Result:
    """A run read back from its JSON report; a ``ScenarioError`` (exit 2) says why it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise ScenarioError("is a directory, not a run's JSON report", file=str(path)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ScenarioError(f"not a run's JSON report: {error}", file=str(path)) from None
    if not isinstance(data, dict):
        raise ScenarioError(f"not a run's JSON report (it holds a {type(data).__name__}, not an "
                            f"object); `graylink run` writes one per run to reports/",
                            file=str(path))
    try:
        return Result.from_dict(data)
    except ValueError as error:
        raise ScenarioError(f"not a run's JSON report ({error}); `graylink run` writes one per "
                            f"run to reports/", file=str(path)) from None


def write_html(results: Sequence[Result], path: str | Path) -> Path:
    """Render ``results`` into ``path`` (its directory created if need be)."""
    target = Path(path)
    if target.parent != Path(""):
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(results), encoding="utf-8")
    return target


def render_html(results: Sequence[Result]) -> str:
    """One page for ``results``: one run, or several side by side (see the module docstring)."""
    if not results:
        raise ValueError("render_html needs at least one result")
    end_s = max(_end_s(result) for result in results)
    title = _page_title(results)
    parts = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f'<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>']
    if len(results) == 1:
        parts.append(_run_section(results[0], 0, end_s, timeline=True))
    else:
        parts.append(f'<h1>{escape(title)}</h1>')
        parts.append(_comparison(results))
        parts.append('<h2>Timelines, on one time axis</h2>' + LEGEND + CONTROLS)
        for index, result in enumerate(results):
            parts.append(f'<div class="timeline-title">{_run_name(result)} '
                         f'{_verdict_chip(result)}</div>'
                         f'<div class="timeline-box">{render_timeline(result, index, end_s)}</div>'
                         f'{_sampling_note(result)}')
        for index, result in enumerate(results):
            parts.append(_run_section(result, index, end_s, timeline=False))
    parts.append(f'</main><script>{SCRIPT}</script></body></html>\n')
    return "".join(parts)


# -- one run ------------------------------------------------------------------------------------------
def _run_section(result: Result, index: int, end_s: float, *, timeline: bool) -> str:
    recording = result.recording or {}
    verdict = _verdict_word(result)
    parts = [f'<section class="run" id="run-{index}">',
             f'<div class="banner {verdict.lower().replace(" ", "-")}">'
             f'<span class="verdict">{verdict}</span><span class="what">{_run_name(result)}</span>'
             f'<span class="why">seed {result.seed} · {escape(result.reason)}</span></div>',
             f'<div class="repro"><code>{escape(result.reproduce)}</code>'
             f'<span class="hint">reproduces this run exactly, event for event</span></div>']
    if recording.get("description"):
        parts.append(f'<div class="story">{escape(str(recording["description"]).strip())}</div>')
    parts.append(_facts(result))
    if timeline:
        parts.append('<h2>Timeline</h2>' + LEGEND + CONTROLS
                     + f'<div class="timeline-box">{render_timeline(result, index, end_s)}</div>'
                     + _sampling_note(result))
    parts += [_checks(result), _failures(result), _faults(result), _operations(result),
              _metrics(result), _statistics(result), '</section>']
    return "".join(parts)


def _facts(result: Result) -> str:
    recording = result.recording or {}
    facts = [("simulated", f"{result.sim_time_s:g} s"), ("wall time", f"{result.wall_time_s:.2f} s"),
             ("events", f"{result.events:,}"), ("trace digest", result.trace_digest)]
    if recording.get("duration_s") is not None:
        facts.insert(1, ("fault phase", f"0 – {recording['duration_s']:g} s"))
        facts.insert(2, ("heal phase", f"{recording['heal_s']:g} s more"))
    if result.source:
        facts.append(("scenario file", result.source))
    return '<div class="facts">' + "".join(
        f'<span>{escape(name)}: <b class="mono">{escape(str(value))}</b></span>'
        for name, value in facts) + "</div>"


def _checks(result: Result) -> str:
    checks = [check for check in result.checks if not check.name.startswith(CHECK_PREFIX)]
    expectations = [check for check in result.checks if check.name.startswith(CHECK_PREFIX)]
    parts = []
    if checks:
        parts.append('<h2>Checks</h2><table class="checks"><tr><th>verdict</th><th>check</th>'
                     '<th>summary and evidence</th></tr>')
        parts += [_check_row(check.verdict, check.name, check.summary, check.evidence,
                             check.time_ns) for check in checks]
        parts.append('</table>')
    if expectations:
        parts.append('<h2>Expectations</h2><p class="note">What the scenario says its run must '
                     'show, judged after the heal phase.</p><table class="checks"><tr>'
                     '<th>verdict</th><th>expectation</th><th>actual</th></tr>')
        parts += [_check_row(check.verdict, check.name.removeprefix(CHECK_PREFIX), check.summary,
                             check.evidence, None) for check in expectations]
        parts.append('</table>')
    return "".join(parts)


def _check_row(verdict: str, name: str, summary: str, evidence: Sequence[str],
               time_ns: int | None) -> str:
    when = f' <span class="note">at {time_ns / 1e9:.6f} s</span>' if time_ns is not None else ""
    detail = ""
    if evidence:
        shown = list(evidence[:EVIDENCE_SHOWN])
        if len(evidence) > EVIDENCE_SHOWN:
            shown.append(f"... and {len(evidence) - EVIDENCE_SHOWN} more lines (in the JSON report)")
        opened = " open" if verdict == FAIL_VERDICT else ""
        detail = (f'<details{opened}><summary>evidence ({len(evidence)} lines)</summary>'
                  f'<pre>{escape(chr(10).join(shown))}</pre></details>')
    return (f'<tr><td><span class="chip {escape(verdict)}">{escape(verdict)}</span></td>'
            f'<td class="mono">{escape(name)}</td><td>{escape(summary)}{when}{detail}</td></tr>')


def _failures(result: Result) -> str:
    parts = []
    if result.failures:
        parts.append('<h2>Failures</h2>')
        parts += [f'<pre>{escape(failure.describe())}</pre>' for failure in result.failures]
        if result.trace_tail and any(f.kind in ("exception", "invariant", "step-limit",
                                                "ambient-nondeterminism") for f in result.failures):
            parts.append('<details><summary>the last events before the end</summary><pre>'
                         + escape("\n".join(result.trace_tail)) + '</pre></details>')
    if result.expected_failures:
        parts.append('<h2>Expected failures</h2><p class="note">Foretold by an expectation '
                     '<code>check NAME fails</code>, so they do not fail the run.</p>')
        parts += [f'<pre>{escape(failure.describe())}</pre>' for failure in result.expected_failures]
    return "".join(parts)


def _faults(result: Result) -> str:
    if not result.faults:
        return '<h2>Faults</h2><p class="note">No fault struck this run.</p>'
    rows = "".join(
        f'<tr><td class="num mono">{fault.started_ns / 1e9:.3f} s</td><td class="num mono">'
        f'{"" if fault.ended_ns is None else f"{fault.ended_ns / 1e9:.3f} s"}</td>'
        f'<td>{escape(fault.family)}</td><td class="mono">{escape(fault.description)}</td></tr>'
        for fault in result.faults)
    return ('<h2>Faults</h2><table><tr><th>struck</th><th>undone</th><th>family</th>'
            f'<th>fault</th></tr>{rows}</table>')


def _operations(result: Result) -> str:
    system = (result.recording or {}).get("system") or {}
    operations = system.get("operations") or []
    if not operations:
        return ""
    counts = Counter((op[2], _outcome(op)) for op in operations)
    functions = sorted({f for f, _ in counts})
    total = system.get("operations_total", len(operations))
    parts = ['<h2>Client operations</h2>',
             f'<p class="note">{total:,} operations in the run; the counts below are of the '
             f'{len(operations):,} drawn (every one that failed or whose outcome is unknown, '
             f'{_every(system.get("operations_stride", 1))} that succeeded).</p>',
             '<table><tr><th>operation</th><th class="num">ok</th><th class="num">condition '
             'false</th><th class="num">fail</th><th class="num">unknown</th></tr>']
    for f in functions:
        parts.append(f'<tr><td class="mono">{escape(str(f))}</td>' + "".join(
            f'<td class="num">{counts.get((f, outcome), 0):,}</td>'
            for outcome in ("ok", "answered", "fail", "unknown")) + '</tr>')
    parts.append('</table>')
    troubled = [op for op in operations if _outcome(op) in ("fail", "unknown")]
    if troubled:
        parts.append(f'<h3>Operations that did not succeed ({len(troubled):,}'
                     f'{", the first " + str(TROUBLED_SHOWN) if len(troubled) > TROUBLED_SHOWN else ""}'
                     f')</h3><table><tr><th>invoked</th><th>took</th><th>client</th>'
                     '<th>process</th><th>operation</th><th>key</th><th>argument</th>'
                     '<th>outcome</th></tr>')
        parts += [_operation_row(op) for op in troubled[:TROUBLED_SHOWN]]
        parts.append('</table>')
    return "".join(parts)


def _outcome(operation: list[Any]) -> str:
    """ok, fail or unknown; or ``answered``: a fail that is the service's answer "your condition is
    false" (a conditional write refused), not a failure to serve."""
    outcome, error = operation[8], operation[9]
    return "answered" if outcome == "fail" and error in CONDITION_FAILED_ERRORS else str(outcome)


def _operation_row(operation: list[Any]) -> str:
    process, node, f, key, argument, result, invoked_ns, completed_ns, outcome, error = operation
    took = "—" if completed_ns is None else f"{(completed_ns - invoked_ns) / 1e6:.1f} ms"
    said = escape(str(error)) if error else (escape(_json(result)) if result is not None else "")
    return (f'<tr><td class="num mono">{invoked_ns / 1e9:.3f} s</td><td class="num mono">{took}</td>'
            f'<td class="nowrap">{escape(str(node or ""))}</td>'
            f'<td class="num">{escape(str(process))}</td>'
            f'<td class="mono">{escape(str(f))}</td><td class="mono">{escape(_json(key))}</td>'
            f'<td class="mono">{escape(_json(argument, 100))}</td>'
            f'<td><span class="chip {escape(outcome)}">{escape(outcome)}</span> {said}</td></tr>')


def _json(value: Any, chars: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= chars else text[:chars - 1] + "…"


def _metrics(result: Result) -> str:
    if not result.metrics:
        return ""
    named = {subject for subject, _ in _subjects([result])}
    rows = "".join(
        f'<div class="{"named" if name in named else ""}"><span class="mono">{escape(name)}</span>'
        f'<span>{escape(_number(value))}</span></div>'
        for name, value in sorted(result.metrics.items()))
    return ('<h2>Metrics</h2><p class="note">In bold: the metrics the expectations name.</p>'
            f'<div class="metrics">{rows}</div>')


def _statistics(result: Result) -> str:
    statistics = result.statistics or {}
    network = statistics.get("network") or {}
    if not network and not statistics.get("nodes"):
        return ""
    totals = {name: value for name, value in network.items() if name != "links"}
    parts = ['<h2>Statistics</h2><div class="metrics">']
    parts += [f'<div><span class="mono">network.{escape(name)}</span>'
              f'<span>{escape(_number(value))}</span></div>' for name, value in sorted(totals.items())]
    kernel = statistics.get("kernel") or {}
    parts += [f'<div><span class="mono">kernel.{escape(name)}</span>'
              f'<span>{escape(_number(value))}</span></div>' for name, value in sorted(kernel.items())]
    parts.append('</div>')
    for title, table in (("per node", statistics.get("nodes")), ("per disk", statistics.get("disks")),
                         ("per link", network.get("links"))):
        if table:
            parts.append(f'<details><summary>{escape(title)} ({len(table)})</summary>'
                         f'{_table(table)}</details>')
    return "".join(parts)


def _table(rows: dict[str, Any]) -> str:
    """A dict of dicts of numbers as a table: a row per key, a column per number's name."""
    columns: list[str] = []
    for row in rows.values():
        for name, value in (row.items() if isinstance(row, dict) else ()):
            if name not in columns and not isinstance(value, (dict, list)):
                columns.append(name)
    head = "".join(f'<th class="num">{escape(name.replace("_", " "))}</th>' for name in columns)
    body = "".join(
        f'<tr><td class="mono">{escape(str(key))}</td>' + "".join(
            f'<td class="num">{escape(_number(row.get(name, "")))}</td>' for name in columns)
        + '</tr>' for key, row in rows.items() if isinstance(row, dict))
    return f'<table><tr><th></th>{head}</tr>{body}</table>'


# -- several runs -------------------------------------------------------------------------------------
def _comparison(results: Sequence[Result]) -> str:
    """Verdicts, and every metric or check an expectation names, one column per run."""
    seeds = sorted({result.seed for result in results})
    head = "".join(f'<th class="num">{_run_name(result, short=True)}'
                   f'{f" · seed {result.seed}" if len(seeds) > 1 else ""}</th>' for result in results)
    rows = ['<tr><td>verdict</td>' + "".join(f'<td class="num">{_verdict_chip(result)}</td>'
                                             for result in results) + '</tr>']
    for subject, is_check in _subjects(results):
        label = f"check {subject}" if is_check else subject
        rows.append(f'<tr><td class="mono">{escape(label)}</td>' + "".join(
            _cell(result, subject, is_check) for result in results) + '</tr>')
    return ('<h2>Side by side</h2><p class="note">Every metric and check an expectation names; '
            'in red, a value whose expectation failed. Seed'
            f'{"s" if len(seeds) > 1 else ""} {", ".join(map(str, seeds))}.</p>'
            f'<table class="compare"><tr><th></th>{head}</tr>{"".join(rows)}</table>')


def _subjects(results: Sequence[Result]) -> list[tuple[str, bool]]:
    subjects: list[tuple[str, bool]] = []
    for result in results:
        for check in result.checks:
            subject = _subject_of(check.name)
            if subject is not None and subject not in subjects:
                subjects.append(subject)
    return subjects


def _subject_of(name: str) -> tuple[str, bool] | None:
    if not name.startswith(CHECK_PREFIX):
        return None
    try:
        expectation = parse_expectation(name[len(CHECK_PREFIX):])
    except (ExpectationError, ValueError):
        return None
    return expectation.subject, expectation.relation in ("passes", "fails")


def _cell(result: Result, subject: str, is_check: bool) -> str:
    if is_check:
        verdicts = {check.name: check.verdict for check in result.checks}
        for failure in (*result.failures, *result.expected_failures):
            verdicts.setdefault(failure.kind, FAIL_VERDICT)
        text = verdicts.get(subject, "-")
    else:
        value = result.metrics.get(subject)
        text = "-" if value is None else _number(value)
    failed = any(check.verdict == FAIL_VERDICT and _subject_of(check.name) == (subject, is_check)
                 for check in result.checks)
    css = ' cell-bad' if failed else ""
    return f'<td class="num mono{css}">{escape(text)}{" ✗" if failed else ""}</td>'


# -- pieces -------------------------------------------------------------------------------------------
def _sampling_note(result: Result) -> str:
    recording = result.recording or {}
    messages = recording.get("messages")
    if not messages:
        return ""
    rows = messages.get("rows", [])
    fates = Counter(row[5] for row in rows)
    dropped = sum(fates[fate] for fate in MESSAGE_FATES[3:8])
    text = (f'Messages: {len(rows):,} drawn of {messages.get("sent", 0):,} sent: '
            f'{_every(messages.get("stride", 1))} send, and '
            f'{"every" if messages.get("dropped_stride", 1) == 1 else _every(messages["dropped_stride"])}'
            f' dropped or corrupted copy ({messages.get("dropped", 0):,} in the run; '
            f'{dropped:,} drawn).')
    error = (recording.get("system") or {}).get("error")
    note = f'<p class="note">{escape(text)}</p>'
    if error:
        note += f'<p class="note bad">The system\'s timeline() failed: {escape(str(error))}</p>'
    return note


def _every(stride: int) -> str:
    return "every" if stride == 1 else ("every other" if stride == 2 else f"one in {stride:,}")


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _end_s(result: Result) -> float:
    recording = result.recording or {}
    end_ns = recording.get("end_ns")
    return (end_ns / 1e9) if isinstance(end_ns, (int, float)) else result.sim_time_s


def _verdict_word(result: Result) -> str:
    return "PASSED" if result.passed else ("ERROR" if result.internal_error else "FAILED")


def _verdict_chip(result: Result) -> str:
    word = _verdict_word(result).lower()
    css = "passed" if result.passed else "failed"
    return f'<span class="chip {css}">{escape(word)}</span>'


def _run_name(result: Result, short: bool = False) -> str:
    """The scenario and variant, as HTML; ``short``: the variant alone, if it is one."""
    if result.variant is None:
        return escape(result.scenario)
    if short:
        return escape(result.variant)
    base = result.scenario.removesuffix(f"[{result.variant}]")
    return f'{escape(base)} · variant <b>{escape(result.variant)}</b>'


def _page_title(results: Sequence[Result]) -> str:
    first = results[0]
    if len(results) == 1:
        verdict = _verdict_word(first)
        return f"{verdict}: {first.scenario} (seed {first.seed}) - Graylink"
    names = sorted({r.scenario.removesuffix(f"[{r.variant}]") if r.variant else r.scenario
                    for r in results})
    return f"{', '.join(names)}: {len(results)} runs side by side - Graylink"
