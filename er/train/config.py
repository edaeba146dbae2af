"""`er update`'s settings (UpdateConfig) and their checks, importable without torch.

Kept apart from er.train.trainer so that a bad flag is a usage error at once, before torch (seconds)
and the model load; the trainer module re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from typing import Any

from er.errors import UsageError

AGGS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
KLS = ("k1", "k3", "mse")
LOSSES = ("grpo", "drpo", "sft")


@dataclass
class UpdateConfig:
    loss: str = "grpo"
    lr: float = 1e-6
    warmup: int = 0
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    batch_size: int = 64
    max_tokens_per_micro_batch: int | None = None  # None: auto, from memory (batching.auto_micro_batch_tokens)
    gradient_checkpointing: bool = False
    ppo_epochs: int = 1
    seed: int = 0
    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float | None = None
    is_cap: float | None = None
    agg: str = "token-mean"
    norm_length: int | None = None
    kl_coef: float = 0.0
    kl: str = "k3"
    ref_model: str | None = None
    entropy_coef: float = 0.0
    drpo_tau: float = 10.0
    drpo_beta: float = 1e3
    drpo_delta: float = 1e-4
    mode_switch_coef: float = 0.0
    mode_tokens: tuple[str, str] | None = None
    mode_switch_form: str = "ce"
    mode_switch_margin: float = 1.0
    temperature: float | None = None
    save_every: int = 0
    keep_last: int | None = None
    fsdp: bool = False
    device: str | None = None
    lora: Any = None  # er.train.lora.LoraSpec: train a LoRA adapter instead of every weight
    base_dtype: str | None = None  # with lora: the frozen base's dtype (adapters stay float32)

    def check(self) -> None:
        for f in fields(self):  # NaN passes every comparison below, inf most: neither is ever a valid value
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"--{f.name.replace('_', '-')} must be a finite number, not {value}")
        if self.loss not in LOSSES:
            raise UsageError(f"--loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.agg not in AGGS:
            raise UsageError(f"--agg must be one of {', '.join(AGGS)}, not {self.agg!r}")
        if self.kl not in KLS:
            raise UsageError(f"--kl must be one of {', '.join(KLS)}, not {self.kl!r}")
        if (self.lr <= 0 or self.batch_size < 1 or self.ppo_epochs < 1
                or (self.max_tokens_per_micro_batch is not None and self.max_tokens_per_micro_batch < 1)):
            raise UsageError("--lr, --batch-size, --ppo-epochs and --max-tokens-per-micro-batch must be positive")
        for flag, value, valid, rule in (
                ("--warmup", self.warmup, self.warmup >= 0, ">= 0"),
                ("--save-every", self.save_every, self.save_every >= 0, ">= 0 (0: only at the end)"),
                ("--weight-decay", self.weight_decay, self.weight_decay >= 0, ">= 0"),
                ("--grad-clip", self.grad_clip, self.grad_clip >= 0, ">= 0 (0: off)"),
                ("--temperature", self.temperature, self.temperature is None or self.temperature > 0, "> 0"),
                ("--drpo-tau", self.drpo_tau, self.drpo_tau > 0, "> 0"),
                ("--drpo-beta", self.drpo_beta, self.drpo_beta >= 0, ">= 0"),
                ("--drpo-delta", self.drpo_delta, self.drpo_delta >= 0, ">= 0"),
                ("--mode-switch-margin", self.mode_switch_margin, self.mode_switch_margin >= 0, ">= 0")):
            if not valid:
                raise UsageError(f"{flag} must be {rule}, not {value}")
        if not (0 <= self.clip_low < 1) or self.clip_high < 0:
            raise UsageError("--clip-low must be in [0, 1) and --clip-high >= 0")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise UsageError("--dual-clip must be > 1 (verl uses 3..10)")
        if self.is_cap is not None and self.is_cap <= 0:
            raise UsageError("--is-cap must be > 0")
        if self.kl_coef < 0 or self.entropy_coef < 0 or self.mode_switch_coef < 0:
            raise UsageError("--kl-coef, --entropy-coef and --mode-switch-coef must be >= 0")
        # a term the chosen loss has no place for is a usage error, never silently dropped
        if self.kl_coef > 0 and self.loss != "grpo":
            raise UsageError(f"--kl-coef applies to --loss grpo only (--loss {self.loss} has no KL-to-reference "
                             "term; DRPO's KL to the sampling policy is --drpo-beta)")
        if self.ref_model and self.kl_coef == 0:
            raise UsageError("--ref-model is only used with --kl-coef > 0")
        if self.entropy_coef > 0 and self.loss == "sft":
            raise UsageError("--entropy-coef applies to --loss grpo or drpo, not sft")
        if self.mode_switch_coef > 0 and not self.mode_tokens:
            raise UsageError("--mode-switch-coef needs --mode-tokens LONG,SHORT (the first tokens of each mode)")
        if self.mode_switch_form not in ("ce", "hinge"):
            raise UsageError("--mode-switch-form must be ce or hinge")
        if self.norm_length is not None and self.norm_length < 1:
            raise UsageError("--norm-length must be >= 1")
        if self.keep_last is not None and self.keep_last < 1:
            raise UsageError(f"--keep-last must be >= 1, not {self.keep_last}")
        if self.lora is not None or self.base_dtype is not None:
            from er.train.lora import check_config

            check_config(self)


def lr_at(cfg: UpdateConfig, step: int) -> float:
    """Learning rate of (0-based) step `step`: linear warm-up over `warmup` steps, then constant."""
    if cfg.warmup > 0 and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.lr
