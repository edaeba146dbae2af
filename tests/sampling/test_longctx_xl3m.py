"""XL3M key-context selection (`er sample --context xl3m`, reconstructed): spec data-and-long-context.md §4."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from er.sampling.longctx.xl3m import XL3M, entropy_certainty, model_question_logits, nll_certainty, select, split

torch.set_num_threads(1)


def test_certainty_is_the_spec_worked_example():
    a = torch.log(torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1]]))
    b = torch.log(torch.tensor([[0.4, 0.3, 0.3], [0.34, 0.33, 0.33]]))
    assert entropy_certainty(a) == pytest.approx(0.517, abs=5e-4)
    assert entropy_certainty(b) == pytest.approx(1.094, abs=5e-4)
    # the nll variant scores the realised question tokens: (−ln 0.9 − ln 0.1) / 2
    assert nll_certainty(a, [0, 1]) == pytest.approx((-math.log(0.9) - math.log(0.1)) / 2, abs=1e-6)

    def logits(seqs, lq):
        return [a if s[0] == 1 else b for s in seqs]

    ids, info = select([1, 2, 7, 8, 5, 6], logits, segment=2, question=2, keep=1)  # A = [1, 2], B = [7, 8]
    assert ids == [1, 2, 5, 6]  # A ⊕ Q
    assert info["selected"] == [0] and info["certainty"][0] < info["certainty"][1]


def bigram_logits(vocab: int):
    """A real (if simple) language model: add-0.01 bigram counts of the sequence seen so far.

    p(x_t | x_<t) from the bigrams of x_<t: a segment that contains the question's bigrams makes the
    model certain on the question, one that does not leaves it near uniform.
    """

    def run(seqs, lq):
        out = []
        for s in seqs:
            rows = []
            for t in range(len(s) - lq - 1, len(s) - 1):
                counts = Counter(b for a, b in zip(s[:t], s[1:t + 1]) if a == s[t])
                p = torch.full((vocab,), 0.01)
                for tok, c in counts.items():
                    p[tok] += c
                rows.append(torch.log(p / p.sum()))
            out.append(torch.stack(rows))
        return out

    return run


def test_the_segment_holding_the_fact_is_selected_and_segments_keep_their_order():
    g = torch.Generator().manual_seed(0)
    V = 50
    segs = [[int(x) for x in torch.randint(20, V, (16,), generator=g)] for _ in range(5)]
    fact = [3, 4, 5, 6, 7, 8]  # "the key is 42" as tokens
    holder = 2
    segs[holder][5:11] = fact  # the fact sits inside segment 2
    segs[4][0:3] = [9, 10, 11]  # another, unrelated rare sequence
    q = [3, 4, 5, 6, 7]
    ids = [t for s in segs for t in s] + q
    assert split(ids, 16, 5) == (segs, q)
    segments = segs
    new, info = select(ids, bigram_logits(V), segment=16, question=5, keep=1)
    assert info["selected"] == [holder]
    assert new == segments[holder] + q
    # keep=3: the fact's segment plus the next most certain, always in original order
    new3, info3 = select(ids, bigram_logits(V), segment=16, question=5, keep=3)
    assert holder in info3["selected"] and info3["selected"] == sorted(info3["selected"])
    assert new3 == [t for k in info3["selected"] for t in segments[k]] + q
    # entropy and nll agree on the holder here
    assert select(ids, bigram_logits(V), segment=16, question=5, keep=1, score="nll")[1]["selected"] == [holder]


def test_short_prompts_are_left_unchanged():
    ids = list(range(10))
    new, info = select(ids, lambda s, lq: pytest.fail("no scoring needed"), segment=4, question=2, keep=2)
    assert new == ids and info["selected"] == [0, 1]


def test_default_sizes_follow_the_window_and_generation_budget():
    # L = 2048, l_q = 32, l_gen = 256: l_s = 512, K = floor((2048 - 32 - 256) / 512) = 3
    assert XL3M().sizes(2048, 256) == (512, 3)
    assert XL3M(segment=100, keep=5).sizes(2048, 256) == (100, 5)
    assert XL3M().sizes(2048, 4000) == (512, 1)  # at least one segment


def test_model_question_logits_read_the_positions_that_predict_the_question(hf_model):
    seqs = [[11, 12, 13, 14, 20, 21], [15, 16, 20, 21]]
    got = list(model_question_logits(hf_model, pad_id=0, batch=2)(seqs, 2))
    assert len(got) == len(seqs)
    for s, x in zip(seqs, got):
        with torch.no_grad():
            full = hf_model(input_ids=torch.tensor([s])).logits[0]
        assert torch.allclose(x, full[len(s) - 3:len(s) - 1], atol=1e-5)


def test_er_sample_generates_from_the_key_context(er_sample, tiny_model, tokenizer):
    text = " ".join(str(i % 10) for i in range(120))
    res = er_sample("-m", tiny_model, "--backend", "transformers", "--max-tokens", "3", "--temperature", "0",
                    "--context", "xl3m:segment=16,question=4,keep=2", "--no-chat", prompts=[{"id": "a", "prompt": text}])
    assert res.code == 0, res.err
    [r] = res.records
    lc = r["long_context"]
    enc = tokenizer.encode(text)
    assert lc["input_tokens"] == len(enc) and lc["segments"] == math.ceil((len(enc) - 4) / 16)
    assert len(lc["selected"]) == 2 and len(lc["certainty"]) == lc["segments"]
    segments, q = split(enc, 16, 4)
    assert r["prompt_token_ids"] == [t for k in lc["selected"] for t in segments[k]] + q
    assert r["prompt_tokens"] == len(r["prompt_token_ids"])
