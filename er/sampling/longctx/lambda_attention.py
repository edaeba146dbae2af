"""LM-Infinite: Λ-shaped attention with a distance limit (Han, Wang, Peng, Xiong, Chen, Ji, Wang, NAACL 2024,
arXiv 2308.16137; spec data-and-long-context.md §3), as a transformers attention function.

Mask (query position i, key position j <= i, Δ = i − j): j is visible iff j < n_global (global branch)
or Δ < n_local (local branch). Distance limit: the position-encoding distance is Δ for local pairs and
Δ' = min(Δ, d) for global-branch pairs outside the local window (with the default n_local = d this is
exactly d, as in the official code).

How (spec §3.4, option B): `register()` adds the function "er_lambda" to `transformers.AttentionInterface`
and the model is loaded with `attn_implementation="er_lambda"` — no model code is forked. The function
receives queries and keys already rotated by RoPE at their absolute positions, so local scores are the
plain q·k. For the global columns it undoes the rotations (q_raw = R_{-i} q_rot, k_raw = R_{-j} k_rot,
with the model's `inv_freq`) and scores (R_{Δ'} q_raw)·k_raw, i.e. the score at distance Δ'. Extra cost
O(q · n_global · head_dim).

Positions travel in the attention mask: the backend passes `attention_mask={"full_attention": kpos}`
with `kpos` (B, kv_len) the absolute position of every key in the cache (−1 = padding or empty), which
transformers hands to the attention function unchanged; query positions are the `position_ids`.
Because the mask is Λ-shaped, the KV cache is bounded: after every forward only the first n_global
keys and the last n_local keys of each row are kept (`trim`), and prompts are prefilled in chunks of
`chunk` tokens, so memory is O(chunk · (n_global + n_local + chunk)) whatever the length.

Defaults (spec §3.3): n_global = 10 (the README's passkey/streaming setting; the paper's perplexity
commands use 100), n_local = d = L_pre = the model's `max_position_embeddings`. Not implemented: the
code's optional `triangle_offset` and `top_k_attention` extensions (both off by default there).
Needs RoPE (checked at load: the model must have `rotary_emb.inv_freq`).
"""

from __future__ import annotations

from er.errors import UsageError

NAME = "er_lambda"


class LambdaAttention:
    """`--attention lambda[:global=N,local=M,dist=D,chunk=C]` (None = the model's max_position_embeddings)."""

    def __init__(self, n_global: int = 10, n_local: int | None = None, dist: int | None = None, chunk: int = 512):
        if n_global < 0:
            raise ValueError(f"global must be >= 0, not {n_global}")
        if n_local is not None and n_local < 1:
            raise ValueError(f"local must be >= 1, not {n_local}")
        if dist is not None and dist < 1:
            raise ValueError(f"dist must be >= 1, not {dist}")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, not {chunk}")
        self.n_global, self.n_local, self.dist, self.chunk = n_global, n_local, dist, chunk

    def resolve(self, max_positions: int | None) -> "LambdaAttention":
        if (self.n_local is None or self.dist is None) and not max_positions:
            raise UsageError("--attention lambda: the model has no max_position_embeddings; give local= and dist=")
        return LambdaAttention(self.n_global, self.n_local or max_positions, self.dist or self.n_local or max_positions,
                               self.chunk)

    def describe(self) -> dict:
        return {"method": "lambda", "global": self.n_global, "local": self.n_local, "dist": self.dist}

    def install(self, model) -> "LambdaAttention":
        """Register the function, switch `model` to it and attach the settings; returns the resolved settings."""
        register()
        rotary = getattr(getattr(model, "model", model), "rotary_emb", None)
        inv_freq = getattr(rotary, "inv_freq", None)
        if inv_freq is None:
            raise UsageError("--attention lambda needs a RoPE model (no rotary_emb.inv_freq found)")
        cfg = self.resolve(getattr(model.config, "max_position_embeddings", None))
        self.n_local, self.dist = cfg.n_local, cfg.dist  # the records show the values in use
        model.set_attn_implementation(NAME)
        for module in model.modules():
            if hasattr(module, "num_key_value_groups") and hasattr(module, "scaling"):
                module.er_lambda = (cfg.n_global, cfg.n_local, cfg.dist, inv_freq)
        return cfg

    # ---- the cache --------------------------------------------------------------------------------
    def keep_mask(self, kpos):
        """Keys still needed by later queries: the first n_global and the last n_local positions of each row."""
        newest = kpos.max(dim=1, keepdim=True).values
        return (kpos >= 0) & ((kpos < self.n_global) | (kpos > newest - self.n_local))

    def trim(self, cache, kpos, slack: int = 0):
        """Drop cached keys outside the Λ (all layers); returns the new kpos. Rows stay left-padded (−1)."""
        import torch

        T = kpos.shape[1]
        if T <= self.n_global + self.n_local + slack:
            return kpos
        keep = self.keep_mask(kpos)
        W = int(keep.sum(1).max())
        if W == T:
            return kpos
        order = torch.argsort(keep.to(torch.int8), dim=1, stable=True)[:, T - W:]  # dropped first, then kept, in order
        new = kpos.gather(1, order).masked_fill(~keep.gather(1, order), -1)
        for layer in cache.layers:
            B, H, _, D = layer.keys.shape
            idx = order[:, None, :, None].expand(B, H, W, D)
            layer.keys = layer.keys.gather(2, idx)
            layer.values = layer.values.gather(2, idx.expand(B, H, W, layer.values.shape[-1]))
        return new

    def begin(self, model, ids, mask, pos, request=None) -> "LambdaRun":
        run = LambdaRun(self, model)
        run.prefill(ids, mask, pos)
        return run


class LambdaRun:
    """One batch: chunked prefill, then one token per row per step, the cache trimmed to the Λ."""

    def __init__(self, cfg: LambdaAttention, model):
        from transformers import DynamicCache

        self.cfg, self.model = cfg, model
        self.cache = DynamicCache(config=model.config)
        self.kpos = None
        self.logits = None

    def _forward(self, ids, qpos, logits_to_keep=1):
        import torch

        kp = qpos if self.kpos is None else torch.cat([self.kpos, qpos], dim=1)
        out = self.model(input_ids=ids, attention_mask={"full_attention": kp}, position_ids=qpos.clamp(min=0),
                         past_key_values=self.cache, use_cache=True, logits_to_keep=logits_to_keep)
        self.kpos = self.cfg.trim(self.cache, kp, slack=self.cfg.chunk)
        return out.logits

    def prefill(self, ids, mask, pos) -> None:
        kpos = pos.masked_fill(mask == 0, -1)
        C = self.cfg.chunk
        for s in range(0, ids.shape[1], C):
            logits = self._forward(ids[:, s:s + C], kpos[:, s:s + C])
        self.logits = logits[:, -1, :].float()

    def reorder(self, idx) -> None:
        self.cache.reorder_cache(idx)
        self.kpos = self.kpos.index_select(0, idx)

    def step(self, tokens, positions):
        """tokens, positions: (B, 1) -> next-token logits (B, V)."""
        return self._forward(tokens, positions)[:, -1, :].float()

    @property
    def kv_len(self) -> int:
        return int(self.kpos.shape[1]) if self.kpos is not None else 0


# ---- the attention function ---------------------------------------------------------------------------
def rotate(x, positions, inv_freq):
    """RoPE rotation of x (..., D) by `positions` (broadcastable to x[..., 0]); rotations compose additively."""
    import torch

    freqs = positions[..., None].to(torch.float32) * inv_freq.to(x.device, torch.float32)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    half = x.shape[-1] // 2
    rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rot * sin


def lambda_pattern(qpos, kpos, n_global: int, n_local: int):
    """(band, glob): which (query, key) pairs are visible through the local band and through the global
    branch (outside the band). Shapes (B, q, k) from qpos (B, q) and kpos (B, k)."""
    delta = qpos[:, :, None] - kpos[:, None, :]
    valid = (kpos >= 0)[:, None, :] & (delta >= 0) & (qpos >= 0)[:, :, None]
    band = valid & (delta < n_local)
    glob = valid & (kpos < n_global)[:, None, :] & ~band
    return band, glob


def encoding_distance(qpos, kpos, band, glob, dist: int):
    """The encoding distance Δ' of each visible pair of `lambda_pattern` (−1 = masked): Δ in the band,
    min(Δ, d) through the global branch. The attention applies it by rotation; this spells it out."""
    import torch

    delta = qpos[:, :, None] - kpos[:, None, :]
    return torch.where(band, delta, torch.where(glob, delta.clamp(max=dist), torch.full_like(delta, -1)))


def lambda_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """AttentionInterface function: query (B, H, q, D), key/value (B, Hkv, k, D) rotated at their positions."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv

    n_global, n_local, dist, inv_freq = module.er_lambda
    B, H, q, D = query.shape
    k = key.shape[2]
    qpos = kwargs.get("position_ids")
    if qpos is None:
        raise ValueError("er_lambda attention needs position_ids")
    qpos = qpos.to(query.device).expand(B, q)
    if attention_mask is not None and attention_mask.dim() == 2 and not attention_mask.is_floating_point():
        kpos = attention_mask.to(query.device)  # our positions, passed by LambdaRun
    else:  # a plain forward (no cache trimming): keys sit at 0..k-1 after the cache
        kpos = torch.arange(k, device=query.device).expand(B, k)
    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    band, glob = lambda_pattern(qpos, kpos, n_global, n_local)
    if n_global and bool(glob.any()):
        g = torch.arange(n_global, device=query.device)
        match = kpos[:, None, :] == g[None, :, None]  # (B, G, k)
        present = match.any(-1)
        gidx = match.int().argmax(-1)  # column of global key g in each row
        kg = key.gather(2, gidx[:, None, :, None].expand(B, H, n_global, D))
        k_raw = rotate(kg, -g.view(1, 1, n_global), inv_freq)  # (B, H, G, D) at position 0
        q_raw = rotate(query, -qpos[:, None, :], inv_freq)  # (B, H, q, D) at position 0
        capped = (qpos[:, :, None] - g[None, None, :]).clamp(min=0, max=dist)  # (B, q, G)
        q_at = rotate(q_raw[:, :, :, None, :], capped[:, None, :, :], inv_freq)  # (B, H, q, G, D)
        gscore = (q_at * k_raw[:, :, None, :, :]).sum(-1) * scaling  # (B, H, q, G)
        sel = glob.gather(2, gidx[:, None, :].expand(B, q, n_global)) & present[:, None, :]
        idx = gidx[:, None, None, :].expand(B, H, q, n_global)
        current = scores.gather(3, idx)
        scores = scores.scatter(3, idx, torch.where(sel[:, None], gscore.to(scores.dtype), current))
    visible = band | glob
    scores = scores.masked_fill(~visible[:, None], float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32)
    weights = torch.where(visible.any(-1)[:, None, :, None], weights, torch.zeros_like(weights)).to(query.dtype)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights


_registered = False


def register() -> None:
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(NAME, lambda_attention_forward)
        _registered = True
