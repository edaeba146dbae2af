"""`er eval` throughput and memory against a bare orjson loads loop over the same scored file.

Goal (eval issue): over 1M scored rows, >= 1/3 of the baseline's rows/s, peak RSS < 300 MB (RSS of the
`er eval` subprocess, from resource.getrusage(RUSAGE_CHILDREN) in a wrapper process).
Run: .venv/bin/python bench/eval.py [--quick] [--rows N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import orjson
from _util import ER, peak_rss_mb_of, run_timed, sample_rows, save, table, write_jsonl


def orjson_loop(path: Path) -> float:
    start = time.perf_counter()
    loads = orjson.loads
    with open(path, "rb") as f:
        for line in f:
            loads(line)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100k rows")
    args = ap.parse_args()
    n = 100_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scored.jsonl"
        write_jsonl(path, sample_rows(n))
        mb = path.stat().st_size / 1e6
        base = min(orjson_loop(path) for _ in range(2))
        rows = [("orjson loads loop", f"{n / base:,.0f}", "1.00", "-")]
        runs = [("er eval --budgets 1k,2k,4k", ["--budgets", "1k,2k,4k"]),
                ("er eval --maj 8 --extract boxed", ["--maj", "8", "--extract", "boxed"])]
        for label, flags in runs:
            cmd = [*ER, "eval", "-q", *flags, str(path)]
            t = run_timed(cmd)
            rss = peak_rss_mb_of(cmd)
            rows.append((label, f"{n / t:,.0f}", f"{base / t:.2f}", f"{rss:.0f}"))
    text = (f"{n:,} scored rows ({mb:.0f} MB JSONL)\n"
            + table(rows, ("", "rows/s", "ratio (goal >= 0.33)", "peak RSS MB (goal < 300)")))
    print(text)
    save("eval" + ("_quick" if args.quick else ""), text)


if __name__ == "__main__":
    main()
