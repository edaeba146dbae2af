"""Per-token log-probs and entropies through the LM head in chunks: never [tokens x vocabulary] at once.

For the n completion positions of a micro-batch with hidden states h [n, H], LM head W [V, H] (bias b),
labels y and sampling temperatures T [n]:

    z_t      = (h_t W^T + b) / T_t                     logits of one position, float32 after the matmul
    logp_t   = z_t[y_t] - logsumexp(z_t)
    ent_t    = logsumexp(z_t) - sum_v softmax(z_t)_v z_t,v

computed `chunk` positions at a time, so the logits held at once are [chunk, V] instead of [n, V] (at
n = 8k completion tokens and a 49k vocabulary that is 1.6 GB per copy, and autograd keeps several:
logits, the softmax it saves, their gradients). Only h, W, y and T are saved for backward, which
recomputes each chunk's logits (the fused linear-cross-entropy recipe of Liger-Kernel / Apple's Cut
Cross-Entropy, but with a per-token upstream gradient, since the PPO loss of a token is not known until
every log-prob is) and applies, per chunk,

    dlogp_t/dz_t = onehot(y_t) - p_t                   dent_t/dz_t = -p_t * (z_t - sum_v p_t,v z_t,v)
    dL/da_t      = (g_logp,t dlogp_t/dz_t + g_ent,t dent_t/dz_t) / T_t     with a_t = h_t W^T + b
    dL/dh        = dL/da W,    dL/dW += dL/da^T h,    dL/db += sum_t dL/da_t

The result equals the full-logits computation (`er.train.losses.token_logprobs_entropy` on h W^T + b)
up to float rounding. Under autocast (bf16 on GPU) the matmuls run in the autocast dtype both ways,
like autocast's own backward; softmax, log-sum-exp and gradients wrt the logits are float32.

Default chunk: `chunk_size(V)` = as many positions as keep one float32 logits chunk within 2^22
elements (16 MiB; at V = 49,152 that is 85 positions), at least 16; forward and backward hold at most
three such blocks at a time.
"""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 22


def chunk_size(vocab: int, elements: int = CHUNK_ELEMENTS) -> int:
    """Positions per chunk so that one [chunk, vocab] float32 block stays within `elements`."""
    return max(16, elements // max(vocab, 1))


def _logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, temps: torch.Tensor | None):
    z = torch.nn.functional.linear(h, weight, bias).float()
    return z if temps is None else z / temps.unsqueeze(-1)


class _ChunkedHead(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, temps, chunk, want_entropy):
        n = hidden.shape[0]
        logp = torch.empty(n, dtype=torch.float32, device=hidden.device)
        ent = torch.empty(n, dtype=torch.float32, device=hidden.device) if want_entropy else None
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            z = _logits(hidden[s:e], weight, bias, None if temps is None else temps[s:e])
            logz = torch.logsumexp(z, dim=-1)
            logp[s:e] = z.gather(-1, labels[s:e].unsqueeze(-1)).squeeze(-1) - logz
            if want_entropy:
                ent[s:e] = logz - torch.softmax(z, dim=-1).mul_(z).sum(-1)
            del z
        device_type = hidden.device.type
        ctx.autocast = (torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type), device_type)
        ctx.chunk = chunk
        ctx.has_bias = bias is not None
        ctx.save_for_backward(hidden, weight, bias, labels, temps)
        ctx.set_materialize_grads(False)
        if want_entropy:
            return logp, ent
        return logp, torch.zeros(0, device=hidden.device)

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        hidden, weight, bias, labels, temps = ctx.saved_tensors
        enabled, dtype, device_type = ctx.autocast
        n = hidden.shape[0]
        need_h, need_w, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        if g_ent is not None and g_ent.numel() == 0:
            g_ent = None
        grad_h = torch.zeros_like(hidden) if need_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
        grad_b = torch.zeros_like(bias, dtype=torch.float32) if need_b and bias is not None else None
        if g_logp is None and g_ent is None:
            return grad_h, grad_w, grad_b, None, None, None, None
        for s in range(0, n, ctx.chunk):
            e = min(s + ctx.chunk, n)
            t = None if temps is None else temps[s:e]
            with torch.no_grad(), torch.autocast(device_type, dtype=dtype, enabled=enabled):
                h = hidden[s:e]
                z = _logits(h, weight, bias, t)
                p = torch.softmax(z, dim=-1)
                # in place, so that at most three [chunk x V] blocks exist at once
                if g_ent is not None:  # z becomes -g_ent * p * (z - E_p[z])
                    mean_z = (p * z).sum(-1, keepdim=True)
                    z.sub_(mean_z).mul_(p).mul_(-g_ent[s:e].unsqueeze(-1))
                if g_logp is not None:  # p becomes g_logp * (onehot(y) - p)
                    gl = g_logp[s:e].unsqueeze(-1)
                    p.mul_(-gl).scatter_add_(-1, labels[s:e].unsqueeze(-1), gl)
                    ga = p.add_(z) if g_ent is not None else p
                else:
                    ga = z
                del p, z
                if t is not None:
                    ga.div_(t.unsqueeze(-1))
                mm = ga.to(dtype) if enabled else ga.to(weight.dtype)
                if need_h:
                    grad_h[s:e] = (mm @ weight.to(mm.dtype)).to(hidden.dtype)
                if need_w:
                    grad_w += (mm.t() @ h.to(mm.dtype)).float()
                if grad_b is not None:
                    grad_b += ga.sum(0)
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        if grad_b is not None:
            grad_b = grad_b.to(bias.dtype)
        return grad_h, grad_w, grad_b, None, None, None, None


def head_logprobs_entropy(hidden: torch.Tensor, head: torch.nn.Module, labels: torch.Tensor,
                          temps: torch.Tensor | None = None, entropy: str = "detached",
                          chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(label) and entropy at each row of `hidden` [n, H] through the linear `head` (see module doc).

    `entropy`: "grad" (differentiable, for an entropy bonus), "detached" (metrics only) or "none",
    as in `er.train.losses.token_logprobs_entropy`, whose results these equal.
    """
    weight, bias = head.weight, getattr(head, "bias", None)
    chunk = chunk or chunk_size(int(weight.shape[0]))
    logp, ent = _ChunkedHead.apply(hidden, weight, bias, labels, temps, chunk, entropy != "none")
    if entropy == "none":
        return logp, None
    return logp, (ent if entropy == "grad" else ent.detach())
