"""Start-up cost of the light commands: `er score --help` and `er advantage --help` vs `python -c pass`.

Goal (foundation issue): within 0.3 s of a bare interpreter (no torch, transformers or math-verify
imported until needed).   Run: .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from _util import ER, save, table


def median_seconds(args: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    base = median_seconds([sys.executable, "-c", "pass"])
    rows = [("python -c pass", f"{base:.3f}", "-")]
    for cmd in (["score", "--help"], ["advantage", "--help"]):
        t = median_seconds([*ER, *cmd])
        rows.append(("er " + " ".join(cmd), f"{t:.3f}", f"+{t - base:.3f} s"))
    text = table(rows, ("command", "median s", "over bare python (goal < +0.300 s)"))
    print(text)
    save("startup", text)


if __name__ == "__main__":
    main()
