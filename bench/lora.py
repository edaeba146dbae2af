"""`er update --lora`: tokens/s against TRL GRPOTrainer with the same peft_config, and peak memory of one step.

(a) TRL: the tiny model and 64 samples of bench/update.py; er `Trainer.run_step` with `--lora` (defaults:
    r=16, alpha=32, all-linear) against TRL 1.16 GRPOTrainer built with `peft_config=` the same LoraConfig
    (its `compute_loss` + backward + AdamW step). Ratio er / TRL of completion tokens/s (goal >= 1.0).
(b) Memory (`--memory`): one `er update` step per setting, each in its own process, peak RSS (`ru_maxrss`,
    model loading included): SmolLM2-135M-Instruct full fine-tuning vs `--lora`, and a RANDOMLY initialised
    model of R1-Distill-Qwen-1.5B's shape (Qwen2: hidden 1536, intermediate 8960, 28 layers, 12 heads, 2 KV
    heads, vocabulary 151,936, tied embeddings; the config is built here, nothing is downloaded) with
    `--lora` on a float32 and on a bfloat16 base (goal <= 12 GB on CPU). Full fine-tuning of the 1.5B shape
    is not run: its states alone are 23 GB (16 bytes per parameter), more than the 24 GB machine has.
    Needs >= 16 GB available memory and ~7 GB of disk for the random model.
Run: .venv/bin/python bench/lora.py [--quick] [--memory [--samples 8]]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _util import save, table  # noqa: E402

QWEN_1P5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=4096)


def real_model_dir() -> str:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    from real_model import model_dir

    return model_dir()


def bench_trl_ratio(repeats: int) -> str:
    import torch
    from transformers.utils import logging as hf_logging

    from er.tiny import build_tiny
    from er.train.lora import LoraSpec
    from update import bench_er, bench_trl, make_samples

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    spec = LoraSpec()
    with tempfile.TemporaryDirectory() as tmp:
        from transformers import AutoTokenizer

        path = build_tiny(os.path.join(tmp, "tiny"))
        samples = make_samples(AutoTokenizer.from_pretrained(path))
        tokens = sum(len(c) for _, c, _ in samples)
        t_trl, pad_trl = bench_trl(path, samples, repeats, peft_config=spec.peft_config())
        t_er, pad_er = bench_er(path, samples, repeats, 4096, lora=spec)
    rows = [("TRL GRPOTrainer + peft_config", f"{t_trl:.3f}", f"{tokens / t_trl:,.0f}", f"{pad_trl:.3f}"),
            ("er update --lora", f"{t_er:.3f}", f"{tokens / t_er:,.0f}", f"{pad_er:.3f}")]
    return (f"LoRA r={spec.r} alpha={spec.alpha:g} {spec.targets}; 64 samples, {tokens} completion tokens, tiny "
            f"Qwen2, float32 CPU, 1 thread, best of {repeats}\n"
            + table(rows, ("", "seconds/step", "completion tok/s", "padding_frac"))
            + f"\nratio er/TRL (tokens/s): {t_trl / t_er:.2f}  (goal >= 1.0)")


def memory_child(model: str, lora: bool, base_dtype: str | None, samples: int) -> None:
    import torch
    from transformers import AutoTokenizer

    from er.train.data import Example, StepBatch
    from er.train.lora import LoraSpec
    from er.train.trainer import Trainer, UpdateConfig
    from update import real_samples

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(model)
    rows = real_samples(tok, samples)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model, out, UpdateConfig(lr=1e-5, lora=LoraSpec() if lora else None,
                                                   base_dtype=base_dtype))
        exs = [Example(ids=p + c, prompt_len=len(p), advantage=a, group=k // 8) for k, (p, c, a) in enumerate(rows)]
        t = time.perf_counter()
        m = trainer.run_step(StepBatch(exs, max(1, samples // 8), len(exs)))
        seconds = time.perf_counter() - t
        trainable = sum(p.numel() for p in trainer.policy.parameters() if p.requires_grad)
    print(json.dumps({"seconds": seconds, "tokens": m["tokens"], "trainable": trainable,
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def build_1p5b_shape(path: str, tokenizer_from: str) -> None:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(**QWEN_1P5B)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(path)


def bench_memory(samples: int) -> str:
    smol = real_model_dir()
    settings = [("SmolLM2-135M", smol, False, None), ("SmolLM2-135M", smol, True, None)]
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("ER_BENCH_TMP")) as tmp:
        big = os.path.join(tmp, "qwen2-1.5b-shape")
        subprocess.run([sys.executable, os.path.abspath(__file__), "--build-1p5b", big, "--model", smol], check=True)
        settings += [("Qwen2-1.5B shape (random)", big, True, None), ("Qwen2-1.5B shape (random)", big, True, "bfloat16")]
        for name, model, lora, dtype in settings:
            cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", "--model", model,
                   "--samples", str(samples)] + (["--lora"] if lora else []) + (["--base-dtype", dtype] if dtype else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                rows.append((name, "lora" if lora else "full", dtype or "float32", "-", "-", "-",
                             f"failed: {proc.stderr.strip().splitlines()[-1][:80] if proc.stderr.strip() else proc.returncode}"))
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((name, "lora r16" if lora else "full", dtype or "float32", f"{r['trainable'] / 1e6:.1f}M",
                         f"{r['seconds']:.1f}", f"{r['tokens'] / r['seconds']:,.1f}", f"{r['peak_rss_gb']:.2f}"))
            print(" ".join(rows[-1]), file=sys.stderr, flush=True)
    return (f"one er update step, {samples} samples of 64..128 completion tokens (chat prompt), CPU, 2 threads, "
            "each setting in its own process, peak RSS incl. model loading\n"
            + table(rows, ("model", "mode", "base dtype", "trainable", "seconds/step", "completion tok/s",
                           "peak RSS GiB")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="(a) with 2 timed repeats")
    ap.add_argument("--memory", action="store_true", help="(b) peak RSS (SmolLM2 and the 1.5B shape)")
    ap.add_argument("--samples", type=int, default=8, help="--memory: samples in the step (multiple of 8)")
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--base-dtype", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--build-1p5b", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_1p5b:
        return build_1p5b_shape(args.build_1p5b, args.model)
    if args.memory_child:
        return memory_child(args.model, args.lora, args.base_dtype, args.samples)
    text = bench_trl_ratio(2 if args.quick else 5)
    print(text, flush=True)
    save("lora_update", text)
    if args.memory:
        text = bench_memory(args.samples)
        print(text)
        save("lora_memory", text)


if __name__ == "__main__":
    main()
