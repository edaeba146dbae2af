"""Training losses of `er update`, on packed token tensors (one entry per completion token).

Every function takes 1-D tensors over the completion tokens of a micro-batch, `seq` (the sequence
index of each token) and per-token aggregation weights from `agg_weights`, so that summing the loss
of every micro-batch of a step equals the loss of the whole step at once (gradient accumulation is
exact, whatever the micro-batching).

Policy gradient (`pg_loss`; PPO-clip as in DeepSeekMath GRPO, arXiv 2402.03300, with DAPO's
decoupled clip-higher, arXiv 2503.14476, used by DLER, arXiv 2510.15110):

    rho_t   = exp(logp_t - old_t)                 old = behaviour log-probs carried by the record, or
                                                  the log-probs at the start of the step
    rho~_t  = rho_t * sg(min(rho_t, C_is) / rho_t)   truncated importance weight (value min(rho, C_is),
                                                  gradient scaled alike); only with --is-cap C_is
    l_t     = max(-A rho~_t, -A clip(rho_t, 1 - eps_low, 1 + eps_high))
    dual clip (verl `clip_ratio_c`, --dual-clip c > 1): for A < 0, l_t = min(l_t, -A c)
    loss    = sum_t w_t l_t       (w_t from the aggregation mode, below)

  clip_frac_high = share of tokens with A > 0 and rho > 1 + eps_high (the clipped branch is taken),
  clip_frac_low  = share with A < 0 and rho < 1 - eps_low; clip_frac = their sum;
  dual_clip_frac = share with A < 0 and -A rho > -A c.

Aggregation (`agg_weights`, verl's `loss_agg_mode` names):
  token-mean               w_t = 1 / (tokens in the step)                      DAPO / DLER (default)
  seq-mean-token-mean      w_t = 1 / (|o_i| * sequences in the step)           GRPO (DeepSeekMath)
  seq-mean-token-sum-norm  w_t = 1 / (L_norm * sequences in the step)          Dr. GRPO (L_norm constant)

KL to a reference (`kl_penalty`, per token, d = logp - ref): k1 = d; k3 = exp(-d) + d - 1 (Schulman's
unbiased, non-negative estimator; TRL's); mse = d^2 / 2 (verl `mse`/`k2`). Aggregated with the same w_t
and added as beta * KL. Entropy is -sum_v p log p of each token's distribution; with a coefficient it
is subtracted (a bonus).

DRPO (`drpo_loss`; Li et al., arXiv 2510.04474, rl-length-methods §5): s_i = mean_t logp of o_i;
per question J_q = sum_{i in P_q} w_i s_i - tau log((1/|N_q|) sum_{j in N_q} exp(s_j / tau)), only for
questions with positives and negatives; loss = -(1/Q) sum_q J_q + sg(beta [K - delta]_+) K with
K = mean_t(old - logp). Q counts every question of the step (also the skipped ones). Departures: the
logged value is the true log-sum-exp objective (the official code logs tau * S / sg(S), a constant
with the same gradient); K is taken per micro-batch and weighted by the micro-batch's share of the
step's tokens (exact when the step is one micro-batch, as in the paper's setting).

Mode switch (`mode_switch_loss`; Adaptive Deep Reasoning, arXiv 2505.20101, length-control §2):
**reconstructed** — the paper's exact form is not public. With z_L, z_S the logits of the long- and
short-mode first tokens at the first completion position (prompt without the mode instruction) and m
the group's preferred mode: `ce` = -log softmax([z_L, z_S])_m (default), `hinge` =
max(0, delta - (z_m - z_other)). Added as alpha * mean over groups. Worked numbers (spec): z_L = 2.1,
z_S = 1.4, m = short: hinge (delta = 1) 1.7, ce 1.1032.

SFT (`sft_loss`): cross-entropy on completion tokens only, token-mean over the step.
"""

from __future__ import annotations

import torch

from er.train.config import AGGS, KLS  # noqa: F401  (defined torch-free, for the flag checks)


def agg_weights(agg: str, seq_len: torch.Tensor, n_tokens: int, n_seqs: int,
                norm_length: float | None = None) -> torch.Tensor:
    """Per-token weights w_t; `seq_len` is the length of each token's sequence (same shape as the tokens)."""
    if agg == "token-mean":
        return torch.full_like(seq_len, 1.0 / max(n_tokens, 1), dtype=torch.float32)
    if agg == "seq-mean-token-mean":
        return 1.0 / (seq_len.to(torch.float32).clamp(min=1) * max(n_seqs, 1))
    if agg == "seq-mean-token-sum-norm":
        if not norm_length or norm_length <= 0:
            raise ValueError("seq-mean-token-sum-norm needs a positive norm_length")
        return torch.full_like(seq_len, 1.0 / (norm_length * max(n_seqs, 1)), dtype=torch.float32)
    raise ValueError(f"unknown aggregation {agg!r}; use one of {', '.join(AGGS)}")


def pg_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, weights: torch.Tensor, *,
            clip_low: float = 0.2, clip_high: float = 0.28, dual_clip: float | None = None,
            is_cap: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped policy-gradient loss (see module doc). Returns (loss, token counts for the clip stats)."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = ratio
    capped = torch.zeros_like(ratio, dtype=torch.bool)
    if is_cap is not None:
        capped = ratio.detach() > is_cap
        unclipped = ratio * (torch.clamp(ratio.detach(), max=is_cap) / ratio.detach())
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    l1 = -adv * unclipped
    l2 = -adv * clipped
    per_token = torch.maximum(l1, l2)
    dual = torch.zeros_like(ratio, dtype=torch.bool)
    if dual_clip is not None:
        l3 = -adv * dual_clip
        dual = (adv < 0) & (per_token.detach() > l3)
        per_token = torch.where(adv < 0, torch.minimum(per_token, l3), per_token)
    loss = (per_token * weights).sum()
    r = ratio.detach()
    stats = {
        "clip_high": ((adv > 0) & (r > 1.0 + clip_high)).sum(),
        "clip_low": ((adv < 0) & (r < 1.0 - clip_low)).sum(),
        "dual_clip": dual.sum(),
        "is_capped": capped.sum(),
    }
    return loss, stats


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate (see module doc)."""
    d = logp - ref_logp
    if kind == "k1":
        return d
    if kind == "k3":
        return torch.exp(-d) + d - 1.0
    if kind == "mse":
        return 0.5 * d * d
    raise ValueError(f"unknown KL estimator {kind!r}; use one of {', '.join(KLS)}")


def token_logprobs_entropy(logits: torch.Tensor, labels: torch.Tensor,
                           entropy: str = "detached") -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(label) for each row of `logits` [n, V] (float32 math), and each row's entropy.

    `entropy`: "grad" (differentiable, for an entropy bonus), "detached" (for metrics only) or "none".
    """
    logits = logits.float()
    logz = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - logz
    ent = None
    if entropy == "grad":
        ent = logz - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    elif entropy == "detached":
        with torch.no_grad():
            d = logits.detach()
            ent = logz.detach() - (torch.softmax(d, dim=-1) * d).sum(-1)
    return logp, ent


def sequence_means(values: torch.Tensor, seq: torch.Tensor, n_seqs: int) -> torch.Tensor:
    """Mean of `values` per sequence index (sequences with no token get 0)."""
    total = torch.zeros(n_seqs, dtype=values.dtype, device=values.device).index_add(0, seq, values)
    count = torch.zeros(n_seqs, dtype=values.dtype, device=values.device).index_add(
        0, seq, torch.ones_like(values))
    return total / count.clamp(min=1)


def drpo_objective(scores: torch.Tensor, group: torch.Tensor, weight: torch.Tensor, negative: torch.Tensor,
                   tau: float) -> tuple[torch.Tensor, int]:
    """sum_q J_q over the groups of a micro-batch (see module doc) and how many groups contributed.

    `scores` s_i, `group` the group index of each sequence, `weight` w_i (0 for non-positives),
    `negative` a bool mask. Positives are rows with weight > 0 and not negative.
    """
    total = scores.new_zeros(())
    used = 0
    for g in torch.unique(group).tolist():
        in_g = group == g
        pos = in_g & ~negative & (weight > 0)
        neg = in_g & negative
        if not bool(pos.any()) or not bool(neg.any()):
            continue
        used += 1
        s_neg = scores[neg] / tau
        lme = torch.logsumexp(s_neg, dim=0) - torch.log(torch.tensor(float(s_neg.numel()), device=scores.device))
        total = total + (weight[pos] * scores[pos]).sum() - tau * lme
    return total, used


def drpo_kl_term(logp: torch.Tensor, old_logp: torch.Tensor, beta: float, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """sg(beta [K - delta]_+) * K with K = mean_t(old - logp); returns (term, K)."""
    k = (old_logp - logp).mean() if logp.numel() else logp.new_zeros(())
    coef = (beta * torch.clamp(k.detach() - delta, min=0.0))
    return coef * k, k.detach()


def mode_switch_loss(z_long: torch.Tensor, z_short: torch.Tensor, prefer_short: torch.Tensor,
                     form: str = "ce", margin: float = 1.0) -> torch.Tensor:
    """Per-group mode-switch loss (reconstructed; see module doc)."""
    z_m = torch.where(prefer_short, z_short, z_long)
    z_o = torch.where(prefer_short, z_long, z_short)
    if form == "ce":
        return -(z_m - torch.logaddexp(z_m, z_o))
    if form == "hinge":
        return torch.clamp(margin - (z_m - z_o), min=0.0)
    raise ValueError(f"unknown mode-switch form {form!r}; use ce or hinge")
