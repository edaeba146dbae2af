"""DLER's truncation reward from the `er` catalog inside TRL's GRPOTrainer (the in-process loop).

    python examples/recipes/trl-bridge/train.py                      # defaults below, 1 GPU
    accelerate launch --num_processes 8 examples/recipes/trl-bridge/train.py --backend vllm
    torchrun --nproc-per-node 8 examples/recipes/trl-bridge/train.py --backend vllm

`er.rewards.trl_reward("dler", L_T=...)` is the same reward `er score -r dler` computes (correct and at
most L_T tokens -> 1, else 0), with TRL's reward-function signature; prompts come from `er`'s dataset
presets (`--dataset NAME --preset P`), so the `answer` column feeds the reward's answer check.

Settings follow DLER (arXiv 2510.15110) as far as GRPOConfig allows: G=16, lr 1e-6, clip 0.2/0.28
(epsilon / epsilon_high), KL 5e-4 (beta), temperature 1.0, token-mean loss (loss_type="dapo"),
rewards centred per group and scaled over the batch (scale_rewards="batch", close to DLER's
batch-wise whitening; TRL has no token weighting), PROMPTS_PER_STEP prompts per optimizer step.
Departures from the `er` recipe: no dynamic sampling (TRL has no group filter), GSM8K instead of
DeepScaleR, and completions capped at L_T tokens (max_completion_length).

Chat templates as in `er sample`: when the tokenizer has one, each prompt goes to TRL as a one-turn
conversation ([{"role": "user", "content": prompt}]), which GRPOTrainer renders with the template;
`--no-chat` sends the raw text (a base model, or prompts that are already rendered).
"""

from __future__ import annotations

import argparse
import os


def load_prompts(dataset: str, preset: str | None, split: str | None, limit: int | None, chat: bool = False):
    """Prompt records ({prompt, answer}) through er's preset, as `er sample --dataset/--preset` reads them;
    `chat`: each prompt a one-turn conversation, for TRL to apply the tokenizer's chat template."""
    import datasets

    from er.data.presets import get_preset

    p = get_preset(preset) if preset else None
    if os.path.exists(dataset):
        kind = "parquet" if dataset.endswith(".parquet") else "json"
        data = datasets.load_dataset(kind, data_files=dataset, split="train")
    else:
        data = datasets.load_dataset(dataset, p.hf_config if p and dataset == p.hf_path else None,
                                     split=split or (p.default_split if p else "train"))
    rows = [p.to_prompt(row, i) if p else dict(row) for i, row in enumerate(data)]
    if limit:
        rows = rows[:limit]
    return datasets.Dataset.from_list([
        {"prompt": [{"role": "user", "content": r["prompt"]}] if chat and isinstance(r["prompt"], str) else r["prompt"],
         "answer": str(r["answer"])} for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    ap.add_argument("--dataset", default="openai/gsm8k")
    ap.add_argument("--preset", default="gsm8k")
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit", type=int, help="use only the first N prompts")
    ap.add_argument("--output-dir", default="trl-out")
    ap.add_argument("--steps", type=int, default=450)
    ap.add_argument("--L-T", dest="L_T", type=int, default=4000)
    ap.add_argument("-G", "--num-generations", type=int, default=16)
    ap.add_argument("--prompts-per-step", type=int, default=64, help="prompts per optimizer step (all ranks)")
    ap.add_argument("--per-device-samples", type=int, default=16, help="completions per device per micro-batch")
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--beta", type=float, default=5e-4, help="KL coefficient")
    ap.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--chat", action=argparse.BooleanOptionalAction, default=None,
                    help="prompts as conversations for the chat template (default: if the tokenizer has one)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from er.rewards import trl_reward

    tok = AutoTokenizer.from_pretrained(args.model)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    samples_per_step = args.prompts_per_step * args.num_generations
    per_device = min(args.per_device_samples, samples_per_step // world)
    accumulation = max(1, samples_per_step // (per_device * world))
    config = GRPOConfig(
        output_dir=args.output_dir, max_steps=args.steps, learning_rate=args.lr, lr_scheduler_type="constant",
        weight_decay=0.01, max_grad_norm=1.0, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation, num_generations=args.num_generations,
        max_completion_length=args.L_T, temperature=1.0, top_p=1.0, beta=args.beta, epsilon=0.2,
        epsilon_high=0.28, loss_type="dapo", scale_rewards="batch", num_iterations=1,
        use_vllm=args.backend == "vllm", vllm_mode="colocate", use_cpu=args.cpu, bf16=not args.cpu,
        report_to="none", logging_steps=1, save_strategy="no", seed=args.seed, dataloader_num_workers=0)
    reward = trl_reward("dler", L_T=args.L_T, eos_token_id=tok.eos_token_id)
    trainer = GRPOTrainer(model=args.model, reward_funcs=[reward], args=config, processing_class=tok,
                          train_dataset=load_prompts(args.dataset, args.preset, args.split, args.limit,
                                                     chat=bool(tok.chat_template) if args.chat is None else args.chat))
    trainer.train()
    trainer.save_model(os.path.join(args.output_dir, "final"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
