"""er update: train the policy on a stream of samples (GRPO/DAPO/Dr. GRPO, DRPO or SFT); metrics on stdout."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from er.commands._common import Debug, Inputs, MaxLineBytes, Output, Quiet, Rejects, stream
from er.io import DEFAULT_MAX_LINE_BYTES

_ADV = "Policy gradient"
_CKPT = "Checkpoints"
_TRACK = "Tracking"
_LORA = "LoRA"


def run(
    inputs: Inputs = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Model to train (save_pretrained dir, e.g. ckpt/latest).")] = ...,
    out: Annotated[str, typer.Option("--out", help="Checkpoint directory: DIR/step-N and the symlink DIR/latest. An existing step-N is never overwritten: without --resume the numbering continues after DIR's highest step-N (a new run from -m). One er update writes DIR at a time (a second is refused, exit 2).")] = ...,
    loss: Annotated[str, typer.Option("--loss", help="grpo (PPO-clip policy gradient), drpo (decoupled reward, arXiv 2510.04474) or sft.")] = "grpo",
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (AdamW).")] = 1e-6,
    warmup: Annotated[int, typer.Option("--warmup", help="Linear warm-up steps, then constant.")] = 0,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.01,
    grad_clip: Annotated[float, typer.Option("--grad-clip", help="Clip the gradient norm (0: off).")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per step, in whole groups (a step closes at the first group boundary at or after this).")] = 64,
    max_tokens_per_micro_batch: Annotated[str, typer.Option("--max-tokens-per-micro-batch", help="Padded tokens per forward/backward pass (gradient accumulation inside a step); auto: the most whose activations fit a share of free memory (logged at start).")] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Recompute each decoder layer in backward: ~1.3x the compute, far less activation memory per token (larger auto micro-batches).")] = False,
    ppo_epochs: Annotated[int, typer.Option("--ppo-epochs", "--epochs", help="Optimizer updates over the same batch.")] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    estimator: Annotated[Optional[str], typer.Option("--estimator", "-e", help="When rows have rewards but no advantages: the estimator to compute them (default grpo; drpo for --loss drpo).", rich_help_panel=_ADV)] = None,
    dynamic_sampling: Annotated[bool, typer.Option("--dynamic-sampling", help="With --estimator: drop groups whose rewards are all equal (DAPO/DLER).", rich_help_panel=_ADV)] = False,
    clip_low: Annotated[float, typer.Option("--clip-low", help="PPO lower clip eps (DLER 0.2).", rich_help_panel=_ADV)] = 0.2,
    clip_high: Annotated[float, typer.Option("--clip-high", help="PPO upper clip eps, clip-higher (DLER/DAPO 0.28).", rich_help_panel=_ADV)] = 0.28,
    dual_clip: Annotated[Optional[float], typer.Option("--dual-clip", help="Dual clip c > 1 for negative advantages (verl clip_ratio_c).", rich_help_panel=_ADV)] = None,
    is_cap: Annotated[Optional[float], typer.Option("--is-cap", help="Truncate importance ratios against behaviour logprobs at this value.", rich_help_panel=_ADV)] = None,
    agg: Annotated[str, typer.Option("--agg", help="token-mean (DAPO), seq-mean-token-mean (GRPO) or seq-mean-token-sum-norm (Dr. GRPO).", rich_help_panel=_ADV)] = "token-mean",
    norm_length: Annotated[Optional[int], typer.Option("--norm-length", help="Dr. GRPO's constant (default: records' sampling.max_tokens, else the longest completion).", rich_help_panel=_ADV)] = None,
    kl_coef: Annotated[float, typer.Option("--kl-coef", help="KL-to-reference coefficient, --loss grpo only (0: no reference model is loaded; DLER 5e-4).", rich_help_panel=_ADV)] = 0.0,
    kl: Annotated[str, typer.Option("--kl", help="KL estimator: k1, k3 or mse.", rich_help_panel=_ADV)] = "k3",
    ref_model: Annotated[Optional[str], typer.Option("--ref-model", help="Reference model (default: -m).", rich_help_panel=_ADV)] = None,
    entropy_coef: Annotated[float, typer.Option("--entropy-coef", help="Entropy bonus coefficient (grpo, drpo).", rich_help_panel=_ADV)] = 0.0,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Divide logits by this (default: each record's sampling.temperature, else 1).", rich_help_panel=_ADV)] = None,
    drpo_tau: Annotated[float, typer.Option("--drpo-tau", help="DRPO negatives' log-sum-exp temperature.", rich_help_panel=_ADV)] = 10.0,
    drpo_beta: Annotated[float, typer.Option("--drpo-beta", help="DRPO trust-region coefficient.", rich_help_panel=_ADV)] = 1e3,
    drpo_delta: Annotated[float, typer.Option("--drpo-delta", help="DRPO trust-region KL threshold.", rich_help_panel=_ADV)] = 1e-4,
    mode_switch_coef: Annotated[float, typer.Option("--mode-switch-coef", help="Adaptive deep reasoning first-token mode-switch loss weight (reconstructed form).", rich_help_panel=_ADV)] = 0.0,
    mode_tokens: Annotated[Optional[str], typer.Option("--mode-tokens", help="LONG,SHORT: the first completion token of each reasoning mode.", rich_help_panel=_ADV)] = None,
    mode_switch_form: Annotated[str, typer.Option("--mode-switch-form", help="ce (2-way cross-entropy) or hinge (reconstructed).", rich_help_panel=_ADV)] = "ce",
    mode_switch_margin: Annotated[float, typer.Option("--mode-switch-margin", help="Hinge margin delta (reconstructed).", rich_help_panel=_ADV)] = 1.0,
    mode_switch_tol: Annotated[float, typer.Option("--mode-switch-tol", help="Without preferred_mode: prefer short when Acc_S >= Acc_L - tol (reconstructed).", rich_help_panel=_ADV)] = 0.0,
    save_every: Annotated[int, typer.Option("--save-every", help="Checkpoint every K steps (and always at the end).", rich_help_panel=_CKPT)] = 0,
    keep_last: Annotated[Optional[int], typer.Option("--keep-last", metavar="K", help="Keep only the K newest checkpoints (default: all); older step-N and their trainer state are removed after the new one is complete, never latest's target.", rich_help_panel=_CKPT)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from --out's latest checkpoint (weights, optimizer, step, RNG); refused when that checkpoint is of another model than -m (architecture, shapes, tokenizer) or a newer step-N exists.", rich_help_panel=_CKPT)] = False,
    lora: Annotated[Optional[str], typer.Option("--lora", metavar="[r=R,alpha=A,targets=T,dropout=D]", help="Train a LoRA adapter (peft) instead of every weight; a bare --lora: r=16,alpha=32,targets=all-linear (every linear layer but the LM head),dropout=0. Checkpoints are peft adapter directories; the --kl-coef reference is the base with the adapter off. Use about 10x the full fine-tuning --lr (LoRA Without Regret; TRL: 1e-5 vs 1e-6).", rich_help_panel=_LORA)] = None,
    base_dtype: Annotated[Optional[str], typer.Option("--base-dtype", help="With --lora: dtype of the frozen base (float32, bfloat16); adapters and optimizer stay float32.", rich_help_panel=_LORA)] = None,
    fsdp: Annotated[bool, typer.Option("--fsdp", help="Under torchrun: FSDP2 sharding instead of DDP.")] = False,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Error (instead of warn) on rows sampled from another policy.")] = False,
    allow_zero_signal: Annotated[bool, typer.Option("--allow-zero-signal", help="Exit 0 even when every step had zero signal and the model was never trained (each such step is still warned about).")] = False,
    report_to: Annotated[str, typer.Option("--report-to", metavar="NAME[,NAME...]", help="Also log every metrics record to trackio, wandb (offline unless configured), tensorboard (runs/RUN-NAME), mlflow (MLFLOW_TRACKING_URI, else ./mlflow.db); all; none. Needs er[track].", rich_help_panel=_TRACK)] = "none",
    run_name: Annotated[Optional[str], typer.Option("--run-name", help="The run's name in the trackers (default: er-update-DATE-TIME).", rich_help_panel=_TRACK)] = None,
    project: Annotated[Optional[str], typer.Option("--project", help="The trackers' project (MLflow: experiment; default: er).", rich_help_panel=_TRACK)] = None,
    output: Output = None,
    rejects: Rejects = None,
    max_line_bytes: MaxLineBytes = DEFAULT_MAX_LINE_BYTES,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train the policy on a stream of samples (GRPO/DAPO/Dr. GRPO, DRPO or SFT); metrics on stdout.

    Each --batch-size samples (whole groups) is one step; one metrics record per step on stdout;
    checkpoints DIR/step-N (+ DIR/latest) every --save-every steps and at the end: each step-N is a plain
    save_pretrained directory (transformers and vLLM load it as it is); the optimizer and RNG state for
    --resume live in DIR/trainer-state/step-N. Rows without
    `advantage` but with `reward` get advantages from --estimator (as `er advantage`).

    Zero-signal steps: with --loss grpo (no --kl-coef/--entropy-coef/--mode-switch-coef), a step whose
    every advantage is 0 has no gradient: its forward/backward and optimizer update are skipped (no
    weight decay either), but the step is counted, so step-N, latest, --save-every and --resume number
    it as any other; its metrics record has zero_signal true, and stderr says why (no correct rows, every
    row correct, all rewards equal within each group). A run whose every step had zero signal, from a
    model never trained since its base, exits 1 after writing its checkpoints (--allow-zero-signal: 0).

    Runs unchanged
    under `torchrun --nproc-per-node N` (DDP, or --fsdp).
    """
    flags = dict(locals())  # the resolved flag values, before any other name is bound (er.config.resolved)
    from er.errors import UsageError
    from er.train.lora import parse_lora
    from er.train.run import run_update
    from er.train.config import UpdateConfig

    micro = None
    if max_tokens_per_micro_batch != "auto":
        try:
            micro = int(max_tokens_per_micro_batch)
        except ValueError:
            raise UsageError("--max-tokens-per-micro-batch must be auto or a positive integer, "
                             f"not {max_tokens_per_micro_batch!r}") from None
    tokens = None
    if mode_tokens:
        parts = [p.strip() for p in mode_tokens.split(",")]
        if len(parts) != 2 or not all(parts):
            raise UsageError("--mode-tokens must be LONG,SHORT (two token strings)")
        tokens = (parts[0], parts[1])
    cfg = UpdateConfig(
        loss=loss, lr=lr, warmup=warmup, weight_decay=weight_decay, grad_clip=grad_clip, batch_size=batch_size,
        max_tokens_per_micro_batch=micro, gradient_checkpointing=gradient_checkpointing, ppo_epochs=ppo_epochs,
        seed=seed,
        clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip, is_cap=is_cap, agg=agg,
        norm_length=norm_length, kl_coef=kl_coef, kl=kl, ref_model=ref_model, entropy_coef=entropy_coef,
        drpo_tau=drpo_tau, drpo_beta=drpo_beta, drpo_delta=drpo_delta, mode_switch_coef=mode_switch_coef,
        mode_tokens=tokens, mode_switch_form=mode_switch_form, mode_switch_margin=mode_switch_margin,
        temperature=temperature, save_every=save_every, keep_last=keep_last, fsdp=fsdp, device=device,
        lora=parse_lora(lora), base_dtype=base_dtype,
    )
    cfg.check()
    if estimator is not None:
        from er.advantaging import build_estimator

        build_estimator(estimator)  # a bad --estimator is a usage error before the model loads
    from er.config import resolved

    kwargs = dict(resume=resume, strict=strict, estimator=estimator, dynamic_sampling=dynamic_sampling,
                  command_config=resolved(flags),
                  allow_zero_signal=allow_zero_signal,
                  mode_tolerance=mode_switch_tol)
    if int(os.environ.get("RANK", "0")) != 0:
        run_update(model, out, cfg, None, **kwargs)
        return
    from er.train.trackers import open_trackers, parse_report_to

    parse_report_to(report_to)  # an unknown name is a usage error before anything starts
    with stream("update", inputs, output, "jsonl", rejects, max_line_bytes, quiet, kind="metrics") as s:
        trackers = open_trackers(report_to, run_name, project, {"model": model, **vars(cfg)}, "update")
        try:
            run_update(model, out, cfg, s, **kwargs, trackers=trackers)
        finally:
            if trackers is not None:
                trackers.close()
