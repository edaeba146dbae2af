"""The main job on a real pretrained model: SmolLM2-135M-Instruct learns to answer arithmetic word problems shorter.

    make demo-real        # or: python examples/demo_real.py [--steps 8] [--workdir out/demo-real]

1. The model: SmolLM2-135M-Instruct (Llama architecture, 49k vocabulary, a chat template), converted once
   by `make real-model` into a cache outside the repository (examples/real_model.py says where).
2. The problems: one- and two-step addition / subtraction / multiplication word problems with small
   numbers (examples/arith_task.py), asking for the answer in `\\boxed{}`; gold `answer` is an integer that
   `er score --reward math` checks with math-verify.
3. Before: `er sample --chat | er score --reward math | er eval` on held-out problems (another seed).
4. RL, the streaming loop with DLER's recipe (truncation reward: 1 only for a correct answer within
   L_T tokens; batch-wise advantages; dynamic sampling; clip-higher):
       er sample --chat --watch ckpt | er score -r math:weight=0 -r dler:L_T=.. \
         | er advantage -e batch --dynamic-sampling | er update --loss grpo --clip-high 0.28
   `er update` runs with `--max-tokens-per-micro-batch` small enough to keep its memory near 4 GB
   (a 49k vocabulary makes full-sequence logits large), and older step-N/ directories are removed as
   newer ones are complete (each holds ~0.5 GB of weights and ~1 GB of optimizer state).
5. After: the same evaluation of ckpt/latest, `er eval --compare --format md` and `--plot`.

Every number printed comes from this run; nothing is fixed in advance. On CPU the defaults aim at
<= 20 minutes on an idle 2-core machine; sampling dominates the time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from pathlib import Path

import orjson
from arith_task import problems
from demo import report, run_pipe
from real_model import is_built, model_dir


def write_problems(path: Path, seed: int, count: int) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in problems(seed, count)))


def sample_args(args) -> list[str]:
    """The sampling settings evaluation and RL share."""
    return ["--chat", "--max-tokens", str(args.max_tokens), "--temperature", str(args.temperature),
            "--backend", args.backend, "-q"]


def evaluate(model: str, prompts: Path, out: Path, args) -> None:
    run_pipe(["sample", "-m", model, str(prompts), "-n", str(args.eval_samples), "--seed", "1", *sample_args(args)],
             ["score", "-r", "math", "-q"], out=out)


def prune_steps(ckpt: Path, keep: int) -> None:
    """Remove step-N/ directories older than the `keep` newest (bounded disk).

    Only steps older than the one `latest` points to are touched, so a step the sampler may be
    loading is never removed and `latest` is never dangling."""
    latest = ckpt / "latest"
    if not latest.is_symlink():
        return
    current = int(os.readlink(latest).rstrip("/").rsplit("-", 1)[1])
    older = sorted(n for n in (int(p.name[5:]) for p in ckpt.glob("step-*") if p.name[5:].isdigit()) if n < current)
    for n in older[:max(0, len(older) - (keep - 1))]:
        shutil.rmtree(ckpt / f"step-{n}", ignore_errors=True)


def prune_while(ckpt: Path, keep: int, stop: threading.Event) -> None:
    while not stop.wait(2.0):
        prune_steps(ckpt, keep)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=model_dir(), help="default: the `make real-model` cache")
    ap.add_argument("--workdir", default="out/demo-real")
    ap.add_argument("--steps", type=int, default=6, help="prompts-per-step batches the sampler feeds the loop")
    ap.add_argument("--prompts-per-step", type=int, default=6)
    ap.add_argument("-G", "--group-size", type=int, default=4)
    ap.add_argument("--L-T", dest="L_T", type=int, default=48, help="DLER truncation length (tokens)")
    ap.add_argument("--eval-problems", type=int, default=24)
    ap.add_argument("--eval-samples", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--micro-batch-tokens", type=int, default=1024, help="er update --max-tokens-per-micro-batch")
    ap.add_argument("--keep-last", type=int, default=2, help="step-N/ directories kept while training")
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--no-dynamic-sampling", dest="dynamic_sampling", action="store_false",
                    help="keep groups whose rewards are all equal (a step always runs; for smoke tests)")
    args = ap.parse_args()
    if args.model == model_dir() and not is_built():
        raise SystemExit("the real model is not built: run `make real-model` first")

    work = Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    ckpt = work / "ckpt"
    ckpt.mkdir(parents=True)
    started = time.monotonic()
    train, held_out = work / "train.jsonl", work / "eval.jsonl"
    n_prompts = args.steps * args.prompts_per_step
    write_problems(train, seed=101, count=n_prompts)
    write_problems(held_out, seed=202, count=args.eval_problems)

    print(f"[1/4] evaluating the starting model {args.model} ...", flush=True)
    before = work / "before.jsonl"
    evaluate(args.model, held_out, before, args)

    print(f"[2/4] RL: {args.steps} steps x {args.prompts_per_step} prompts x G={args.group_size}, "
          f"DLER L_T={args.L_T} ...", flush=True)
    stop = threading.Event()
    pruner = threading.Thread(target=prune_while, args=(ckpt, args.keep_last, stop), daemon=True)
    pruner.start()
    try:
        run_pipe(
            ["sample", "-m", args.model, "--watch", str(ckpt), str(train), "-n", str(args.group_size),
             "--seed", "3", "--logprobs", "--limit", str(n_prompts), "--chunk", str(args.prompts_per_step),
             *sample_args(args)],
            ["score", "-r", "math:weight=0", "-r", f"dler:L_T={args.L_T}", "-q"],
            ["advantage", "-e", "batch", *(["--dynamic-sampling"] if args.dynamic_sampling else []),
             "--batch-groups", str(args.prompts_per_step), "-q"],
            ["update", "-m", args.model, "--out", str(ckpt), "--loss", "grpo", "--clip-high", "0.28",
             "--lr", str(args.lr), "--batch-size", str(args.prompts_per_step * args.group_size // 2),
             "--max-tokens-per-micro-batch", str(args.micro_batch_tokens), "--save-every", "1", "-q"],
            out=work / "metrics.jsonl")
    finally:
        stop.set()
        pruner.join()
    prune_steps(ckpt, args.keep_last)

    if not (ckpt / "latest").is_symlink():
        raise SystemExit("no update step ran: dynamic sampling dropped every group (all rewards equal); "
                         "try more --steps, a larger -G or more --max-tokens")
    print("[3/4] evaluating the trained model ...", flush=True)
    after = work / "after.jsonl"
    evaluate(str(ckpt / "latest"), held_out, after, args)

    report(work, before, after, started)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
