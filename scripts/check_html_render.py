"""Render HTML reports in a real headless browser (Debian's chromium) and check the pictures.

    python scripts/check_html_render.py [FILE ...] [--out DIR] [--seed N] [--chromium PATH]

Each FILE is a scenario (``.yaml``: run from ``--seed``, every variant on one page, as ``graylink run``
draws it), a run's JSON report (``.json``: drawn as ``graylink report`` draws it) or a report
(``.html``). Default: ``scenarios/s01-leader-crash.yaml`` and
``scenarios/s02-gray-link-leader-to-follower.yaml``. For each page it

1. takes a screenshot, ``DIR/<name>.png`` (1400 x 2000 px), with the network off
   (``--disable-background-networking``; the page references nothing outside itself anyway);
2. loads the page again and reads its DOM after the script ran: the script marks the page with
   how many timelines it found (``data-timelines``), which must be how many the page has, so a
   script error shows here;
3. checks the PNG: the right size, and not blank.

Then look at the PNGs: this script proves that the page renders, not that it reads well. Exit 0 when
every page passed, 1 when one did not, 2 on bad input or without chromium
(``apt-get install -y chromium``). Install Graylink first (``pip install -e .``), or run from the
repository's root.
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import load_scenario, run_scenario  # noqa: E402
from harness.errors import ScenarioError  # noqa: E402
from harness.html_report import load_result, render_html  # noqa: E402

DEFAULT_FILES = ("scenarios/s01-leader-crash.yaml", "scenarios/s02-gray-link-leader-to-follower.yaml")
WIDTH, HEIGHT = 1400, 2000
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", metavar="FILE", default=list(DEFAULT_FILES))
    parser.add_argument("--out", default="reports/render-check", metavar="DIR",
                        help="where the pages and screenshots go (default: reports/render-check)")
    parser.add_argument("--seed", type=int, default=None, help="the seed for scenarios")
    parser.add_argument("--chromium", default=None, help="the browser (default: chromium on PATH)")
    args = parser.parse_args()
    browser = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("error: chromium not found; on Debian: apt-get install -y chromium", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        pages = [_page(Path(name), out, args.seed) for name in args.files]
    except ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    problems = [problem for page in pages for problem in _check(browser, page, out)]
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


def _page(path: Path, out: Path, seed: int | None) -> Path:
    """The HTML page for ``path`` (a scenario, a run's JSON report, or a page already)."""
    if path.suffix == ".html":
        if not path.exists():
            raise ScenarioError("no such file", file=str(path))
        return path.resolve()
    if path.suffix == ".json":
        results = [load_result(path)]
    else:
        scenario = load_scenario(path)
        results = [run_scenario(run, seed) for run in scenario.variant_scenarios()]
    page = out / f"{path.stem}.html"
    page.write_text(render_html(results), encoding="utf-8")
    return page.resolve()


def _check(browser: str, page: Path, out: Path) -> list[str]:
    screenshot = (out / f"{page.stem}.png").resolve()
    screenshot.unlink(missing_ok=True)
    _chromium(browser, f"--screenshot={screenshot}", page.as_uri())
    dom = _chromium(browser, "--dump-dom", page.as_uri())
    expected = page.read_text(encoding="utf-8").count('<svg class="timeline"')
    problems = []
    marked = re.search(r'<html[^>]*\sdata-timelines="(\d+)"', dom)
    if marked is None:
        problems.append(f"{page}: the page's script did not run to its end (no data-timelines)")
    elif int(marked.group(1)) != expected:
        problems.append(f"{page}: the script found {marked.group(1)} timelines, the page has "
                        f"{expected}")
    problems += [f"{screenshot}: {problem}" for problem in _png_problems(screenshot)]
    if not problems:
        print(f"ok: {screenshot} ({WIDTH}x{HEIGHT}, {expected} timeline"
              f"{'s' if expected != 1 else ''}): look at it")
    return problems


def _chromium(browser: str, *arguments: str) -> str:
    completed = subprocess.run([browser, *FLAGS, *arguments], capture_output=True, text=True,
                               timeout=180, check=False)
    return completed.stdout


def _png_problems(path: Path) -> list[str]:
    """Not a PNG, the wrong size, or blank.

    Blank is judged on the filtered scanlines (decoding every pixel in Python would be slow): a
    page of one colour filters to bytes that are nearly all 0 (or 255 for white, unfiltered), while
    a drawn page leaves many other values.
    """
    if not path.exists():
        return ["no screenshot was written"]
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return ["not a PNG"]
    header, idat, offset = b"", bytearray(), 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        offset += 12 + length
    width, height = struct.unpack(">II", header[:8])
    if (width, height) != (WIDTH, HEIGHT):
        return [f"{width}x{height} pixels, expected {WIDTH}x{HEIGHT}"]
    sample = zlib.decompress(bytes(idat))[::5]
    drawn = (len(sample) - sample.count(0) - sample.count(255)) / max(len(sample), 1)
    if drawn < 0.005:
        return [f"blank: only {drawn:.2%} of the sampled scanline bytes carry a drawing"]
    return []


if __name__ == "__main__":
    sys.exit(main())
