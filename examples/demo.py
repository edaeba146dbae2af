"""The main job: a tiny reasoner learns to think shorter, on a laptop CPU, with er's own commands.

    make demo                     # or: python examples/demo.py [--steps 30] [--workdir out/demo]

1. The model: a ~0.25M-parameter Qwen2-style model that was taught TAIL comparison traces of
   two-digit numbers in two styles, concise and full (`er synth-tail | er update --loss sft`;
   examples/build_tiny_reasoner.sh, `make tiny-model`, rebuilds it). It is loaded from the repository.
2. Before: `er sample | er score --reward tail | er eval` on held-out problems (another seed).
3. RL, the streaming loop of the project card with DLER's recipe in miniature:
       er sample --watch ckpt --loop | er score --reward tail:weight=0 --reward dler:L_T=.. \
         | er advantage --estimator batch --dynamic-sampling | er update --loss grpo --clip-high 0.28
   (`tail` judges each answer exactly and sets `correct`; DLER's truncation reward pays 1 only for a
   correct answer within L_T tokens.)
4. After: the same evaluation of ckpt/latest, then `er eval --compare --format md` prints the
   before/after table, `--plot` writes the accuracy-vs-length figure and `er plot` the training curves
   (length and accuracy per step, reward, truncation, KL, entropy, clipping, grad norm, policy lag).

Every number printed comes from this run; nothing is fixed in advance.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
from tiny_task import two_digit

HERE = Path(__file__).resolve().parent
ER = [sys.executable, "-m", "er.cli"]
MODEL = HERE / "tiny-reasoner"
TASK = "compare"


def er(*args: str, stdin=None, stdout=None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*ER, *args], stdin=stdin, stdout=stdout, env=env)


def run_pipe(*stages: list[str], out: Path, env: dict | None = None) -> None:
    """stage1 | stage2 | ... > out, every process checked (`env`: the environment of every stage)."""
    procs = []
    with open(out, "wb") as sink:
        prev = None
        for i, args in enumerate(stages):
            last = i == len(stages) - 1
            p = er(*args, stdin=prev.stdout if prev else None, stdout=sink if last else subprocess.PIPE, env=env)
            if prev is not None:
                prev.stdout.close()
            procs.append(p)
            prev = p
        codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a stage failed ({codes}): {' | '.join(' '.join(s) for s in stages)}")


def write_problems(path: Path, seed: int, count: int) -> None:
    """`count` two-digit comparison problems from `er synth-tail` (see examples/tiny_task.py)."""
    out = subprocess.run([*ER, "synth-tail", "--task", TASK, "--split", "short", "--seed", str(seed), "-q",
                          "--n", str(count * 12)], capture_output=True, check=True).stdout
    rows = [r for r in map(orjson.loads, out.splitlines()) if two_digit(r)][:count]
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} two-digit problems for {count}")
    path.write_bytes(b"".join(orjson.dumps({**r, "dataset": "tail-compare-2digit"}) + b"\n" for r in rows))


def evaluate(model: str, prompts: Path, out: Path, samples: int, max_tokens: int) -> None:
    run_pipe(["sample", "-m", model, str(prompts), "-n", str(samples), "--temperature", "1.0",
              "--max-tokens", str(max_tokens), "--seed", "1", "--backend", "transformers", "-q"],
             ["score", "-r", "tail", "-q"], out=out)


def report(work: Path, before: Path, after: Path, started: float) -> None:
    """Step 4: the before/after table (`er eval --compare --format md`), the plots, the run time."""
    print("[4/4] before / after\n", flush=True)
    plot = work / "accuracy_vs_length.png"
    table = subprocess.run([*ER, "eval", "--compare", str(before), str(after), "--format", "md",
                            "--plot", str(plot), "-q"], capture_output=True, check=True)
    print(table.stdout.decode())
    curves = work / "training_curves.png"
    subprocess.run([*ER, "plot", str(work / "metrics.jsonl"), "--smooth", "0.6", "-o", str(curves), "-q"], check=True)
    print(f"plot: {plot}\ntraining curves: {curves}\nrecords: {work}/before.jsonl, {work}/after.jsonl, {work}/metrics.jsonl")
    print(f"total {time.monotonic() - started:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(MODEL))
    ap.add_argument("--workdir", default="out/demo")
    ap.add_argument("--steps", type=int, default=40, help="prompts-per-step batches the sampler feeds the loop")
    ap.add_argument("--prompts-per-step", type=int, default=16)
    ap.add_argument("-G", "--group-size", type=int, default=8)
    ap.add_argument("--L-T", dest="L_T", type=int, default=48, help="DLER truncation length (tokens)")
    ap.add_argument("--eval-problems", type=int, default=200)
    ap.add_argument("--eval-samples", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--lr", type=float, default=3e-4)
    args = ap.parse_args()

    work = Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    (work / "ckpt").mkdir(parents=True)
    started = time.monotonic()
    train, held_out = work / "train.jsonl", work / "eval.jsonl"
    write_problems(train, seed=101, count=args.steps * args.prompts_per_step)
    write_problems(held_out, seed=202, count=args.eval_problems)

    print(f"[1/4] evaluating the starting model {args.model} ...", flush=True)
    before = work / "before.jsonl"
    evaluate(args.model, held_out, before, args.eval_samples, args.max_tokens)

    print(f"[2/4] RL: {args.steps} steps x {args.prompts_per_step} prompts x G={args.group_size}, "
          f"DLER L_T={args.L_T} ...", flush=True)
    ckpt = work / "ckpt"
    n_prompts = args.steps * args.prompts_per_step
    run_pipe(
        ["sample", "-m", args.model, "--watch", str(ckpt), str(train), "-n", str(args.group_size),
         "--max-tokens", str(args.max_tokens), "--temperature", "1.0", "--seed", "3", "--logprobs",
         "--limit", str(n_prompts), "--chunk", str(args.prompts_per_step), "--backend", "transformers", "-q"],
        ["score", "-r", "tail:weight=0", "-r", f"dler:L_T={args.L_T}", "-q"],
        ["advantage", "-e", "batch", "--dynamic-sampling", "--batch-groups", str(args.prompts_per_step), "-q"],
        ["update", "-m", args.model, "--out", str(ckpt), "--loss", "grpo", "--clip-high", "0.28",
         "--lr", str(args.lr), "--batch-size", str(args.prompts_per_step * args.group_size // 2),
         "--save-every", "1", "-q"],
        out=work / "metrics.jsonl")

    print("[3/4] evaluating the trained model ...", flush=True)
    after = work / "after.jsonl"
    evaluate(str(ckpt / "latest"), held_out, after, args.eval_samples, args.max_tokens)

    report(work, before, after, started)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
