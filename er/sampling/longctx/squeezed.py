"""Squeezed Attention: a long fixed context queried many times, each query attending to the keys of the
clusters that pass a calibrated threshold (Hooper, Kim, Mohammadzadeh, Maheswaran, Zhao, Paik, Mahoney,
Keutzer, Gholami, arXiv 2411.09688, ACL 2025; spec data-and-long-context.md §6a), as a transformers attention
function (`er sample --attention squeezed[:clusters=0.05,threshold=q0.9,window=100,levels=1]`).

Setting: prompts that start with the same fixed context C of n tokens (a document) followed by a question.
Offline, once per document (per layer l and KV head h, keys k_j taken after RoPE, as the official code's
hook sees them):

1. the last `window` tokens of C are the observation window W (their keys are always attended); the other
   n_c = n − |W| keys are clustered: K-means on the L2-normalised keys, K = max(1, ⌊clusters · n_c⌋),
   K-means++ initialisation, max_iter 300, one run, seed 0 (scikit-learn `KMeans`);
2. each centroid c_k is the mean of the RAW keys of its cluster C_k, |C_k| its size;
3. the estimated attention weight of key j for a query q is the weight of its cluster,
       ŝ_j(q) = exp(q·c_a(j) · s) / Σ_k |C_k| exp(q·c_k · s),      s = the model's scaling (1/√d),
   and the global threshold T is the quantile `threshold` (q0.9: the 90th percentile) of the mean of ŝ_j
   over the queries of W, taken over all layers, query heads and clustered keys (`run_global_threshold`).

Online, per question and per generated token, per layer and query head: the mean of ŝ over the queries of
this forward (all the question's tokens at its prefill, the one new token at each decoding step) is
compared with T, and exact attention runs over the keys j with mean ŝ_j > T, the keys of W, and the
question's own and generated tokens (causal). `threshold=0.001` (a number rather than `qP`) is an absolute
threshold; `threshold=0` admits every key, which is full attention.

Hierarchical lookup (`levels=2`, paper §3.3 as the official code simulates it): the fine level is the one
above (K₂ = clusters · n_c); its centroids are clustered again into K₁ = max(1, ⌊coarse · n_c⌋) coarse
centroids (K-means on the normalised fine centroids, each coarse centroid the mean of its raw fine ones), a
key's coarse cluster being its fine cluster's. Online a key passes the coarse level iff its coarse cluster's
ŝ (sizes = keys per coarse cluster) exceeds T₁ (`coarse_threshold`, calibrated like T on the coarse level);
the fine estimate then counts in its denominator only the fine clusters whose coarse cluster passed, and a
key is attended iff it passes both levels. The selection is therefore a subset of the keys of the passing
coarse clusters, and with a coarse threshold admitting everything it equals `levels=1` (tested).

Budget baseline (`recent=F`, for fidelity studies): instead of clusters, every question attends to the
most recent ⌈F · n⌉ keys of the context only (plus its own tokens), the same-budget comparison of
bench/long_context.py.

Records: `long_context` {method, context_tokens, clusters (K per head; [K₁, K₂] for levels=2), threshold
(the values T, T₁ used), keys_fraction}: keys_fraction is, for that sample, the fraction of the context's
keys attended, averaged over layers, query heads and lookups (the question's prefill is one lookup, each
generated token one more); the window counts as attended. A prompt without a fixed context (no `context`
field and not from the L-Eval/LCFO presets) runs with full attention and records context_tokens 0,
keys_fraction null.

Reuse: a document's KV, clusters and thresholds are built once and kept, keyed by the context's token ids,
for the last `cache` documents (default 8; the presets send a document's questions together, so each is
built once); every question and sample of the document reuses them. Batches hold the samples of one
prompt.

The official code's choices kept: post-RoPE keys; normalised K-means with K-means++ and max_iter 300; raw
centroids; window = last 100 tokens of the fixed prompt, its keys always kept; quantile thresholds over all
layers/heads/keys; the online mean over the query tokens; hierarchical = coarse clustering of the fine
centroids, fine denominator restricted to passing coarse clusters, AND of the two masks.

Departures: (1) eager attention with a mask over the selected keys instead of the Triton sparse
FlashAttention and centroid-lookup kernels, so there is NO speed-up here: the method runs for its
fidelity, and on CPU it is slower than full attention; (2) scikit-learn KMeans on CPU instead of cuML on
GPU; (3) GQA models (the official code assumes one query head per KV head): keys are clustered per KV head
and each query head of a group selects its own keys; (4) ŝ is computed in log space (logsumexp), the same
value without the float32 overflow of exp; (5) the context's KV is computed once and reused across
questions (the official evaluation recomputes the fixed prefix with full attention for each question,
which gives the same keys); (6) any quantile is accepted (the code stores 0.5/0.7/0.8/0.9); (7) defaults:
threshold q0.9 where the code's pred.py uses 0.5 (its `--percentile`), coarse_threshold q0.7 as its
`--percentile_lower`, coarse = clusters/4 (the code has no default: RECONSTRUCTED); (8) the context is
tokenized on its own, then the rest of the prompt (so its ids are the same for every question).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

NAME = "er_squeezed"


def parse_threshold(text: str, what: str) -> tuple[str, float]:
    """`qP` (a quantile, 0 <= P <= 1) -> ("quantile", P); a plain number -> ("value", x)."""
    t = str(text).strip()
    try:
        if t.startswith("q"):
            p = float(t[1:])
            if not 0.0 <= p <= 1.0:
                raise ValueError
            return "quantile", p
        x = float(t)
        if x < 0 or not math.isfinite(x):
            raise ValueError
        return "value", x
    except ValueError:
        raise ValueError(f"{what} must be qP (a quantile, 0 <= P <= 1) or a number >= 0, not {text!r}") from None


# ---- offline: clustering and calibration --------------------------------------------------------------
@dataclass
class Level:
    """One clustering level of one layer: centroids (Hkv, K, D), sizes (Hkv, K) and each clustered key's
    cluster (Hkv, n_c)."""

    centroids: object
    counts: object
    labels: object


def kmeans_labels(points, k: int):
    """K-means on the L2-normalised rows of `points` (m, D): K-means++ init, max_iter 300, one run, seed 0."""
    import warnings

    import numpy as np
    import torch
    from sklearn.cluster import KMeans

    data = torch.nn.functional.normalize(points.float(), p=2, dim=-1).cpu().numpy().astype(np.float32)
    with warnings.catch_warnings():  # duplicate keys: fewer distinct clusters than K is fine (empty ones)
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=k, init="k-means++", max_iter=300, n_init=1, random_state=0).fit(data)
    return torch.as_tensor(km.labels_, dtype=torch.long)


def group_means(points, labels, k: int):
    """(centroids (K, D): mean of the raw points of each cluster, zero when empty; sizes (K,))."""
    import torch

    counts = torch.bincount(labels, minlength=k).to(points.dtype)
    sums = torch.zeros((k, points.shape[-1]), dtype=points.dtype).index_add_(0, labels, points)
    return sums / counts.clamp(min=1)[:, None], counts


def cluster_keys(keys, k: int) -> Level:
    """keys (Hkv, m, D) -> the Level of K clusters per head."""
    import torch

    cents, counts, labels = [], [], []
    for h in range(keys.shape[0]):
        lab = kmeans_labels(keys[h], k)
        c, n = group_means(keys[h].float(), lab, k)
        cents.append(c)
        counts.append(n)
        labels.append(lab)
    return Level(torch.stack(cents), torch.stack(counts), torch.stack(labels))


def coarse_level(fine: Level, k: int):
    """Cluster the fine centroids into K coarse ones: (coarse Level over the keys, parent (Hkv, K₂))."""
    import torch

    cents, counts, labels, parents = [], [], [], []
    for h in range(fine.centroids.shape[0]):
        parent = kmeans_labels(fine.centroids[h], k)
        c, _ = group_means(fine.centroids[h], parent, k)
        lab = parent[fine.labels[h]]
        cents.append(c)
        counts.append(torch.bincount(lab, minlength=k).float())
        labels.append(lab)
        parents.append(parent)
    return Level(torch.stack(cents), torch.stack(counts), torch.stack(labels)), torch.stack(parents)


def cluster_estimate(queries, level: Level, scaling: float, counts=None):
    """Mean over the queries of each cluster's estimated weight ŝ_k = exp(q·c_k s) / Σ_i N_i exp(q·c_i s).

    queries (B, Hkv, g, Q, D); counts N (broadcastable to (B, Hkv, g, K); default the level's sizes).
    Returns (B, Hkv, g, K)."""
    import torch

    cents = level.centroids.to(queries.dtype)[None, :, None]  # (1, Hkv, 1, K, D)
    logits = torch.matmul(queries, cents.transpose(-1, -2)) * scaling  # (B, Hkv, g, Q, K)
    n = level.counts[None, :, None] if counts is None else counts
    log_n = torch.log(n.to(logits.dtype)).unsqueeze(-2)  # log 0 = -inf: an empty cluster weighs nothing
    log_s = logits - torch.logsumexp(logits + log_n, dim=-1, keepdim=True)
    return log_s.exp().mean(dim=-2)


def per_key(cluster_values, labels):
    """Cluster values (B, Hkv, g, K) -> each key's value (B, Hkv, g, n_c) through labels (Hkv, n_c)."""
    B, Hkv, g, _ = cluster_values.shape
    return cluster_values.gather(-1, labels[None, :, None, :].expand(B, Hkv, g, labels.shape[-1]))


def quantile(values: list, q: float) -> float:
    import numpy as np

    return float(np.quantile(np.concatenate([v.flatten().cpu().numpy() for v in values]), q))


def grouped(query, n_kv: int):
    """(B, H, Q, D) -> (B, Hkv, g, Q, D): the query heads of each KV head together (GQA)."""
    B, H, Q, D = query.shape
    return query.reshape(B, n_kv, H // n_kv, Q, D)


@dataclass
class Document:
    """What one fixed context keeps: its KV per layer, the clusters and the thresholds."""

    n: int  # context tokens
    window: int  # the last `window` keys are always attended
    keys: list  # per layer (1, Hkv, n, D)
    values: list
    fine: list | None = None  # per layer Level (levels 1: the only level)
    coarse: list | None = None  # per layer Level (levels 2)
    parents: list | None = None  # per layer (Hkv, K₂): coarse cluster of each fine cluster
    threshold: float | None = None
    coarse_threshold: float | None = None
    recent: int | None = None  # the budget baseline: attend to the last `recent` keys only
    queries: list | None = None  # per layer (the window's queries (1, H, W, D), scaling): recalibration

    def describe(self) -> dict:
        out = {"method": "squeezed", "context_tokens": self.n}
        if self.recent is not None:
            out.update(baseline="recent", recent_keys=self.recent)
        elif self.fine is not None:
            k2 = int(self.fine[0].centroids.shape[1])
            if self.coarse is not None:
                out.update(clusters=[int(self.coarse[0].centroids.shape[1]), k2],
                           threshold=[self.coarse_threshold, self.threshold])
            else:
                out.update(clusters=k2, threshold=self.threshold)
        return out


class Squeezed:
    """`--attention squeezed[:clusters=0.05,threshold=q0.9,window=100,levels=1,coarse=C/4,coarse_threshold=q0.7,
    recent=F,cache=8]`."""

    per_prompt = True  # the transformers backend batches the samples of one prompt together

    def __init__(self, clusters: float = 0.05, threshold: str = "q0.9", window: int = 100, levels: int = 1,
                 coarse: float | None = None, coarse_threshold: str = "q0.7", recent: float | None = None,
                 cache: int = 8):
        if not 0 < clusters <= 1:
            raise ValueError(f"clusters must be in (0, 1] (a fraction of the context's keys), not {clusters}")
        if window < 1:
            raise ValueError(f"window must be >= 1 (its queries calibrate the threshold), not {window}")
        if levels not in (1, 2):
            raise ValueError(f"levels must be 1 or 2, not {levels}")
        if coarse is not None and not 0 < coarse <= clusters:
            raise ValueError(f"coarse must be in (0, clusters], not {coarse}")
        if recent is not None and not 0 <= recent <= 1:
            raise ValueError(f"recent must be in [0, 1], not {recent}")
        if cache < 1:
            raise ValueError(f"cache must be >= 1, not {cache}")
        self.threshold_spec = parse_threshold(threshold, "threshold")
        self.coarse_threshold_spec = parse_threshold(coarse_threshold, "coarse_threshold")
        self.clusters, self.threshold, self.window, self.levels = clusters, threshold, window, levels
        self.coarse = coarse if coarse is not None else clusters / 4
        self.coarse_threshold, self.recent, self.cache = coarse_threshold, recent, cache
        self.documents: OrderedDict = OrderedDict()
        self.holder = None

    def describe(self) -> dict:
        out = {"method": "squeezed", "clusters": self.clusters, "threshold": self.threshold, "window": self.window,
               "levels": self.levels}
        if self.levels == 2:
            out.update(coarse=self.coarse, coarse_threshold=self.coarse_threshold)
        if self.recent is not None:
            out = {"method": "squeezed", "baseline": "recent", "recent": self.recent}
        return out

    def install(self, model) -> "Squeezed":
        """Register the attention function, switch `model` to it; returns self."""
        from er.errors import UsageError

        register()
        attns = [m for m in model.modules() if hasattr(m, "num_key_value_groups") and hasattr(m, "scaling")]
        if not attns or not all(hasattr(m, "layer_idx") for m in attns):
            raise UsageError("--attention squeezed: this model's attention layers are not the standard ones")
        model.set_attn_implementation(NAME)
        self.holder = _Holder(len(attns))
        for m in attns:
            m.er_squeezed = self.holder
        return self

    # ---- documents ------------------------------------------------------------------------------
    def document(self, model, context_ids: list[int]) -> Document:
        key = tuple(context_ids)
        doc = self.documents.get(key)
        if doc is not None:
            self.documents.move_to_end(key)
            return doc
        doc = self.build(model, context_ids)
        self.documents[key] = doc
        while len(self.documents) > self.cache:
            self.documents.popitem(last=False)
        return doc

    def build(self, model, context_ids: list[int]) -> Document:
        """Prefill the context with full attention (capturing the window's queries), cluster, calibrate."""
        import torch

        with torch.no_grad():
            return self._build(model, context_ids)

    def _build(self, model, context_ids: list[int]) -> Document:
        import torch
        from transformers import DynamicCache

        n = len(context_ids)
        W = min(self.window, n)
        dev = model.device
        cache = DynamicCache(config=model.config)
        holder = self.holder
        holder.capture, holder.captured = W, {}
        try:
            model(input_ids=torch.tensor([context_ids], device=dev), position_ids=torch.arange(n, device=dev)[None],
                  past_key_values=cache, use_cache=True, logits_to_keep=1)
        finally:
            holder.capture = 0
        captured, holder.captured = holder.captured, {}
        keys = [layer.keys for layer in cache.layers]
        values = [layer.values for layer in cache.layers]
        queries = [captured[i] for i in range(len(keys))]  # (query (1, H, W, D), scaling) per layer
        doc = Document(n=n, window=W, keys=keys, values=values, queries=queries)
        if self.recent is not None:
            doc.recent = min(n, math.ceil(self.recent * n))
            return doc
        n_c = n - W
        if n_c < 1:  # the window is the whole context: every key is attended
            return doc
        k2 = max(1, int(self.clusters * n_c))
        doc.fine = [cluster_keys(k[0, :, :n_c].float().cpu(), k2) for k in keys]
        doc.threshold = self.calibrate(self.threshold_spec, queries, doc.fine)
        if self.levels == 2:
            k1 = min(k2, max(1, int(self.coarse * n_c)))
            pairs = [coarse_level(f, k1) for f in doc.fine]
            doc.coarse, doc.parents = [p[0] for p in pairs], [p[1] for p in pairs]
            doc.coarse_threshold = self.calibrate(self.coarse_threshold_spec, queries, doc.coarse)
        for lv in (doc.fine or []) + (doc.coarse or []):
            lv.centroids, lv.counts, lv.labels = lv.centroids.to(dev), lv.counts.to(dev), lv.labels.to(dev)
        if doc.parents is not None:
            doc.parents = [p.to(dev) for p in doc.parents]
        return doc

    @staticmethod
    def calibrate(spec: tuple[str, float], queries: list, levels: list) -> float:
        """T: the quantile of the window-mean ŝ_j over all layers, query heads and clustered keys."""
        kind, x = spec
        if kind == "value":
            return x
        estimates = []
        for (q, scaling), lv in zip(queries, levels):
            qg = grouped(q.float().cpu(), lv.centroids.shape[0])
            estimates.append(per_key(cluster_estimate(qg, lv, scaling), lv.labels))
        return quantile(estimates, x)

    def begin(self, model, ids, mask, pos, request=None) -> "SqueezedRun":
        n = int(getattr(request, "context_len", None) or 0)
        n = min(n, ids.shape[1] - 1)  # at least one question token gives the first logits
        doc = self.document(model, ids[0, :n].tolist()) if n > 0 else None
        run = SqueezedRun(self, model, doc)
        run.prefill(ids[:, n:], pos[:, n:])
        return run


# ---- online ----------------------------------------------------------------------------------------------
def select_keys(doc: Document, layer: int, qg, scaling: float):
    """The context keys attended (B, Hkv, g, n) for queries qg (B, Hkv, g, Q, D) at `layer`."""
    import torch

    B, Hkv, g = qg.shape[:3]
    n, W = doc.n, doc.window
    if doc.recent is not None:
        keep = torch.arange(n, device=qg.device) >= n - doc.recent
        return keep.expand(B, Hkv, g, n)
    if doc.fine is None:
        return torch.ones((B, Hkv, g, n), dtype=torch.bool, device=qg.device)
    fine = doc.fine[layer]
    if doc.coarse is None:
        passed = cluster_estimate(qg, fine, scaling) > doc.threshold
    else:
        coarse, parent = doc.coarse[layer], doc.parents[layer]
        pass1 = cluster_estimate(qg, coarse, scaling) > doc.coarse_threshold  # (B, Hkv, g, K₁)
        fine_pass1 = pass1.gather(-1, parent[None, :, None, :].expand(B, Hkv, g, parent.shape[-1]))
        counts = fine.counts[None, :, None] * fine_pass1  # fine clusters under a failed coarse one drop out
        pass2 = torch.nan_to_num(cluster_estimate(qg, fine, scaling, counts), nan=0.0) > doc.threshold
        passed = pass2 & fine_pass1
    keys = per_key(passed, fine.labels)
    return torch.cat([keys, keys.new_ones((B, Hkv, g, W))], dim=-1)


class _Holder:
    """Shared by the model's attention modules: the run in progress, the context-prefill capture."""

    def __init__(self, n_layers: int):
        self.n_layers = n_layers
        self.run = None
        self.capture = 0  # > 0: a context prefill; keep the last `capture` queries of every layer
        self.captured: dict = {}


class SqueezedRun:
    """One batch (the samples of one prompt): question prefill, then one token per row per step."""

    def __init__(self, cfg: Squeezed, model, doc: Document | None):
        from transformers import DynamicCache

        self.cfg, self.model, self.doc = cfg, model, doc
        self.cache = DynamicCache(config=model.config)  # the question's and generated tokens only
        self.logits = None
        self.frac_sum = None  # per row: sum over lookups of the fraction of context keys attended
        self.lookups = 0
        self.rows: list[int] | None = None  # original row of each current row (None: the prompt, before expansion)
        self.done: dict[int, float] = {}
        self.masks: dict = {}  # layer -> the last selection (B, H, n) (for inspection and tests)
        self._layer_sum = None

    def _forward(self, ids, qpos):
        holder = self.cfg.holder
        holder.run = self
        try:
            out = self.model(input_ids=ids, position_ids=qpos, past_key_values=self.cache, use_cache=True,
                             logits_to_keep=1)
        finally:
            holder.run = None
        if self.doc is not None and self._layer_sum is not None:
            frac = self._layer_sum / holder.n_layers
            self.frac_sum = frac if self.frac_sum is None else self.frac_sum + frac
            self.lookups += 1
            self._layer_sum = None
        return out.logits[:, -1, :].float()

    def prefill(self, ids, pos) -> None:
        self.logits = self._forward(ids, pos)

    def step(self, tokens, positions):
        return self._forward(tokens, positions)

    def reorder(self, idx) -> None:
        self.cache.reorder_cache(idx)
        picked = idx.tolist()
        if self.rows is None:  # the first reorder expands the prompt to its samples
            self.rows = list(range(len(picked)))
        else:  # rows left out have finished: keep their figure
            kept = set(picked)
            for i, r in enumerate(self.rows):
                if i not in kept:
                    self.done[r] = self._mean(i)
            self.rows = [self.rows[i] for i in picked]
        if self.frac_sum is not None:
            self.frac_sum = self.frac_sum.index_select(0, idx)

    def _mean(self, i: int) -> float:
        return float(self.frac_sum[i]) / max(self.lookups, 1) if self.frac_sum is not None else 0.0

    def row_info(self, b: int) -> dict:
        if self.doc is None:
            return {"method": "squeezed", "context_tokens": 0, "keys_fraction": None}
        info = self.doc.describe()
        info["keys_fraction"] = round(self._fraction(b), 6)
        return info

    def _fraction(self, b: int) -> float:
        if b in self.done:
            return self.done[b]
        return self._mean(0 if self.rows is None else self.rows.index(b))

    def note(self, layer: int, sel) -> None:
        """Called by the attention function with the selection of one layer (B, Hkv, g, n)."""
        B = sel.shape[0]
        self.masks[layer] = sel.reshape(B, -1, sel.shape[-1])
        f = sel.float().mean(dim=(1, 2, 3))
        self._layer_sum = f if self._layer_sum is None else self._layer_sum + f


def squeezed_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """AttentionInterface function: query (B, H, q, D), key/value (B, Hkv, t, D) of the question's cache.

    Context prefill (holder.capture): plain causal attention, keeping the last queries. Otherwise the
    document's context keys (selected) come first, then the cache's keys (causal)."""
    import torch

    holder = module.er_squeezed
    layer = module.layer_idx
    if holder.capture:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        holder.captured[layer] = (query[:, :, -holder.capture:, :].detach().clone(), scaling)
        return sdpa_attention_forward(module, query, key, value, None, dropout=0.0, scaling=scaling, is_causal=True)
    B, H, q, D = query.shape
    Hkv, t = key.shape[1], key.shape[2]
    qg = grouped(query, Hkv)  # (B, Hkv, g, q, D)
    new_scores = torch.matmul(qg, key.unsqueeze(2).transpose(-1, -2)) * scaling  # (B, Hkv, g, q, t)
    # causal among the question's own and generated tokens: query i is token t - q + i of the cache
    causal = torch.arange(t, device=query.device)[None, :] <= (t - q + torch.arange(q, device=query.device))[:, None]
    new_scores = new_scores.masked_fill(~causal, float("-inf"))
    run = holder.run
    doc = run.doc if run is not None else None
    if doc is None:
        weights = torch.softmax(new_scores, dim=-1, dtype=torch.float32).to(query.dtype)
        out = torch.matmul(weights, value.unsqueeze(2))
    else:
        ck, cv = doc.keys[layer].unsqueeze(2), doc.values[layer].unsqueeze(2)  # (1, Hkv, 1, n, D)
        sel = select_keys(doc, layer, qg, scaling)  # (B, Hkv, g, n)
        run.note(layer, sel)
        ctx_scores = torch.matmul(qg, ck.transpose(-1, -2)) * scaling  # (B, Hkv, g, q, n)
        ctx_scores = ctx_scores.masked_fill(~sel.unsqueeze(-2), float("-inf"))
        weights = torch.softmax(torch.cat([ctx_scores, new_scores], dim=-1), dim=-1, dtype=torch.float32)
        weights = weights.to(query.dtype)
        n = doc.n
        out = torch.matmul(weights[..., :n], cv) + torch.matmul(weights[..., n:], value.unsqueeze(2))
    out = out.reshape(B, H, q, -1).transpose(1, 2).contiguous()
    return out, None


def register() -> None:
    """Make NAME a transformers attention implementation (registering again only rebinds the same name)."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, squeezed_attention_forward)
