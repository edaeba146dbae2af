"""SirLLM: Streaming Infinite Retentive LLM (Yao, Li, Zhao, arXiv 2405.12528; spec data-and-long-context.md §5,
from the official code Zoeyyao27/SirLLM @ 4c95578).

For multi-turn chats (`prompt` = a message list; a turn starts at every user message after the first):
the prompt is prefilled turn by turn into a KV cache of capacity S + R + E (start, recent, keep).

- Token "entropy" (as in the code: the surprisal of the realised token) H(x_t) = −log p(x_t | x_<t), read
  from the logits of the same forward; the first token of each processed turn gets the turn's maximum.
- At the start of every turn after the first: evict if seq_len + incoming > capacity, then multiply all
  stored scores by the decay η, so a token that survived τ turns carries η^τ · H.
- Eviction (`keep_indices`): the top (E − incoming) tokens by current score, plus the first S, then walk
  back from the newest adding tokens until capacity − incoming are kept; kept in original order.
- Positions are contiguous inside the cache (StreamingLLM's pos-shift). transformers caches keys already
  rotated, so after an eviction each kept key is re-rotated by (new index − old index) with the model's
  `inv_freq` (rotations compose), equal to caching pre-RoPE keys and rotating at 0..kv_len−1.

Defaults: start = 4, keep (E, token_entropy_size) = 1020, recent = 0, decay = 1.0 (the README's commands:
recent 0 and a 1024-token cache; DailyDialog used keep 508, decay 0.7). Generated tokens are decoded with
the cache as it stands after the last prompt turn (evictions happen only at turn starts, as in the
paper); a prompt of one turn is therefore never evicted. Departures: none in the rule; the record's
`prompt_token_ids` still holds the whole chat (what `er update` trains on), not the kept cache.
"""

from __future__ import annotations


def keep_indices(scores: list[float], start: int, recent: int, keep: int, incoming: int) -> list[int]:
    """Indices of the cached tokens SirLLM keeps before `incoming` new tokens arrive (all when they fit)."""
    n = len(scores)
    capacity = start + recent + keep
    if n + incoming <= capacity:
        return list(range(n))
    top = max(0, keep - incoming)
    by_score = sorted(range(n), key=lambda i: (-scores[i], i))[:top]
    kept = set(by_score) | set(range(min(start, n)))
    target = max(0, capacity - incoming)
    i = n - 1
    while len(kept) < target and i >= 0:
        kept.add(i)
        i -= 1
    return sorted(kept)


def surprisal(logits, ids):
    """H(x_t) = −log p(x_t | x_<t) for t >= 1 from logits (n, V) of ids (n); the first gets the maximum."""
    import torch

    n = ids.shape[0]
    if n < 2:
        return torch.zeros(n)
    lp = torch.log_softmax(logits[:-1].float(), -1).gather(-1, ids[1:, None]).squeeze(-1)
    rest = -lp
    return torch.cat([rest.max().view(1), rest]).cpu()


class SirLLM:
    """`--memory sirllm[:keep=E,decay=η,start=S,recent=R]`."""

    def __init__(self, keep: int = 1020, decay: float = 1.0, start: int = 4, recent: int = 0):
        if keep < 0 or start < 0 or recent < 0:
            raise ValueError("keep, start and recent must be >= 0")
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1], not {decay}")
        if keep + start + recent < 1:
            raise ValueError("the cache needs a capacity of at least 1 token")
        self.keep, self.decay, self.start, self.recent = keep, decay, start, recent

    @property
    def capacity(self) -> int:
        return self.start + self.recent + self.keep

    def describe(self) -> dict:
        return {"method": "sirllm", "keep": self.keep, "decay": self.decay, "start": self.start, "recent": self.recent}

    def begin(self, model, prompt_ids: list[int], turns: list[int] | None, device) -> "SirRun":
        run = SirRun(self, model, device)
        run.prefill(prompt_ids, turns or [len(prompt_ids)])
        return run


class SirRun:
    def __init__(self, cfg: SirLLM, model, device):
        import torch
        from transformers import DynamicCache

        rotary = getattr(getattr(model, "model", model), "rotary_emb", None)
        if getattr(rotary, "inv_freq", None) is None:
            from er.errors import UsageError

            raise UsageError("--memory sirllm needs a RoPE model (no rotary_emb.inv_freq found)")
        self.inv_freq = rotary.inv_freq
        self.cfg, self.model, self.device = cfg, model, device
        self.cache = DynamicCache(config=model.config)
        self.scores = torch.zeros(0)
        self.logits = None
        self.evictions: list[list[int]] = []  # kept indices at each eviction (for tests and inspection)

    @property
    def kv_len(self) -> int:
        return int(self.scores.shape[0])

    def evict(self, incoming: int) -> None:
        import torch

        from er.sampling.longctx.lambda_attention import rotate

        kept = keep_indices(self.scores.tolist(), self.cfg.start, self.cfg.recent, self.cfg.keep, incoming)
        if len(kept) == self.kv_len:
            return
        self.evictions.append(kept)
        idx = torch.tensor(kept, dtype=torch.long, device=self.device)
        shift = (torch.arange(len(kept), device=self.device) - idx).view(1, 1, -1)  # new − old position
        for layer in self.cache.layers:
            keys = layer.keys.index_select(2, idx)
            layer.keys = rotate(keys, shift.expand(keys.shape[0], keys.shape[1], -1), self.inv_freq)
            layer.values = layer.values.index_select(2, idx)
        self.scores = self.scores.index_select(0, idx.cpu())

    def prefill(self, prompt_ids: list[int], turns: list[int]) -> None:
        import torch

        at = 0
        for t, size in enumerate(turns):
            if size <= 0:
                continue
            seg = torch.tensor(prompt_ids[at:at + size], dtype=torch.long, device=self.device)
            at += size
            if t > 0:
                self.evict(size)
                self.scores = self.scores * self.cfg.decay
            pos = torch.arange(self.kv_len, self.kv_len + size, device=self.device)[None]
            out = self.model(input_ids=seg[None], position_ids=pos, past_key_values=self.cache, use_cache=True)
            self.cache = out.past_key_values
            self.scores = torch.cat([self.scores, surprisal(out.logits[0], seg)])
            self.logits = out.logits[:, -1, :].float()
