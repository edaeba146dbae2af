"""transformers backend of `er sample` (CPU and GPU): batched decoding with a KV cache.

A decoding loop of our own rather than `model.generate`, because RL sampling needs what generate
cannot give together: a seed per sample (results independent of batching), a max_tokens per sample
(HBPO budgets), a per-sample logits processor state (stop scaling), and the behaviour log-prob of
every token. What it does:

- rows (prompt, sample k) are sorted by prompt length and cut into batches of `batch_size` rows, so
  prompts of similar length share a batch (less left padding); output keeps the input order;
- each distinct prompt of a batch is prefilled once (left padding, position ids from the attention
  mask) and its KV cache is repeated for its samples;
- finished rows are removed from the batch (and the cache) as they finish;
- long inputs (er.sampling.longctx): `--attention lambda` prefills in chunks and keeps a KV cache bounded
  to the Λ (LambdaRun); `--attention squeezed` answers the question part of each prompt over its fixed
  context's selected keys (SqueezedRun; batches then hold the samples of one prompt); `--memory sirllm` prefills a chat turn by turn with SirLLM's eviction (batches
  then hold the samples of one prompt); `--context xl3m` changes the prompt before it gets here;
- sampling by inverse CDF with one uniform per step drawn up front from the sample's own
  `torch.Generator(seed + k)`; top-p keeps the smallest prefix of the sorted distribution whose mass
  reaches p (at least one token) and renormalises.

Determinism (CPU, float32): the same seed gives the same completions for the same prompts and flags
(tested). Across different batchings the uniforms are identical, so samples differ only where the
batched matmuls round differently enough to move a uniform across a CDF boundary (rare; not a
guarantee). Greedy (temperature 0) takes the argmax.
"""

from __future__ import annotations

from er.sampling.base import Completion, Request, SamplingConfig


class HFBackend:
    name = "transformers"

    def __init__(self, model_path: str, *, batch_size: int = 64, device: str | None = None,
                 dtype: str | None = None, eos_ids: list[int] | None = None, pad_id: int | None = None,
                 longctx=None):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs = {}
        if dtype:
            kwargs["dtype"] = getattr(torch, dtype)
        elif self.device == "cpu":
            kwargs["dtype"] = torch.float32
        from er.train.lora import is_adapter_dir, load_merged

        if is_adapter_dir(model_path):  # base + LoRA adapter (peft), folded in float32 for plain decoding
            self.model = load_merged(model_path, kwargs.get("dtype")).to(self.device).eval()
        else:
            # safetensors only: a pickled checkpoint (pytorch_model.bin) is never unpickled
            self.model = AutoModelForCausalLM.from_pretrained(model_path, use_safetensors=True, **kwargs).to(self.device).eval()
        self.batch_size = max(1, batch_size)
        cfg_eos = self.model.generation_config.eos_token_id
        cfg_eos = [cfg_eos] if isinstance(cfg_eos, int) else list(cfg_eos or [])
        self.eos_ids = sorted(set(cfg_eos) | set(eos_ids or []))
        self.pad_id = pad_id if pad_id is not None else (self.eos_ids[0] if self.eos_ids else 0)
        self.max_context = getattr(self.model.config, "max_position_embeddings", None)
        self.attention = self.memory = None
        if longctx is not None:
            if longctx.attention is not None:
                self.attention = longctx.attention.install(self.model)
            self.memory = longctx.memory

    def close(self) -> None:
        self.model = None

    # ------------------------------------------------------------------------------------------
    def generate(self, requests: list[Request], cfg: SamplingConfig) -> list[list[Completion]]:
        rows = [(i, k) for i, r in enumerate(requests) for k in range(r.n)]
        rows.sort(key=lambda ik: len(requests[ik[0]].prompt_ids))  # stable: ties keep input order
        results: list[list[Completion | None]] = [[None] * r.n for r in requests]
        batches = [rows[s:s + self.batch_size] for s in range(0, len(rows), self.batch_size)]
        if self.memory is not None or getattr(self.attention, "per_prompt", False):  # one prompt (its samples) per batch
            batches = [[ik for ik in b if ik[0] == i] for b in batches for i in dict.fromkeys(i for i, _ in b)]
        for batch in batches:
            with self.torch.inference_mode():
                for (i, k), comp in zip(batch, self._batch(requests, batch, cfg)):
                    results[i][k] = comp
        return results  # type: ignore[return-value]

    def _batch(self, requests: list[Request], rows: list[tuple[int, int]], cfg: SamplingConfig) -> list[Completion]:
        torch = self.torch
        dev = self.device
        B = len(rows)
        # ---- prefill each distinct prompt once --------------------------------------------------
        uniq: dict[int, int] = {}
        for i, _ in rows:
            uniq.setdefault(i, len(uniq))
        prompts = [requests[i].prompt_ids for i in uniq]
        L = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), L), dtype=torch.long)
        for j, p in enumerate(prompts):
            ids[j, L - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[j, L - len(p):] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        run = None  # a long-context runner owning the cache (er.sampling.longctx)
        if self.attention is not None:
            run = self.attention.begin(self.model, ids, mask, pos, requests[rows[0][0]])
            cache, last = run.cache, run.logits
        elif self.memory is not None:
            run = self.memory.begin(self.model, prompts[0], requests[rows[0][0]].turns, dev)
            cache, last = run.cache, run.logits
            mask = torch.ones((1, run.kv_len), dtype=torch.long, device=dev)
            pos = torch.full((1, 1), run.kv_len - 1, dtype=torch.long, device=dev)
            run = None  # decoding is plain: contiguous positions after the kept cache
        else:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
            cache, last = out.past_key_values, out.logits[:, -1, :]
            del out
        expand = torch.tensor([uniq[i] for i, _ in rows], dtype=torch.long, device=dev)
        if len(prompts) != B or not bool((expand == torch.arange(B, device=dev)).all()):
            if run is None:
                cache.reorder_cache(expand)
            else:
                run.reorder(expand)
        logits = last.float().index_select(0, expand)
        mask = mask.index_select(0, expand)
        next_pos = pos[:, -1].index_select(0, expand) + 1

        # ---- per-row state ------------------------------------------------------------------
        reqs = [requests[i] for i, _ in rows]
        max_new = [r.max_tokens for r in reqs]
        T = max(max_new)
        temperature, top_p = cfg.temperature, cfg.top_p
        greedy = temperature <= 0
        uniforms = None
        if not greedy:
            uniforms = torch.empty((B, T), dtype=torch.float64)
            for b, ((_, k), r) in enumerate(zip(rows, reqs)):
                g = torch.Generator()
                if r.seed is None:
                    g.seed()
                else:
                    g.manual_seed(r.seed + k)
                uniforms[b] = torch.rand(T, generator=g, dtype=torch.float64)
            uniforms = uniforms.to(dev)
        stop_sets = [set(self.eos_ids) | set(r.stop_ids) for r in reqs]
        scale = [r.stop_scale for r in reqs]
        scaled = any(s is not None for s in scale)
        open_ = [s is not None and not s.closed for s in scale]

        tokens: list[list[int]] = [[] for _ in range(B)]
        lps: list[list[float]] = [[] for _ in range(B)]
        finish: list[str | None] = [None] * B
        active = list(range(B))  # positions in the original batch of the rows still running
        step = 0
        while True:
            raw = logits
            if scaled:
                logits = logits.clone()
                for a, b in enumerate(active):
                    s = scale[b]
                    if s is not None and open_[b]:
                        logits[a, s.token] += s.bias
            chosen, lp = self._sample(raw, logits, uniforms, active, step, greedy, temperature, top_p, cfg)
            chosen_l = chosen.tolist()
            lp_l = lp.tolist() if lp is not None else None
            keep: list[int] = []
            for a, b in enumerate(active):
                t = chosen_l[a]
                tokens[b].append(t)
                if lp_l is not None:
                    lps[b].append(lp_l[a])
                s = scale[b]
                if s is not None and open_[b] and s.think_end is not None and t == s.think_end:
                    open_[b] = False
                if t in stop_sets[b]:
                    finish[b] = "stop"
                elif len(tokens[b]) >= max_new[b]:
                    finish[b] = "length"
                else:
                    keep.append(a)
            if not keep:
                break
            step += 1
            if len(keep) != len(active):
                idx = torch.tensor(keep, dtype=torch.long, device=dev)
                if run is None:
                    cache.reorder_cache(idx)
                else:
                    run.reorder(idx)
                mask = mask.index_select(0, idx)
                next_pos = next_pos.index_select(0, idx)
                chosen = chosen.index_select(0, idx)
                if uniforms is not None:
                    uniforms = uniforms.index_select(0, idx)
                active = [active[a] for a in keep]
            if run is not None:
                logits = run.step(chosen.view(-1, 1), next_pos.view(-1, 1))
                next_pos = next_pos + 1
                continue
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            out = self.model(input_ids=chosen.view(-1, 1), attention_mask=mask, position_ids=next_pos.view(-1, 1),
                             past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
        info = getattr(run, "row_info", None)  # what a long-context run reports per sample (Squeezed)
        return [Completion(tokens[b], finish[b] or "length", lps[b] if cfg.logprobs else None,
                           info=info(b) if info else None) for b in range(B)]

    def _sample(self, raw, logits, uniforms, active, step, greedy, temperature, top_p, cfg):
        torch = self.torch
        want = cfg.logprobs
        if greedy:
            chosen = logits.argmax(-1)
            if not want:
                return chosen, None
            src = raw if cfg.logprobs_mode == "raw" else logits
            return chosen, torch.log_softmax(src, -1).gather(-1, chosen[:, None]).squeeze(-1)
        logp = torch.log_softmax(logits / temperature, -1)
        u = uniforms[:, step]
        if top_p < 1.0:
            sorted_lp, order = logp.sort(-1, descending=True)
            probs = sorted_lp.exp().double()
            csum = probs.cumsum(-1)
            drop = (csum - probs) >= top_p  # mass before this token already reaches p
            probs = probs.masked_fill(drop, 0.0)
            csum = probs.cumsum(-1)
            kept = csum[:, -1]
            pick = torch.searchsorted(csum, (u * kept)[:, None], right=True).clamp(max=probs.shape[-1] - 1)
            # never land on a dropped (zero-mass) token
            pick = torch.minimum(pick, (~drop).sum(-1, keepdim=True) - 1)
            chosen = order.gather(-1, pick).squeeze(-1)
            lp = sorted_lp.gather(-1, pick).squeeze(-1) - kept.log().to(sorted_lp.dtype)
        else:
            probs = logp.exp().double()
            csum = probs.cumsum(-1)
            pick = torch.searchsorted(csum, (u * csum[:, -1])[:, None], right=True).clamp(max=probs.shape[-1] - 1)
            chosen = pick.squeeze(-1)
            lp = logp.gather(-1, chosen[:, None]).squeeze(-1)
        if not want:
            return chosen, None
        if cfg.logprobs_mode == "raw":
            lp = torch.log_softmax(raw, -1).gather(-1, chosen[:, None]).squeeze(-1)
        return chosen, lp


def teacher_forced_logprobs(model, prompt_ids: list[int], completion_ids: list[int], temperature: float = 1.0) -> list[float]:
    """log p(completion_ids[t] | prompt, completion[:t]) by one forward pass (for tests and checks)."""
    import torch

    ids = torch.tensor([prompt_ids + completion_ids], dtype=torch.long, device=model.device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
    t = temperature if temperature > 0 else 1.0
    lp = torch.log_softmax(logits / t, -1)
    return lp.gather(-1, torch.tensor(completion_ids, device=lp.device)[:, None]).squeeze(-1).tolist()

