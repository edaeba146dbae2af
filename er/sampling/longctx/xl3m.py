"""XL3M: segment-wise inference with certainty-based key-context selection (Wang, Bai, Zhang, Zhou, Zhao, Zhang,
Wang, Chen, Xu, Sun, arXiv 2405.17755; spec data-and-long-context.md §4). No official code exists: apart
from the abstract's outline this is RECONSTRUCTED (spec §4.2), and every default is our proposal.

Context C (the prompt's token ids, N tokens); training window L = the model's max_position_embeddings.

1. Question Q = the last l_q tokens of C (`question`, default 32). [reconstructed: the abstract says "a few
   tokens from the end"; for chat prompts these include the template's assistant header]
2. Segments: C' = C[:N − l_q] cut into m = ⌈(N − l_q)/l_s⌉ consecutive segments of l_s tokens (`segment`,
   default L/4, kept so that l_s + l_q <= L).
3. Certainty of segment k: run the model on X_k = S_k ⊕ Q and read the next-token distributions
   p_{k,t} = p(· | S_k, Q_<t) at the l_q question positions;
     score=entropy (default): H_k = (1/l_q) Σ_t −Σ_v p_{k,t}(v) log p_{k,t}(v)   (the summaries' reading)
     score=nll:               H_k = −(1/l_q) Σ_t log p_{k,t}(Q_t)                 (the spec's variant)
   Lower H_k = more certain = more relevant.
4. Selection: the K segments of lowest H_k (ties: the earlier segment), K = `keep`, default
   ⌊(L − l_q − l_gen)/l_s⌋ (at least 1) with l_gen = the request's max_tokens. [reconstructed: top-K, not a
   threshold]
5. Key context = the selected segments in their ORIGINAL order ⊕ Q; generation then runs on it as on any
   prompt (it fits the window). A prompt with m <= K segments is left unchanged.

The sample record gets `long_context` {method, input_tokens, segments, selected (0-based), certainty
(H_k per segment)}, and `prompt_tokens` / `prompt_token_ids` describe the key context actually used.
Cost: m forward passes of <= l_s + l_q tokens (batched `batch` at a time) plus the generation.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from er.errors import UsageError


def entropy_certainty(logits) -> float:
    """Mean entropy (nats) of the next-token distributions in logits (l_q, V)."""
    import torch

    lp = torch.log_softmax(logits.float(), -1)
    return float(-(lp.exp() * lp).sum(-1).mean())


def nll_certainty(logits, question: Sequence[int]) -> float:
    """Mean negative log-likelihood of the question tokens under logits (l_q, V)."""
    import torch

    lp = torch.log_softmax(logits.float(), -1)
    q = torch.tensor(list(question), dtype=torch.long, device=lp.device)
    return float(-lp.gather(-1, q[:, None]).mean())


def split(ids: Sequence[int], segment: int, question: int) -> tuple[list[list[int]], list[int]]:
    """(segments of C[:N−l_q], question = the last l_q tokens)."""
    q = list(ids[len(ids) - question:]) if question > 0 else []
    body = list(ids[:len(ids) - len(q)])
    return [body[i:i + segment] for i in range(0, len(body), segment)], q


def select(ids: Sequence[int], question_logits: Callable[[list[list[int]], int], list], *, segment: int,
           question: int, keep: int, score: str = "entropy") -> tuple[list[int], dict]:
    """The key context of `ids` and what was decided.

    `question_logits(sequences, l_q)` returns (or yields), for each sequence S_k ⊕ Q, the logits (l_q, V) that
    predict the question tokens (the positions len(S_k)−1 .. len(S_k)+l_q−2).
    """
    segments, q = split(ids, segment, question)
    info = {"method": "xl3m", "input_tokens": len(ids), "segments": len(segments), "question_tokens": len(q)}
    if len(segments) <= keep or not q:
        info.update(selected=list(range(len(segments))), certainty=None)
        return list(ids), info
    logits = question_logits([s + q for s in segments], len(q))  # may be lazy: one segment's logits at a time
    if score == "entropy":
        h = [entropy_certainty(x) for x in logits]
    else:
        h = [nll_certainty(x, q) for x in logits]
    chosen = sorted(sorted(range(len(segments)), key=lambda k: (h[k], k))[:keep])
    info.update(selected=chosen, certainty=[round(x, 6) for x in h])
    return [t for k in chosen for t in segments[k]] + q, info


def model_question_logits(model, pad_id: int, batch: int = 8):
    """question_logits for a causal LM: right-padded batches, logits at the question-predicting positions.

    Yields one (l_q, V) tensor per sequence, computed `batch` sequences at a time. The model's own forward
    computes logits only at the positions some sequence of the batch needs (`logits_to_keep`; any final
    softcapping or scaling still applies), and a segment's logits are dropped once its certainty is read,
    so memory stays near batch x 2 l_q x V however long the context.
    """

    def run(sequences: list[list[int]], lq: int):
        import torch

        dev = model.device
        for s in range(0, len(sequences), batch):
            chunk = sequences[s:s + batch]
            L = max(len(x) for x in chunk)
            ids = torch.full((len(chunk), L), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), L), dtype=torch.long)
            for j, x in enumerate(chunk):
                ids[j, :len(x)] = torch.tensor(x)
                mask[j, :len(x)] = 1
            # the last position predicts nothing we score: positions len−1−lq .. len−2 predict Q
            cols = [range(len(x) - 1 - lq, len(x) - 1) for x in chunk]
            keep = sorted({c for row in cols for c in row})
            at = {c: i for i, c in enumerate(keep)}
            with torch.inference_mode():
                logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False,
                               logits_to_keep=torch.tensor(keep, device=dev)).logits
                picked = logits[torch.arange(len(chunk))[:, None], torch.tensor([[at[c] for c in row] for row in cols])]
            yield from picked.float().cpu()

    return run


class XL3M:
    """`--context xl3m[:segment=S,question=Q,keep=K,score=entropy|nll,batch=B]` (reconstructed)."""

    def __init__(self, segment: int | None = None, question: int = 32, keep: int | None = None,
                 score: str = "entropy", batch: int = 8):
        if segment is not None and segment < 1:
            raise ValueError(f"segment must be >= 1, not {segment}")
        if question < 1:
            raise ValueError(f"question must be >= 1, not {question}")
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be >= 1, not {keep}")
        if score not in ("entropy", "nll"):
            raise ValueError(f"score must be entropy or nll, not {score!r}")
        self.segment, self.question, self.keep, self.score, self.batch = segment, question, keep, score, max(1, batch)

    def describe(self) -> dict:
        return {"method": "xl3m", "segment": self.segment, "question": self.question, "keep": self.keep,
                "score": self.score}

    def sizes(self, window: int | None, max_tokens: int) -> tuple[int, int]:
        """(l_s, K) for a model window L and a generation budget."""
        if self.segment is None and not window:
            raise UsageError("--context xl3m: the model has no max_position_embeddings; give segment= and keep=")
        seg = self.segment or max(1, window // 4)
        if window and seg + self.question > window:
            raise UsageError(f"--context xl3m: segment + question = {seg + self.question} exceeds the window {window}")
        keep = self.keep or max(1, math.floor(((window or seg * 4) - self.question - max_tokens) / seg))
        return seg, keep

    def apply(self, model, pad_id: int, ids: list[int], window: int | None, max_tokens: int) -> tuple[list[int], dict]:
        seg, keep = self.sizes(window, max_tokens)
        return select(ids, model_question_logits(model, pad_id, self.batch), segment=seg, question=self.question,
                      keep=keep, score=self.score)
