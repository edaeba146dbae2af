"""`er score --reward math --workers 2` against a single-process math-verify loop over the same rows.

Goal (foundation issue): >= 1.7x the rows/s of the loop on 20k rows.
Run: .venv/bin/python bench/score_math.py [--rows 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import orjson

from _util import ER, run_timed, sample_rows, save, table, write_jsonl


def single_process_loop(path: Path) -> float:
    """What a user would write: parse gold and completion, verify, one row at a time."""
    from math_verify import parse, verify

    start = time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            r = orjson.loads(line)
            gold = parse(f"${r['answer']}$")
            verify(gold, parse(r["completion"]))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="4k rows")
    args = ap.parse_args()
    n = 4_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.jsonl"
        rows = []
        for r in sample_rows(n):
            del r["correct"], r["reward"]
            rows.append(r)
        write_jsonl(path, rows)
        import math_verify  # noqa: F401 - import cost outside the timed loop

        base = single_process_loop(path)
        t = run_timed([*ER, "score", "-q", "-r", "math", "--workers", str(args.workers), str(path)])
    text = f"{n:,} rows\n" + table(
        [("math-verify loop, 1 process", f"{n / base:,.0f}", "1.00"),
         (f"er score -r math --workers {args.workers}", f"{n / t:,.0f}", f"{base / t:.2f}")],
        ("", "rows/s", "ratio (goal >= 1.7)"))
    print(text)
    save("score_math", text)


if __name__ == "__main__":
    main()
