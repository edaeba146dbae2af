"""The main job on the embedded default: score the shipped rollouts and turn them into advantages.

    make demo

Runs `er score --reward math --reward format | er advantage --estimator batch --dynamic-sampling`
over examples/data/samples.jsonl as real subprocesses and prints what a person reads first: per
group, the completions' lengths, verdicts, rewards and advantages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ER = [sys.executable, "-m", "er.cli"]


def main() -> None:
    data = HERE / "data" / "samples.jsonl"
    score = subprocess.Popen([*ER, "score", "-r", "math", "-r", "format", str(data)], stdout=subprocess.PIPE)
    advantage = subprocess.run([*ER, "advantage", "-e", "batch", "--dynamic-sampling"], stdin=score.stdout,
                               capture_output=True, check=True)
    score.stdout.close()
    if score.wait() != 0:
        raise SystemExit("er score failed")
    print(advantage.stderr.decode().strip())
    print(f"\n{'group':<12} {'#':>2} {'tokens':>6} {'finish':<7} {'correct':<7} {'reward':>6} {'advantage':>9}")
    for line in advantage.stdout.splitlines():
        r = orjson.loads(line)
        print(f"{r['group_id']:<12} {r['sample_idx']:>2} {r['completion_tokens']:>6} {r['finish_reason']:<7} "
              f"{str(r['correct']):<7} {r['reward']:>6.2f} {r['advantage']:>9.4f}")


if __name__ == "__main__":
    main()
