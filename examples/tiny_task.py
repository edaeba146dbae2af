"""The demo's problem set: TAIL comparison problems whose two operands have two digits.

    python examples/tiny_task.py LIMIT < synth-tail.jsonl > prompts.jsonl

A ~0.25M-parameter model learns to copy and compare two-digit numbers in a few minutes of CPU
training; with up to four digits it does not get past chance in that time. Keeps the first LIMIT
matching records, in order.
"""

from __future__ import annotations

import re
import sys

import orjson


def two_digit(record: dict) -> bool:
    numbers = [int(x) for x in re.findall(r"\d+", record["prompt"])]
    return len(numbers) == 2 and all(10 <= n < 100 for n in numbers)


def main() -> None:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else sys.maxsize
    kept = 0
    for line in sys.stdin.buffer:
        if kept < limit and two_digit(orjson.loads(line)):
            sys.stdout.buffer.write(line)
            kept += 1


if __name__ == "__main__":
    main()
