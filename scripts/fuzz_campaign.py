"""A long fuzz campaign over hostile .sqz, safetensors, state_dict and ONNX files.

The same hypothesis strategies and worker as ``tests/core/test_fuzz_hostile_files.py``,
with many more cases: each worker process (``--workers``, one per core) takes
its share of every format, opens every file under a 1 GB memory ceiling and a
clock, and counts how each case ended. A case passes when it loads (a harmless
mutation) or is refused with our own sentence; a traceback, a MemoryError, a
crash or a timeout is a failure, printed with its error. Prints a summary line
per format and a total; exit code 1 if any case failed.

    python scripts/fuzz_campaign.py --cases 100000 --workers 2 [--seconds 10]
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def _run_share(args: tuple[str, int, int, float, str]) -> dict:
    """Generate and open ``count`` cases of one format in one worker process; returns the tallies."""
    fmt, count, seed, seconds, log = args
    from hypothesis import HealthCheck, Phase, given, seed as hseed, settings

    from hostile_strategies import FORMATS, FuzzWorker

    tally: collections.Counter = collections.Counter()
    slowest = 0.0
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        worker = FuzzWorker(Path(folder), timeout=seconds)

        @hseed(seed)
        @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(FORMATS[fmt]())
        def case(file: tuple[str, bytes]) -> None:
            nonlocal slowest
            result = worker.run(*file)
            tally[result.outcome] += 1
            slowest = max(slowest, result.seconds)
            if result.outcome not in ("loaded", "refused") and len(failures) < 20:
                failures.append(f"{fmt} {result.outcome}: {result.error[-600:]}")
                with open(log, "a") as fh:
                    fh.write(json.dumps({"format": fmt, "outcome": result.outcome, "error": result.error,
                                         "file": file[1].hex() if len(file[1]) < 20000 else ""}) + "\n")

        try:
            case()
        finally:
            worker.close()
    return {"format": fmt, "tally": dict(tally), "slowest": slowest, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="total cases over all formats")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per case")
    parser.add_argument("--chunk", type=int, default=2500, help="cases per worker process before a fresh one")
    parser.add_argument("--log", default="fuzz_failures.jsonl", help="failing cases are appended here")
    args = parser.parse_args()

    from hostile_strategies import FORMATS

    per_format = args.cases // len(FORMATS)
    jobs = []
    for i, fmt in enumerate(sorted(FORMATS)):
        left, part = per_format, 0
        while left > 0:
            n = min(args.chunk, left)
            jobs.append((fmt, n, 1000 * i + part, args.seconds, args.log))
            left -= n
            part += 1
    started = time.perf_counter()
    totals: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    slowest: dict[str, float] = collections.defaultdict(float)
    failures: list[str] = []
    with multiprocessing.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool:
        for done in pool.imap_unordered(_run_share, jobs):
            totals[done["format"]].update(done["tally"])
            slowest[done["format"]] = max(slowest[done["format"]], done["slowest"])
            failures += done["failures"]
            n = sum(sum(t.values()) for t in totals.values())
            print(f"[{time.perf_counter() - started:7.0f} s] {n:,d} cases done", flush=True)
    total = collections.Counter()
    for fmt in sorted(totals):
        t = totals[fmt]
        total.update(t)
        print(f"{fmt:12s} {sum(t.values()):8,d} cases: {t['loaded']:,d} loaded, {t['refused']:,d} refused with "
              f"our error, {t['foreign']:,d} other errors, {t['timeout']:,d} timeouts; slowest {slowest[fmt]:.2f} s")
    bad = total["foreign"] + total["timeout"]
    print(f"TOTAL {sum(total.values()):,d} cases in {time.perf_counter() - started:.0f} s: "
          f"{total['loaded'] + total['refused']:,d} ended in a load or our own error, {bad:,d} failures")
    for line in failures[:20]:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
