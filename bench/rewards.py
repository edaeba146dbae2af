"""Every reward of the catalog except the verifier itself, scored by `er score`, against
`er score --reward length` (the I/O floor).

`length` only reads `completion_tokens`, so its rows/s is what reading, checking and writing the
stream costs; a reward's ratio to it says how much its own work slows the stage. Goal: >= 0.5.
Rows carry `correct`, as rows do once a verifier ran earlier in the pipe (or in stored rollouts), so
rewards that need correctness read it; verifying answers (`math`) is bench/score_math.py's job.
Run: .venv/bin/python bench/rewards.py [--quick]   (100k rows; --quick: 10k)
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import ER, run_timed, sample_rows, save, table, write_jsonl  # noqa: E402

TARGETS = [10, 30, 50, 80, 150, 300, 500, 700]  # integers: l1 reads the same field as a token count
# parameters a reward needs to read the bench rows (field names), everything else at its defaults
PARAMS = {"emotion-wheel": "gold_field=emotions"}


def rows(n: int):
    rng = random.Random(1)
    for r in sample_rows(n, think_words=80):
        del r["reward"]
        lower = rng.choice([20, 50, 100])
        r.update(target_length=rng.choice(TARGETS), target_lower=lower, target_upper=2 * lower,
                 level=rng.choice(["short", "medium", "long"]), budget=rng.choice([512, 1024, 2048, 4096]),
                 mode=rng.choice(["long", "short"]), emotions=rng.choice(["happiness, worried", "sad", "angry, calm"]),
                 conciseness=rng.random(), task="addition")
        yield r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10k rows instead of 100k")
    args = ap.parse_args()
    n = 10_000 if args.quick else 100_000
    from er.rewards import REWARDS

    names = [name for name in REWARDS.names() if name not in ("length", "math")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.jsonl"
        write_jsonl(path, rows(n))

        def timed(spec: str) -> float:
            return run_timed([*ER, "score", "-q", "--workers", "0", "-r", spec, str(path)])

        floor = timed("length")
        results.append(("length (I/O floor)", f"{n / floor:,.0f}", "1.00", ""))
        for name in names:
            spec = f"{name}:{PARAMS[name]}" if name in PARAMS else name
            try:
                t = timed(spec)
            except SystemExit as exc:
                results.append((name, "-", "-", f"failed: {str(exc).splitlines()[-1][:80]}"))
                continue
            ratio = floor / t
            results.append((name, f"{n / t:,.0f}", f"{ratio:.2f}", "" if ratio >= 0.5 else "below goal"))
    text = f"{n:,} rows, er score --workers 0, one process each\n" + table(
        results, ("reward", "rows/s", "ratio to length (goal >= 0.5)", "note"))
    print(text)
    save("rewards_quick" if args.quick else "rewards", text)


if __name__ == "__main__":
    main()
