"""LoRA adapters (peft) for `er update --lora`, `er merge --adapter` and the samplers.

LoRA (Hu et al., arXiv 2106.09685) freezes each target weight W and learns a low-rank update:

    W' = W + (alpha / r) * B A        A [r x in] (Kaiming-uniform), B [out x r] (zeros: W' = W at step 0)

`--lora r=R,alpha=A,targets=T,dropout=D`; defaults r=16, alpha=32, targets=all-linear, dropout=0.
`all-linear` is peft's: every `nn.Linear` except the output layer (the LM head). The defaults follow
"LoRA Without Regret" (Schulman et al., Thinking Machines, 2025): every weight matrix, MLP included;
alpha fixed at 32 with 1/r scaling, so the best learning rate hardly depends on the rank; rank 1-32 is
enough for RL. That work and TRL's docs put the best LoRA learning rate at about 10x full fine-tuning's
(TRL, GRPO: 1e-6 full, 1e-5 LoRA); `er update` does not rescale `--lr` by itself.

Adapters and their AdamW moments are float32 (peft's `autocast_adapter_dtype`); the frozen base may be
bfloat16 (`--base-dtype`). The KL reference of `--kl-coef` is the same model with the adapter disabled
(`PeftModel.disable_adapter()`, as TRL does), so no second model is loaded.

A checkpoint `step-N/` is a standard peft adapter directory (`adapter_config.json`,
`adapter_model.safetensors`, the tokenizer) whose `base_model_name_or_path` is the base's absolute path
(or its Hub name), so `peft.AutoPeftModelForCausalLM.from_pretrained(step-N)` loads it from anywhere.

Adapter kinds vLLM 0.32 would refuse to serve (`vllm/lora/peft_helper.py`, `lora_model.py`) are refused
here at start, before hours of training: DoRA, a bias, PiSSA/OLoRA/CorDA/LoftQ initialisations (they
change the base weights), `modules_to_save`, and embedding / LM-head targets (vLLM's Qwen2 has no
`embedding_modules`; with tied embeddings peft's merge of such an adapter is error-prone). The flag's
grammar cannot express most of them; an adapter directory given with `-m` is checked the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from er.errors import UsageError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
DEFAULT_R = 16
DEFAULT_ALPHA = 32.0
DEFAULT_TARGETS = "all-linear"
# vLLM 0.32's `max_lora_rank` accepts only these (vllm/config/lora.py)
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
_UNSERVABLE_INITS = ("pissa", "olora", "corda", "loftq")
_EMBEDDING_NAMES = ("embed_tokens", "lm_head", "wte", "embed_in", "embed_out", "word_embeddings")


@dataclass(frozen=True)
class LoraSpec:
    r: int = DEFAULT_R
    alpha: float = DEFAULT_ALPHA
    targets: str = DEFAULT_TARGETS
    dropout: float = 0.0

    def peft_config(self):
        from peft import LoraConfig

        targets = self.targets if self.targets == "all-linear" else [t for t in self.targets.split("+") if t]
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          bias="none", init_lora_weights=True, task_type="CAUSAL_LM")


def parse_lora(text: str | None) -> LoraSpec | None:
    """`--lora` value -> LoraSpec. "" (a bare `--lora`) or "default" -> the defaults; None -> no LoRA.

    Keys: r (int >= 1), alpha (number > 0), targets (`all-linear` or module names joined by `+`, e.g.
    `q_proj+v_proj`), dropout (in [0, 1)). Unknown keys and bad values are usage errors.
    """
    if text is None:
        return None
    fields: dict = {}
    for part in (p.strip() for p in text.split(",")):
        if not part or part == "default":
            continue
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not value:
            raise UsageError(f"--lora: {part!r} is not key=value (keys: r, alpha, targets, dropout)")
        try:
            if key == "r":
                fields["r"] = int(value)
            elif key == "alpha":
                fields["alpha"] = float(value)
            elif key == "dropout":
                fields["dropout"] = float(value)
            elif key == "targets":
                fields["targets"] = value
            else:
                raise UsageError(f"--lora: unknown key {key!r} (keys: r, alpha, targets, dropout)")
        except ValueError:
            raise UsageError(f"--lora: {key}={value!r} is not a number") from None
    spec = LoraSpec(**fields)
    if spec.r < 1 or spec.alpha <= 0 or not (0 <= spec.dropout < 1):
        raise UsageError("--lora: r must be >= 1, alpha > 0 and dropout in [0, 1)")
    names = [] if spec.targets == "all-linear" else spec.targets.split("+")
    check_servable({"target_modules": names}, flag="--lora")
    return spec


def bare_lora(argv: list[str]) -> list[str]:
    """`--lora` not followed by a key=value list -> `--lora default` (the option's parser wants a value)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "--lora" and (i + 1 == len(out) or ("=" not in out[i + 1] and out[i + 1] != "default")
                                or out[i + 1].startswith("-")):
            out.insert(i + 1, "default")
            break
    return out


def check_servable(config: dict, *, flag: str) -> None:
    """One-line UsageError when vLLM could not serve an adapter of this peft config (dict form)."""
    reason = None
    init = config.get("init_lora_weights", True)
    targets = config.get("target_modules") or []
    if isinstance(targets, str):
        targets = [targets]
    if config.get("use_dora"):
        reason = "DoRA (use_dora)"
    elif config.get("lora_bias") or config.get("bias", "none") != "none":
        reason = "a trained bias"
    elif isinstance(init, str) and init.lower().startswith(_UNSERVABLE_INITS):
        reason = f"init_lora_weights={init!r} (it changes the base weights)"
    elif [m for m in (config.get("modules_to_save") or []) if m not in ("classifier", "score")]:
        reason = "modules_to_save"
    elif config.get("trainable_token_indices"):
        reason = "trainable_token_indices"
    elif any(t.split(".")[-1] in _EMBEDDING_NAMES for t in targets if isinstance(t, str)):
        reason = "an embedding or LM-head target (vLLM's Qwen2 cannot serve it; tied embeddings break its merge)"
    if reason:
        raise UsageError(f"{flag}: vLLM cannot serve an adapter with {reason}; use targets=all-linear "
                         "(plain LoRA on the linear layers)")


# ---- adapter directories --------------------------------------------------------------------
def is_adapter_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, ADAPTER_CONFIG))


def is_complete_adapter(path: str) -> bool:
    return is_adapter_dir(path) and os.path.isfile(os.path.join(path, ADAPTER_WEIGHTS))


def adapter_config(path: str, *, flag: str = "-m") -> dict:
    try:
        with open(os.path.join(path, ADAPTER_CONFIG)) as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{flag} {path}: cannot read {ADAPTER_CONFIG} ({exc})") from None
    if not isinstance(config, dict):
        raise UsageError(f"{flag} {path}: {ADAPTER_CONFIG} is not a JSON object")
    return config


def adapter_base(path: str, *, flag: str = "-m") -> str:
    """The base model of adapter directory `path` (its `base_model_name_or_path`), checked."""
    from er.models import model_dir

    base = adapter_config(path, flag=flag).get("base_model_name_or_path")
    if not base:
        raise UsageError(f"{flag} {path}: {ADAPTER_CONFIG} names no base_model_name_or_path")
    if not os.path.isabs(base) and not os.path.exists(base) and os.path.exists(os.path.join(path, base)):
        base = os.path.join(path, base)  # a path relative to the adapter directory
    return model_dir(base, flag=f"{flag} {path}: base model", tokenizer=False)


def checked_policy_dir(path: str, *, flag: str = "-m") -> str:
    """`er sample -m`: an adapter directory (its base checked too) as it is, else `er.models.model_dir`."""
    from er.models import model_dir

    if not is_adapter_dir(path):
        return model_dir(path, flag=flag)
    if not is_complete_adapter(path):
        raise UsageError(f"{flag} {path}: a LoRA adapter directory without {ADAPTER_WEIGHTS}")
    check_servable(adapter_config(path, flag=flag), flag=f"{flag} {path}")
    adapter_base(path, flag=flag)
    return path


def config_dir(path: str) -> str:
    """Where the model config of `path` is: the base's directory for an adapter, else `path`."""
    return adapter_base(path) if is_adapter_dir(path) else path


def adapter_rank(path: str) -> int:
    config = adapter_config(path)
    ranks = [int(config.get("r", 8)), *(int(v) for v in (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_rank(r: int) -> int:
    """The smallest `max_lora_rank` vLLM accepts that holds rank r."""
    for allowed in VLLM_RANKS:
        if allowed >= r:
            return allowed
    raise UsageError(f"LoRA rank {r} exceeds vLLM's largest max_lora_rank ({VLLM_RANKS[-1]})")


def vllm_engine_options(adapter_path: str) -> dict:
    """vLLM engine arguments for serving adapters like the one at `adapter_path`.

    One adapter in a batch (`max_loras=1`), two cached (`max_cpu_loras=2`: the one being served and the
    one being swapped in), rank rounded up to a value vLLM accepts.
    """
    return {"enable_lora": True, "max_lora_rank": vllm_rank(adapter_rank(adapter_path)), "max_loras": 1,
            "max_cpu_loras": 2}


class AdapterVersions:
    """Names and ids for successive adapter versions: (name, id, id of the version it replaces)."""

    def __init__(self):
        self.count = 0

    def next(self, path: str) -> tuple[str, int, int | None]:
        self.count += 1
        previous = self.count - 1 if self.count > 1 else None
        return f"er-policy-v{self.count}-{os.path.basename(path)}", self.count, previous


def base_reference(model: str) -> str:
    """How a checkpoint names its base: an absolute path for a local directory, else the Hub name."""
    return os.path.abspath(model) if os.path.exists(model) else model


# ---- training ----------------------------------------------------------------------------------
def attach(lm, spec: LoraSpec, base_name: str):
    """Wrap `lm` in a new peft LoRA (trainable float32 adapters, frozen base); returns the PeftModel."""
    from peft import get_peft_model

    peft_model = get_peft_model(lm, spec.peft_config(), autocast_adapter_dtype=True)
    peft_model.peft_config["default"].base_model_name_or_path = base_name
    return peft_model


def check_config(cfg) -> None:
    """The UpdateConfig checks that concern LoRA (called by UpdateConfig.check)."""
    if cfg.base_dtype is not None:
        dtype_of(cfg.base_dtype)
        if cfg.lora is None and cfg.base_dtype not in ("float32", "fp32"):
            raise UsageError("--base-dtype applies to --lora only (full fine-tuning keeps float32 weights)")
    if cfg.lora is not None and cfg.fsdp:
        raise UsageError("--fsdp with --lora is not supported: the frozen base is replicated with DDP "
                         "(plain torchrun) instead, which for LoRA also avoids re-gathering it every micro-batch")


def split_model_path(path: str, spec: LoraSpec | None, *, resumed: bool = False) -> tuple[str, str | None]:
    """(base model to load, adapter directory or None) for `-m PATH` (or the checkpoint resumed from)."""
    if is_adapter_dir(path):
        if spec is None:
            raise UsageError(f"-m {path}: a LoRA adapter directory; pass --lora to train it on, "
                             "or `er merge --adapter` it into a plain model first")
        return adapter_base(path), path
    if spec is not None and resumed:
        raise UsageError(f"--resume: {path} is a full model checkpoint, not a LoRA adapter; "
                         "resume it without --lora, or train the adapter into a new --out")
    return path, None


def wrap(lm, spec: LoraSpec, adapter_path: str | None, model_arg: str):
    """The trainable PeftModel on `lm`: the adapter at `adapter_path` if given, else a new one."""
    check_base_fits(lm, spec)
    if adapter_path is not None:
        base_name = adapter_config(adapter_path).get("base_model_name_or_path") or model_arg
        return load_trainable(lm, adapter_path, base_name)
    return attach(lm, spec, base_reference(model_arg))


def load_trainable(lm, adapter_path: str, base_name: str):
    """Load the adapter at `adapter_path` onto `lm`, trainable (resume, or `-m ckpt/latest`)."""
    from peft import PeftModel

    check_servable(adapter_config(adapter_path), flag=f"-m {adapter_path}")
    peft_model = PeftModel.from_pretrained(lm, adapter_path, is_trainable=True, autocast_adapter_dtype=True)
    peft_model.peft_config["default"].base_model_name_or_path = base_name
    return peft_model


def check_base_fits(lm, spec: LoraSpec | None) -> None:
    """Refuse targets the model does not have (peft's own error is a traceback)."""
    if spec is None or spec.targets == "all-linear":
        return
    leaves = {name.split(".")[-1] for name, _ in lm.named_modules()}
    missing = [t for t in spec.targets.split("+") if t and t not in leaves]
    if missing:
        raise UsageError(f"--lora: targets {', '.join(missing)} are not modules of this model")


class AdapterDisabled:
    """The KL reference of a LoRA policy: the same module run with the adapter switched off."""

    def __init__(self, peft_model, policy):
        self.peft_model = peft_model
        self.policy = policy

    def __call__(self, *args, **kwargs):
        with self.peft_model.disable_adapter():
            return self.policy(*args, **kwargs)


def dtype_of(name: str | None):
    import torch

    if name in (None, "float32", "fp32"):
        return torch.float32
    if name in ("bfloat16", "bf16"):
        return torch.bfloat16
    if name in ("float16", "fp16"):
        return torch.float16
    raise UsageError(f"--base-dtype must be float32, bfloat16 or float16, not {name!r}")


# ---- loading for inference, merging --------------------------------------------------------------
def load_merged(adapter_path: str, dtype=None, *, flag: str = "-m"):
    """Base + adapter merged into plain weights: computed in float32, then cast to `dtype`.

    `dtype` None: the base's own dtype (its config's `dtype`/`torch_dtype`), float32 if it names none.
    Merging in float32 avoids rounding W + scale * B A onto a bf16 grid twice (TRL #6688).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    base = adapter_base(adapter_path, flag=flag)
    lm = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, use_safetensors=True)
    if dtype is None:
        saved = getattr(lm.config, "dtype", None) or getattr(lm.config, "torch_dtype", None)
        dtype = getattr(torch, saved) if isinstance(saved, str) else (saved or torch.float32)
    merged = PeftModel.from_pretrained(lm, adapter_path).merge_and_unload()
    return merged.to(dtype)


def merge_adapter(adapter_path: str, out_path: str) -> dict:
    """`er merge --adapter`: write base + adapter as a plain save_pretrained model (atomically)."""
    import shutil
    import tempfile

    from er.models import load_tokenizer

    if not is_complete_adapter(adapter_path):
        raise UsageError(f"--adapter {adapter_path}: not a peft adapter directory "
                         f"({ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
    if os.path.lexists(out_path):
        raise UsageError(f"--out {out_path} exists; choose a new directory")
    model = load_merged(adapter_path, flag="--adapter")
    parent = os.path.dirname(os.path.abspath(out_path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-merge-", dir=parent)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok_dir = adapter_path if os.path.isfile(os.path.join(adapter_path, "tokenizer_config.json")) \
            else adapter_base(adapter_path, flag="--adapter")
        load_tokenizer(tok_dir).save_pretrained(tmp)
        from er.io import current_umask

        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
        os.rename(tmp, out_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"adapter": adapter_path, "base": adapter_base(adapter_path, flag="--adapter"), "out": out_path,
            "dtype": str(model.dtype).replace("torch.", "")}
