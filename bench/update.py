"""`er update` step throughput against TRL GRPOTrainer's loss + backward + optimizer step.

Same tiny model (er.tiny), same 64 samples (8 groups of 8; prompts and completions of varied length,
with a long tail), both float32 on CPU with the same torch thread count. er: `Trainer.run_step` on one
step (tokenised examples -> micro-batches sorted by length -> forward/backward -> AdamW step). TRL 1.16:
`GRPOTrainer.compute_loss` (its `_compute_loss`: forward with logits_to_keep, selective log-softmax,
entropy, clipped loss, `bnpo` token-mean) on the `_prepare_inputs`-shaped dict it trains on (prompts
left-padded, completions right-padded, advantages), then backward and the same AdamW step. Model
loading, tokenisation and generation are excluded from both. Reported: completion tokens/s, padding
fractions (padded-away positions / positions computed), and the ratio er / TRL (goal >= 1.0).

Run: .venv/bin/python bench/update.py [--quick] [--threads 1] [--repeats 5]

Real-model mode (`--real [--model PATH]`, default the SmolLM2-135M-Instruct that `examples/real_model.py`
builds): `--samples` (64) samples of a chat-formatted arithmetic prompt and 64..128 completion tokens, one
`Trainer.run_step` each in a child process per setting, reporting the child's peak RSS
(`ru_maxrss`, model loading included) and completion tokens/s of the step:
  before   the full-logits LM head ([tokens x vocabulary] logits and their gradient, as `er update` did
           before chunked log-probs) with the old fixed 16,384-token micro-batch;
  default  today's defaults: chunked log-probs, `--max-tokens-per-micro-batch auto`;
  gc       the defaults plus `--gradient-checkpointing`.
Run: .venv/bin/python bench/update.py --real [--samples 64] [--threads 2] [--skip before]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import save, table  # noqa: E402


def make_samples(tok, n_groups=8, group_size=8, seed=0):
    rng = random.Random(seed)
    samples = []
    for _ in range(n_groups):
        prompt = f"{rng.randint(0, 9999)} + {rng.randint(0, 9999)} = " + "think " * rng.randint(0, 12)
        p_ids = tok(prompt)["input_ids"]
        for _ in range(group_size):
            n = int(min(400, rng.lognormvariate(4.0, 0.8)))  # median ~55 tokens, long tail to 400
            c_ids = [rng.randint(10, len(tok) - 10) for _ in range(max(n, 2))]
            samples.append((p_ids, c_ids, rng.choice([-1.0, -0.5, 0.5, 1.0])))
    return samples


def bench_er(model_path, samples, repeats, budget, lora=None):
    from er.train.data import Example, StepBatch
    from er.train.trainer import Trainer, UpdateConfig

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model_path, out, UpdateConfig(lr=1e-6, max_tokens_per_micro_batch=budget,
                                                        grad_clip=1.0, weight_decay=0.01, lora=lora))
        exs = [Example(ids=p + c, prompt_len=len(p), advantage=a, group=k // 8) for k, (p, c, a) in enumerate(samples)]
        batch = StepBatch(exs, 8, len(exs))
        trainer.run_step(batch)  # warm-up
        times, pad = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            m = trainer.run_step(batch)
            times.append(time.perf_counter() - t)
            pad = m["padding_frac"]
    return min(times), pad


def bench_trl(model_path, samples, repeats, peft_config=None):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as out:
        cfg = GRPOConfig(output_dir=out, per_device_train_batch_size=len(samples), num_generations=8,
                         max_completion_length=400, use_cpu=True, bf16=False, report_to=[], loss_type="bnpo",
                         learning_rate=1e-6, logging_steps=1000, save_strategy="no", beta=0.0)
        trainer = GRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                              args=cfg, train_dataset=Dataset.from_list([{"prompt": "x"}] * 64),
                              processing_class=tok, peft_config=peft_config)
        P = max(len(p) for p, _, _ in samples)
        C = max(len(c) for _, c, _ in samples)
        pad = tok.pad_token_id
        prompt_ids = torch.tensor([[pad] * (P - len(p)) + p for p, _, _ in samples])
        prompt_mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p, _, _ in samples])
        completion_ids = torch.tensor([c + [pad] * (C - len(c)) for _, c, _ in samples])
        completion_mask = torch.tensor([[1] * len(c) + [0] * (C - len(c)) for _, c, _ in samples])
        inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
                  "completion_mask": completion_mask, "advantages": torch.tensor([a for _, _, a in samples]),
                  "num_items_in_batch": completion_mask.sum()}
        model = trainer.model
        model.train()
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop, which we bypass
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01, foreach=False)

        def step():
            loss = trainer.compute_loss(model, inputs)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        real = sum(len(p) + len(c) for p, c, _ in samples)
        padding = 1 - real / (len(samples) * (P + C))
    return min(times), padding


REAL_SETTINGS = {
    "before": dict(full_logits=True, max_tokens_per_micro_batch=16384),
    "default": dict(),
    "gc": dict(gradient_checkpointing=True),
}


def real_samples(tok, n, seed=0):
    """(prompt ids, completion ids, advantage): chat-formatted prompts, 64..128 completion tokens each."""
    rng = random.Random(seed)
    special = set(tok.all_special_ids)
    out = []
    for _ in range(n // 8):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        msgs = [{"role": "user", "content": f"Tom has {a} apples and buys {b} more. How many apples does he have?"}]
        p_ids = list(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False))
        for _ in range(8):
            c_ids = []
            while len(c_ids) < rng.randint(64, 128):
                t = rng.randrange(len(tok))
                if t not in special:
                    c_ids.append(t)
            out.append((p_ids, c_ids, rng.choice([-1.0, -0.5, 0.5, 1.0])))
    return out


def real_child(setting: str, model_path: str, n: int, threads: int) -> None:
    """One setting in this (child) process: prints {seconds, tokens, peak_rss_mb, micro_batches} as JSON."""
    import json
    import resource

    import torch
    from transformers import AutoTokenizer

    import er.train.trainer as T
    from er.train import losses as L
    from er.train.data import Example, StepBatch

    torch.set_num_threads(threads)
    opts = dict(REAL_SETTINGS[setting])
    if opts.pop("full_logits", False):
        def full_head(hidden, head, labels, temps=None, entropy="detached", chunk=None):
            logits = head(hidden).float()
            return L.token_logprobs_entropy(logits if temps is None else logits / temps.unsqueeze(-1), labels, entropy)
        T.head_logprobs_entropy = full_head
    tok = AutoTokenizer.from_pretrained(model_path)
    samples = real_samples(tok, n)
    with tempfile.TemporaryDirectory() as out:
        trainer = T.Trainer(model_path, out, T.UpdateConfig(lr=1e-6, **opts))
        exs = [Example(ids=p + c, prompt_len=len(p), advantage=a, group=k // 8) for k, (p, c, a) in enumerate(samples)]
        t = time.perf_counter()
        m = trainer.run_step(StepBatch(exs, n // 8, len(exs)))
        seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "tokens": m["tokens"], "peak_rss_mb": rss,
                      "micro_batches": m["micro_batches"], "micro_tokens": trainer.micro_tokens}))


def bench_real(args) -> None:
    import json
    import subprocess

    model = args.model
    if model is None:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
        from real_model import model_dir

        model = model_dir()
    rows, res = [], {}
    for setting in REAL_SETTINGS:
        if setting in args.skip:
            continue
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", setting, "--model", model,
                               "--samples", str(args.samples), "--threads", str(args.threads)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{setting} failed: {proc.stderr[-2000:]}")
        r = res[setting] = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((setting, r["micro_tokens"], r["micro_batches"], f"{r['seconds']:.1f}",
                     f"{r['tokens'] / r['seconds']:,.0f}", f"{r['peak_rss_mb'] / 1024:.2f}"))
        print(" ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    text = (f"{os.path.basename(model.rstrip('/'))}, {args.samples} samples (64..128 completion tokens), float32 CPU, "
            f"{args.threads} thread(s), one step per setting in its own process\n"
            + table(rows, ("setting", "tokens/micro-batch", "micro-batches", "seconds/step", "completion tok/s",
                           "peak RSS GB")))
    if "before" in res and "default" in res:
        b, d = res["before"], res["default"]
        text += (f"\ndefault / before: peak RSS {d['peak_rss_mb'] / b['peak_rss_mb']:.2f}x, "
                 f"tokens/s {(d['tokens'] / d['seconds']) / (b['tokens'] / b['seconds']):.2f}x")
    print(text)
    save("update_real", text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 timed repeats")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both")
    ap.add_argument("--budget", type=int, default=4096, help="er --max-tokens-per-micro-batch")
    ap.add_argument("--real", action="store_true", help="peak RSS and tokens/s on a real model (see module doc)")
    ap.add_argument("--model", default=None, help="--real: model directory (default: examples/real_model.py's)")
    ap.add_argument("--samples", type=int, default=64, help="--real: samples per step (multiple of 8)")
    ap.add_argument("--skip", action="append", default=[], choices=list(REAL_SETTINGS), help="--real: leave out")
    ap.add_argument("--child", choices=list(REAL_SETTINGS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return real_child(args.child, args.model, args.samples, args.threads)
    if args.real:
        return bench_real(args)
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from er.tiny import build_tiny

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny(os.path.join(tmp, "tiny"))
        tok = AutoTokenizer.from_pretrained(path)
        samples = make_samples(tok)
        tokens = sum(len(c) for _, c, _ in samples)
        t_trl, pad_trl = bench_trl(path, samples, repeats)
        t_er, pad_er = bench_er(path, samples, repeats, args.budget)
    rows = [("TRL GRPOTrainer compute_loss+backward+step", f"{t_trl:.3f}", f"{tokens / t_trl:,.0f}", f"{pad_trl:.3f}"),
            ("er update step", f"{t_er:.3f}", f"{tokens / t_er:,.0f}", f"{pad_er:.3f}")]
    text = (f"64 samples, {tokens} completion tokens, tiny Qwen2, float32 CPU, {args.threads} thread(s), best of {repeats}\n"
            + table(rows, ("", "seconds/step", "completion tok/s", "padding_frac"))
            + f"\nratio er/TRL (tokens/s): {t_trl / t_er:.2f}  (goal >= 1.0)")
    print(text)
    save("update", text)


if __name__ == "__main__":
    main()
