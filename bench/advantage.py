"""`er advantage` throughput and memory against a bare orjson loads+dumps loop over the same file.

Goal (foundation issue): >= 1/3 of the baseline's rows/s over 1M sample rows, peak RSS < 300 MB.
Run: .venv/bin/python bench/advantage.py [--rows 1000000] [--estimator grpo]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import orjson

from _util import ER, peak_rss_mb_of, run_timed, sample_rows, save, table, write_jsonl


def orjson_loop(path: Path) -> float:
    start = time.perf_counter()
    loads, dumps = orjson.loads, orjson.dumps
    with open(path, "rb") as f, open(os.devnull, "wb") as out:
        for line in f:
            record = loads(line)
            out.write(dumps(record) + b"\n")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100k rows")
    args = ap.parse_args()
    n = 100_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.jsonl"
        write_jsonl(path, sample_rows(n, think_words=20))
        mb = path.stat().st_size / 1e6
        base = orjson_loop(path)
        rows = [("orjson loads+dumps loop", f"{n / base:,.0f}", "1.00", "-")]
        for spec in ("grpo", "batch"):
            cmd = [*ER, "advantage", "-q", "-e", spec, str(path)]
            t = run_timed(cmd)
            rss = peak_rss_mb_of(cmd)
            rows.append((f"er advantage -e {spec}", f"{n / t:,.0f}", f"{base / t:.2f}", f"{rss:.0f}"))
    text = (f"{n:,} rows ({mb:.0f} MB JSONL)\n"
            + table(rows, ("", "rows/s", "ratio (goal >= 0.33)", "peak RSS MB (goal < 300)")))
    print(text)
    save("advantage", text)


if __name__ == "__main__":
    main()
