"""`make demo-real`'s problem set: one- and two-step arithmetic word problems with small numbers.

    python examples/arith_task.py --seed 1 --n 100 > prompts.jsonl

Each record is `{"id", "prompt", "answer", "dataset": "arith-words"}`; `answer` is the integer result,
which `er score --reward math` checks with math-verify against the completion's `\\boxed{}` answer
(or its last number when there is no box). The prompt asks for the box. Deterministic by seed.
SmolLM2-135M-Instruct solves roughly half of them at temperature 1 (see the README).
"""

from __future__ import annotations

import argparse
import random
import sys

import orjson

NAMES = ["Tom", "Ana", "Sam", "Lily", "Ben", "Mia", "Leo", "Zoe"]
THINGS = ["apples", "pencils", "marbles", "stickers", "books", "cookies", "cards", "shells"]
INSTRUCTION = "Put the final answer in \\boxed{}."


def problem(rng: random.Random) -> tuple[str, int]:
    """One word problem and its answer: a + b, a - b, a * b, or a two-step (a + b) - c / a * b + c."""
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    kind = rng.choice(["add", "add", "sub", "sub", "mul", "add_sub", "mul_add"])
    if kind == "add":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?", a + b
    if kind == "sub":
        a = rng.randint(5, 15)
        b = rng.randint(1, a - 1)
        return f"{name} has {a} {thing} and gives away {b}. How many {thing} does {name} have left?", a - b
    if kind == "mul":
        a, b = rng.randint(2, 5), rng.randint(2, 5)
        return f"{name} has {a} boxes with {b} {thing} in each box. How many {thing} does {name} have?", a * b
    if kind == "add_sub":
        a, b = rng.randint(2, 10), rng.randint(2, 10)
        c = rng.randint(1, a + b - 1)
        return (f"{name} has {a} {thing}, buys {b} more and then gives {c} to a friend. "
                f"How many {thing} does {name} have now?", a + b - c)
    a, b, c = rng.randint(2, 4), rng.randint(2, 4), rng.randint(1, 5)
    return (f"{name} has {a} bags with {b} {thing} in each bag and {c} more {thing} on the table. "
            f"How many {thing} does {name} have in all?", a * b + c)


def problems(seed: int, n: int) -> list[dict]:
    """`n` records, the same for the same seed."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text, answer = problem(rng)
        out.append({"id": f"arith-{seed}-{i}", "prompt": f"{text} {INSTRUCTION}", "answer": str(answer),
                    "dataset": "arith-words"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    sys.stdout.buffer.write(b"".join(orjson.dumps(r) + b"\n" for r in problems(args.seed, args.n)))


if __name__ == "__main__":
    main()
