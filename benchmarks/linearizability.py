"""Linearizability benchmark: check the whole Jepsen etcd corpus (102 histories) with the cas-register model.

Run it from the repository root::

    python benchmarks/linearizability.py              # checking only: the figure to compare
    python benchmarks/linearizability.py --shrink     # also shrink each violation to its evidence

It reads every history listed in ``verdicts.txt`` of ``../shared/corpora/porcupine-etcd`` (or
``--corpus DIR``), checks each one, and prints one line per history: its verdict, whether that agrees
with the corpus, the model steps and the CPU time of the check. The last lines are the agreement count
and the total CPU time (``time.process_time``, this process only) of the checks, parsing excluded and
reported apart. The target is at most 2 s of CPU for the corpus; Porcupine (Go) takes about 0.7 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.checkers import check_history, read_history

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "porcupine-etcd"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--shrink", action="store_true", help="also shrink violations to evidence")
    args = parser.parse_args()
    verdicts_file = args.corpus / "verdicts.txt"
    if not verdicts_file.exists():
        print(f"no corpus at {args.corpus} (verdicts.txt missing)", file=sys.stderr)
        return 2
    verdicts = [line.split() for line in verdicts_file.read_text().splitlines() if line.strip()]
    parse_started = time.process_time()
    histories = {name: read_history(args.corpus / name, "jepsen-log") for name, _ in verdicts}
    parse_s = time.process_time() - parse_started
    total_s, agreed = 0.0, 0
    for name, expected in verdicts:
        started = time.process_time()
        result = check_history(histories[name], "cas-register", shrink=args.shrink)
        elapsed_s = time.process_time() - started
        total_s += elapsed_s
        agreed += result.verdict == expected
        mark = "agrees" if result.verdict == expected else f"DISAGREES (corpus: {expected})"
        print(f"{name}  {result.verdict:<16}  {mark:<7}  {result.steps:>8} steps  "
              f"{elapsed_s * 1000:8.1f} ms")
    what = "check and shrink" if args.shrink else "check only"
    print(f"agreement: {agreed}/{len(verdicts)}")
    print(f"total CPU: {total_s:.3f} s for {len(verdicts)} histories ({what}); "
          f"parsing {parse_s:.3f} s apart")
    return 0 if agreed == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
