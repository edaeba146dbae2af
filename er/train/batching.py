"""Micro-batches: length-sorted, padding-aware packing of a step's sequences under a token budget.

`plan_micro_batches` sorts units (single sequences, or whole groups for DRPO, whose log-sum-exp couples
a group's sequences) by length, longest first, and fills each micro-batch while its padded size
(rows x longest row) stays within `--max-tokens-per-micro-batch`; a unit larger than the budget gets
a micro-batch of its own. Because neighbours in the sorted order have similar lengths, padding stays
small; `padding_frac` = padded-away positions / positions computed, over the step.

`collate` right-pads one micro-batch and returns flat indices of the positions whose logits predict a
completion token, so the LM head and the losses run on completion tokens only (packed 1-D tensors).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from er.train.data import Example


def plan_micro_batches(lengths: list[int], budget: int, units: list[list[int]] | None = None) -> list[list[int]]:
    """Lists of example indices, one per micro-batch (see module doc)."""
    if units is None:
        units = [[i] for i in range(len(lengths))]
    order = sorted(range(len(units)), key=lambda u: (-max(lengths[i] for i in units[u]), u))
    plans: list[list[int]] = []
    current: list[int] = []
    width = 0
    for u in order:
        unit = units[u]
        w = max(lengths[i] for i in unit)
        new_width = max(width, w)
        if current and (len(current) + len(unit)) * new_width > budget:
            plans.append(current)
            current, new_width = [], w
        current = current + list(unit)
        width = new_width
    if current:
        plans.append(current)
    return plans


def padding_fraction(lengths: list[int], plans: list[list[int]]) -> float:
    real = sum(lengths)
    padded = sum(len(p) * max(lengths[i] for i in p) for p in plans)
    return 0.0 if padded == 0 else 1.0 - real / padded


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [b, L]
    attention_mask: torch.Tensor  # [b, L]
    rows: torch.Tensor  # [n] row of each predicting position
    cols: torch.Tensor  # [n] column of each predicting position
    labels: torch.Tensor  # [n] the completion token predicted there
    seq: torch.Tensor  # [n] local sequence index of each token
    seq_len: torch.Tensor  # [n] completion-token count of the token's sequence
    temps: torch.Tensor  # [n] sampling temperature of the token's sequence
    adv: torch.Tensor  # [n]
    behaviour: torch.Tensor  # [n] behaviour log-prob, NaN where the record had none
    index: list[int]  # global example index of each local sequence
    group: torch.Tensor  # [b] group of each local sequence within the step (DRPO)
    drpo_weight: torch.Tensor  # [b] the drpo estimator's weight of each local sequence
    drpo_negative: torch.Tensor  # [b] whether it is one of DRPO's negatives
    n_tokens: int  # completion tokens (loss positions)
    dummy: bool = False  # a stand-in that keeps ranks in step; its loss is multiplied by 0


def loss_positions(ex: Example) -> tuple[int, int]:
    """(first, last+1) logits positions predicting completion tokens; a prompt-less sequence (a
    Dataset-Decomposition chunk) cannot predict its first token."""
    start = max(ex.prompt_len, 1) - 1
    return start, len(ex.ids) - 1


def collate(examples: list[Example], index: list[int], pad_id: int, device: torch.device) -> MicroBatch:
    exs = [examples[i] for i in index]
    width = max(len(e.ids) for e in exs)
    ids = torch.full((len(exs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(exs), width), dtype=torch.long)
    rows, cols, labels, seq, seq_len, temps, adv, beh = [], [], [], [], [], [], [], []
    for r, e in enumerate(exs):
        n = len(e.ids)
        ids[r, :n] = torch.tensor(e.ids, dtype=torch.long)
        mask[r, :n] = 1
        a, b = loss_positions(e)
        k = max(b - a, 0)
        rows.extend([r] * k)
        cols.extend(range(a, b))
        labels.extend(e.ids[a + 1:b + 1])
        seq.extend([r] * k)
        seq_len.extend([k] * k)
        temps.extend([e.temperature] * k)
        adv.extend([e.advantage] * k)
        if e.logprobs is not None:
            lp = e.logprobs[len(e.logprobs) - k:] if k < len(e.logprobs) else e.logprobs
            beh.extend(lp)
        else:
            beh.extend([float("nan")] * k)
    f32 = torch.float32
    return MicroBatch(
        input_ids=ids.to(device), attention_mask=mask.to(device),
        rows=torch.tensor(rows, dtype=torch.long, device=device),
        cols=torch.tensor(cols, dtype=torch.long, device=device),
        labels=torch.tensor(labels, dtype=torch.long, device=device),
        seq=torch.tensor(seq, dtype=torch.long, device=device),
        seq_len=torch.tensor(seq_len, dtype=torch.long, device=device),
        temps=torch.tensor(temps, dtype=f32, device=device),
        adv=torch.tensor(adv, dtype=f32, device=device),
        behaviour=torch.tensor(beh, dtype=f32, device=device),
        index=list(index), n_tokens=len(labels),
        group=torch.tensor([e.group for e in exs], dtype=torch.long, device=device),
        drpo_weight=torch.tensor([e.drpo_weight for e in exs], dtype=f32, device=device),
        drpo_negative=torch.tensor([e.drpo_negative for e in exs], dtype=torch.bool, device=device),
    )


# ---- the micro-batch token budget ----------------------------------------------------------------

AUTO_CPU_SHARE = 0.25  # of MemAvailable (after the model is loaded) that activations may take on CPU
# and at most this: on CPU, passes of several hundred tokens already saturate the matmuls. SmolLM2-135M,
# 1 thread: 512-token passes ran at 0.97x the tokens/s of one 16k-token pass, 768-token ones (this cap)
# at 1.06x with peak RSS 3.3 GB for 64 samples, 1024-token ones at 1.05x but 3.9 GB (bench/update.py --real).
AUTO_CPU_CAP = 3 << 29
AUTO_GPU_SHARE = 0.5  # of the free device memory
AUTO_MIN_TOKENS, AUTO_MAX_TOKENS = 256, 65536


def activation_bytes_per_token(config, gradient_checkpointing: bool = False, full_logits: bool = False,
                               dtype_bytes: int = 4) -> int:
    """Estimated memory autograd keeps per (padded) token of a forward pass, from a decoder's config.

    One decoder layer saves, per token, about 10 H (norm inputs/outputs, q, attention output, o_proj
    input, residuals) + 4 H_kv (k, v before and after RoPE) + 5 I (gate, up, activation, product, down
    input) values, with H = hidden_size, H_kv = num_key_value_heads * head_dim, I = intermediate_size:

        per_layer = dtype_bytes * (10 H + 4 H_kv + 5 I)
        bytes     = layers * per_layer                        (default)
                  = layers * dtype_bytes * H + per_layer      (--gradient-checkpointing: each layer's
                                                               input, plus one layer recomputed at a time)
                  + 3 * dtype_bytes * V                       (models whose logits are transformed after
                                                               the head: full-forward [L x V] logits)

    The LM head adds nothing per token: log-probs go through it in fixed-size chunks
    (`er.train.logprobs`). Attention scores are not counted (SDPA keeps none per token pair).
    """
    cfg = getattr(config, "text_config", None) or config
    h = int(cfg.hidden_size)
    layers = int(cfg.num_hidden_layers)
    inter = int(getattr(cfg, "intermediate_size", None) or 4 * h)
    heads = int(getattr(cfg, "num_attention_heads", 1) or 1)
    head_dim = int(getattr(cfg, "head_dim", None) or h // heads)
    kv = int(getattr(cfg, "num_key_value_heads", None) or heads) * head_dim
    per_layer = dtype_bytes * (10 * h + 4 * kv + 5 * inter)
    total = layers * dtype_bytes * h + per_layer if gradient_checkpointing else layers * per_layer
    if full_logits:
        total += 3 * dtype_bytes * int(cfg.vocab_size)
    return total


def available_memory(device) -> int:
    """Free device memory on CUDA; MemAvailable (/proc/meminfo) on CPU, else physical pages x page size."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def auto_micro_batch_tokens(per_token: int, available: int, state_bytes: int, device_type: str) -> int:
    """The `--max-tokens-per-micro-batch auto` value: the most padded tokens whose activations fit.

        budget = GPU_SHARE * (free - state)                     on CUDA (share 0.5)
               = min(CPU_SHARE * (MemAvailable - state), 1.5 GiB)  on CPU (share 0.25)
        tokens = clamp(budget / per_token, 256, 65536), rounded down to a multiple of 256

    `state_bytes`: what the step will still allocate besides activations (gradients and AdamW's two
    moments: 3 x the parameter bytes); `per_token` from `activation_bytes_per_token`.
    """
    room = max(available - state_bytes, 0)
    budget = AUTO_GPU_SHARE * room if device_type == "cuda" else min(AUTO_CPU_SHARE * room, AUTO_CPU_CAP)
    tokens = int(budget // max(per_token, 1))
    return max(AUTO_MIN_TOKENS, min(AUTO_MAX_TOKENS, tokens // 256 * 256))
