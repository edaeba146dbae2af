"""The main job on a real pretrained model: SmolLM2-135M-Instruct learns to answer arithmetic word problems shorter.

    make demo-real        # or: python examples/demo_real.py [--steps 8] [--workdir out/demo-real]

1. The model: SmolLM2-135M-Instruct (Llama architecture, 49k vocabulary, a chat template), converted once
   by `make real-model` into a cache outside the repository (examples/real_model.py says where).
2. The problems: one- and two-step addition / subtraction / multiplication word problems with small
   numbers (examples/arith_task.py), asking for the answer in `\\boxed{}`; gold `answer` is an integer that
   `er score --reward math` checks with math-verify.
3. Before: `er sample | er score --reward math | er eval` on held-out problems (another seed); the
   tokenizer's chat template is applied, as `er sample` does by default.
4. RL, the streaming loop with DLER's recipe (truncation reward: 1 only for a correct answer within
   L_T tokens; batch-wise advantages; dynamic sampling; clip-higher):
       er sample --watch ckpt | er score -r math:weight=0 -r dler:L_T=.. \
         | er advantage -e batch --dynamic-sampling | er update --loss grpo --clip-high 0.28 --keep-last 2
   `er update` runs with its default, memory-bounded micro-batches (chunked log-probs through the 49k
   LM head), and `--keep-last` removes older step-N/ directories once a newer one is complete (each
   holds ~0.5 GB of weights, its trainer state ~1 GB of optimizer moments). The sampler and the
   updater run side by side, so each gets half the cores (`pipe_env`).
5. After: the same evaluation of ckpt/latest, `er eval --compare --format md` and `--plot`, and the
   training curves of the run (`er plot metrics.jsonl`).

Every number printed comes from this run; nothing is fixed in advance. On CPU the defaults aim at
<= 20 minutes on an idle 2-core machine; sampling dominates the time.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
    return ["--max-tokens", str(args.max_tokens), "--temperature", str(args.temperature),
            "--backend", args.backend, "-q"]


def evaluate(model: str, prompts: Path, out: Path, args) -> None:
    run_pipe(["sample", "-m", model, str(prompts), "-n", str(args.eval_samples), "--seed", "1", *sample_args(args)],
             ["score", "-r", "math", "-q"], out=out)


def pipe_env() -> dict:
    """The environment of the RL pipe's stages.

    `er sample` and `er update` run side by side, and each torch process starts one thread per core:
    on a 2-core machine the two pools fight for the cores and a forward pass gets several times slower
    (OpenMP threads spin for a core that is busy). Half the cores each keeps them out of each other's way.
    """
    threads = max(1, (os.cpu_count() or 2) // 2)
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=model_dir(), help="default: the `make real-model` cache")
    ap.add_argument("--workdir", default="out/demo-real")
    ap.add_argument("--steps", type=int, default=12, help="prompts-per-step batches the sampler feeds the loop")
    ap.add_argument("--prompts-per-step", type=int, default=8)
    ap.add_argument("-G", "--group-size", type=int, default=6)
    ap.add_argument("--L-T", dest="L_T", type=int, default=48, help="DLER truncation length (tokens)")
    ap.add_argument("--eval-problems", type=int, default=48)
    ap.add_argument("--eval-samples", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--keep-last", type=int, default=2, help="er update --keep-last: step-N/ directories kept")
    ap.add_argument("--batch-size", type=int, default=0, help="er update --batch-size (default: half a chunk)")
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--lora", nargs="?", const="default", default=None, metavar="r=R,...",
                    help="train a LoRA adapter (er update --lora) at 10x --lr, into out/demo-real-lora by default")
    ap.add_argument("--no-dynamic-sampling", dest="dynamic_sampling", action="store_false",
                    help="keep groups whose rewards are all equal (a step always runs; for smoke tests)")
    ap.add_argument("--allow-zero-signal", action="store_true",
                    help="er update --allow-zero-signal: a run whose every step had no signal still exits 0 "
                         "(for smoke tests at sizes where no answer can be right)")
    args = ap.parse_args()
    if args.model == model_dir() and not is_built():
        raise SystemExit("the real model is not built: run `make real-model` first")

    work = Path(args.workdir if not (args.lora and args.workdir == "out/demo-real") else "out/demo-real-lora")
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
    run_pipe(
        ["sample", "-m", args.model, "--watch", str(ckpt), str(train), "-n", str(args.group_size),
         "--seed", "3", "--logprobs", "--limit", str(n_prompts), "--chunk", str(args.prompts_per_step),
         *sample_args(args)],
        ["score", "-r", "math:weight=0", "-r", f"dler:L_T={args.L_T}", "-q"],
        ["advantage", "-e", "batch", *(["--dynamic-sampling"] if args.dynamic_sampling else []),
         "--batch-groups", str(args.prompts_per_step), "-q"],
        ["update", "-m", args.model, "--out", str(ckpt), "--loss", "grpo", "--clip-high", "0.28",
         *(["--lora", args.lora] if args.lora else []), "--lr", str(args.lr * (10 if args.lora else 1)),
         "--batch-size", str(args.batch_size or args.prompts_per_step * args.group_size // 2),
         "--save-every", "1", "--keep-last", str(args.keep_last),
         *(["--allow-zero-signal"] if args.allow_zero_signal else []), "-q"],
        out=work / "metrics.jsonl", env=pipe_env())

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
