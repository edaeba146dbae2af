"""Squeezed Attention (`er sample --attention squeezed`): spec data-and-long-context.md §6a."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from er.sampling.base import Request
from er.sampling.longctx.fixed_context import place
from er.sampling.longctx.squeezed import (Document, Level, Squeezed, cluster_estimate, cluster_keys, coarse_level,
                                          grouped, select_keys, squeezed_attention_forward)

torch.set_num_threads(1)

DOC = ("Facts. The code of the red door is 4417. The code of the blue door is 9023. The code of the green door "
       "is 1185. The code of the white door is 7730. The code of the black door is 2264. ") * 3


def fresh(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()


def ids_of(n, seed=0):
    return torch.randint(10, 300, (1, n), generator=torch.Generator().manual_seed(seed))


def hand_keys():
    """One KV head, D = 4: keys 0-5 point along e0 (the relevant cluster), 6-11 along e1, 12-17 along e2
    (small jitter), then a window of 2 keys."""
    g = torch.Generator().manual_seed(0)
    dirs = torch.eye(4)
    keys = torch.cat([dirs[d].expand(6, 4) for d in (0, 1, 2)]) * 3 + 0.05 * torch.randn(18, 4, generator=g)
    window = torch.randn(2, 4, generator=g)
    return keys, window


def test_a_query_on_one_cluster_attends_to_that_clusters_keys_and_the_window_only():
    keys, window = hand_keys()
    level = cluster_keys(keys[None], 3)
    # K-means found the three directions
    groups = {tuple(sorted((level.labels[0] == c).nonzero().flatten().tolist())) for c in range(3)}
    assert groups == {tuple(range(0, 6)), tuple(range(6, 12)), tuple(range(12, 18))}
    all_keys = torch.cat([keys, window])[None, None]  # (1, Hkv, n, D)
    values = torch.randn(1, 1, 20, 4, generator=torch.Generator().manual_seed(1))
    doc = Document(n=20, window=2, keys=[all_keys], values=[values], fine=[level], threshold=0.01)
    q = torch.tensor([4.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 1, 4)  # (B, Hkv, g, Q, D)
    sel = select_keys(doc, 0, q, 0.5)
    assert sel[0, 0, 0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5, 18, 19]

    # the attention function computes exact attention over exactly those keys (+ the query's own token)
    class Module:
        layer_idx = 0

    class Run:
        def __init__(self):
            self.doc, self.seen = doc, None

        def note(self, layer, s):
            self.seen = s

    holder = type("Holder", (), {"capture": 0, "run": Run()})()
    Module.er_squeezed = holder
    own_k, own_v = torch.randn(1, 1, 1, 4), torch.randn(1, 1, 1, 4)
    out, _ = squeezed_attention_forward(Module, q.view(1, 1, 1, 4), own_k, own_v, None, 0.5)
    kept = [0, 1, 2, 3, 4, 5, 18, 19]
    k = torch.cat([all_keys[0, 0, kept], own_k[0, 0]])
    v = torch.cat([values[0, 0, kept], own_v[0, 0]])
    ref = torch.softmax(q.view(1, 4) @ k.T * 0.5, -1) @ v
    assert torch.allclose(out.view(1, 4), ref, atol=1e-6)


def test_estimated_weights_and_the_global_threshold_follow_the_code():
    keys, _ = hand_keys()
    level = cluster_keys(keys[None], 3)
    window_q = torch.randn(1, 1, 5, 4, generator=torch.Generator().manual_seed(2))  # (1, H, W, D)
    est = cluster_estimate(grouped(window_q, 1), level, 0.5)[0, 0, 0]  # (K,)
    # ŝ_k = exp(q·c_k s) / Σ_i N_i exp(q·c_i s), averaged over the window's queries
    c, n = level.centroids[0], level.counts[0]
    direct = [sum(math.exp(0.5 * float(qq @ c[k])) / sum(float(n[i]) * math.exp(0.5 * float(qq @ c[i]))
                                                            for i in range(3)) for qq in window_q[0, 0]) / 5
              for k in range(3)]
    assert est.tolist() == pytest.approx(direct, rel=1e-5)
    # centroids are the means of the raw keys of their clusters
    for k in range(3):
        assert torch.allclose(c[k], keys[level.labels[0] == k].mean(0), atol=1e-6)
    t = Squeezed.calibrate(("quantile", 0.8), [(window_q, 0.5)], [level])
    assert t == pytest.approx(float(np.quantile(est[level.labels[0]].numpy(), 0.8)), rel=1e-6)


def test_a_threshold_admitting_every_key_is_full_attention(tiny_model):
    full, model = fresh(tiny_model), fresh(tiny_model)
    sq = Squeezed(clusters=0.1, threshold="0", window=8).install(model)
    ids = ids_of(60)
    with torch.no_grad():
        run = sq.begin(model, ids, torch.ones_like(ids), torch.arange(60)[None],
                       Request(ids[0].tolist(), 1, 4, 0, context_len=48))
        ref = full(input_ids=ids, use_cache=True)
        assert (run.logits[0] - ref.logits[0, -1]).abs().max().item() < 1e-5
        nxt = torch.tensor([[17]])
        step = run.step(nxt, torch.tensor([[60]]))
        ref2 = full(input_ids=nxt, past_key_values=ref.past_key_values, position_ids=torch.tensor([[60]])).logits
        assert (step[0] - ref2[0, -1]).abs().max().item() < 1e-5
    assert run.row_info(0)["keys_fraction"] == 1.0


def test_a_stricter_threshold_attends_to_fewer_keys_and_changes_the_logits(tiny_model):
    model = fresh(tiny_model)
    sq = Squeezed(clusters=0.1, threshold="q0.9", window=8).install(model)
    ids = ids_of(120, seed=3)
    with torch.no_grad():
        run = sq.begin(model, ids, torch.ones_like(ids), torch.arange(120)[None],
                       Request(ids[0].tolist(), 1, 4, 0, context_len=100))
        ref = fresh(tiny_model)(input_ids=ids).logits[0, -1]
    info = run.row_info(0)
    assert info["clusters"] == 9 and info["context_tokens"] == 100
    assert 8 / 100 <= info["keys_fraction"] < 0.5
    for sel in run.masks.values():
        assert sel[..., -8:].all()  # the window is always attended
    assert (run.logits[0] - ref).abs().max().item() > 1e-3


def test_two_levels_keep_a_subset_of_the_passing_coarse_clusters_and_equal_one_level_when_coarse_admits_all(
        tiny_model):
    model = fresh(tiny_model)
    ids = ids_of(140, seed=5)
    one = Squeezed(clusters=0.2, threshold="q0.8", window=8).install(model)
    doc1 = one.document(model, ids[0, :120].tolist())
    q = torch.randn(2, 3, 4, 32, generator=torch.Generator().manual_seed(4))  # (B, H, Q, D)
    qg = grouped(q, 1)
    for layer in range(len(doc1.keys)):
        two = Squeezed(clusters=0.2, threshold="q0.8", window=8, levels=2, coarse=0.05, coarse_threshold="q0.6")
        two.install(model)
        doc2 = two.document(model, ids[0, :120].tolist())
        assert doc2.threshold == pytest.approx(doc1.threshold)  # the fine level is the same clustering
        assert torch.equal(doc2.fine[layer].labels, doc1.fine[layer].labels)
        scaling = model.model.layers[layer].self_attn.scaling
        sel2 = select_keys(doc2, layer, qg, scaling)[..., :112]
        coarse = doc2.coarse[layer]
        passing = per_key_pass(cluster_estimate(qg, coarse, scaling) > doc2.coarse_threshold, coarse)
        assert not (sel2 & ~passing).any()  # only keys of passing coarse clusters
        assert sel2.any()
        # with the coarse level admitting every key, the fine lookup is exactly levels=1's
        doc2.coarse_threshold = 0.0
        assert torch.equal(select_keys(doc2, layer, qg, scaling), select_keys(doc1, layer, qg, scaling))
        break  # one layer is enough (each document build clusters every layer)


def per_key_pass(passed, level: Level):
    from er.sampling.longctx.squeezed import per_key

    return per_key(passed, level.labels)


def test_coarse_level_groups_whole_fine_clusters():
    keys, _ = hand_keys()
    fine = cluster_keys(keys[None], 6)
    coarse, parent = coarse_level(fine, 3)
    assert torch.equal(coarse.labels[0], parent[0][fine.labels[0]])
    assert coarse.counts[0].sum().item() == 18


def test_context_is_placed_before_the_question_unless_the_prompt_holds_it():
    rec, ctx = place({"prompt": "Which code?", "context": "Doc."})
    assert rec["prompt"] == "Doc.\n\nWhich code?" and ctx == "Doc."
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "Q?"}]
    rec, _ = place({"prompt": msgs, "context": "Doc."})
    assert rec["prompt"][1]["content"] == "Doc.\n\nQ?" and msgs[1]["content"] == "Q?"
    same = {"prompt": "Document: Doc. Question: Q?", "context": "Doc."}
    assert place(same)[0] is same
    assert place({"prompt": "Q?"}) == ({"prompt": "Q?"}, None)


def questions():
    return [{"id": f"d{d}q{k}", "context": f"Document {d}. " + DOC, "prompt": f"Question {k}: the code of door {k}?"}
            for d in range(2) for k in range(3)]


def test_er_sample_builds_each_documents_clusters_once_and_records_the_keys_fraction(er_sample, tiny_model,
                                                                                     monkeypatch, tokenizer):
    builds = []
    real = Squeezed.build

    def counted(self, model, context_ids):
        builds.append(len(context_ids))
        return real(self, model, context_ids)

    monkeypatch.setattr(Squeezed, "build", counted)
    prompts = questions() + [{"id": "free", "prompt": "no context here"}]
    res = er_sample("-m", tiny_model, "--backend", "transformers", "-n", "2", "--max-tokens", "5", "--seed", "1",
                    "--attention", "squeezed:clusters=0.1,window=16", "--chunk", "2", prompts=prompts)
    assert res.code == 0, res.err
    assert len(builds) == 2  # six questions about two documents, in chunks of two prompts
    assert len(res.records) == 14
    by_doc = {}
    for r in res.records[:12]:
        lc = r["long_context"]
        assert lc["method"] == "squeezed" and 0 < lc["keys_fraction"] <= 1
        assert lc["context_tokens"] == builds[int(r["group_id"][1])]
        by_doc.setdefault(r["group_id"][:2], set()).add(tuple(r["prompt_token_ids"][:lc["context_tokens"]]))
        assert r["sampling"]["long_context"] == {"attention": {"method": "squeezed", "clusters": 0.1,
                                                               "threshold": "q0.9", "window": 16, "levels": 1}}
    assert all(len(v) == 1 for v in by_doc.values()) and len(by_doc) == 2
    assert res.records[-1]["long_context"] == {"method": "squeezed", "context_tokens": 0, "keys_fraction": None}
    # the record keeps its own fields: the question as given and the context
    assert res.records[0]["prompt"] == prompts[0]["prompt"] and res.records[0]["context"] == prompts[0]["context"]


def test_er_sample_with_everything_admitted_equals_full_attention(er_sample, tiny_model):
    prompts = questions()[:2]
    args = ("-m", tiny_model, "--backend", "transformers", "-n", "2", "--max-tokens", "6", "--seed", "2",
            "--logprobs")
    plain = er_sample(*args, prompts=prompts)
    sq = er_sample(*args, "--attention", "squeezed:threshold=0,window=4", prompts=prompts)
    assert plain.code == sq.code == 0, sq.err
    assert [r["token_ids"] for r in plain.records] == [r["token_ids"] for r in sq.records]
    for a, b in zip(plain.records, sq.records):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)
        assert b["long_context"]["keys_fraction"] == 1.0


@pytest.mark.parametrize("spec, word", [
    ("squeezed:clusters=2", "clusters"), ("squeezed:clusters=0", "clusters"), ("squeezed:threshold=x0.9", "threshold"),
    ("squeezed:threshold=q1.5", "threshold"), ("squeezed:levels=3", "levels"), ("squeezed:window=0", "window"),
    ("squeezed:width=3", "width"), ("squeezed:clusters=abc", "clusters"), ("bogus", "squeezed"),
])
def test_bad_squeezed_options_are_one_line_usage_errors(er_sample, tiny_model, spec, word):
    res = er_sample("-m", tiny_model, "--attention", spec, prompts=[{"id": "a", "prompt": "x"}])
    assert res.code == 2 and word in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err


def test_vllm_and_xl3m_refuse_squeezed(er_sample, tiny_model):
    res = er_sample("-m", tiny_model, "--backend", "vllm", "--attention", "squeezed", prompts=[{"id": "a", "prompt": "x"}])
    assert res.code == 2 and "transformers" in res.err and len(res.err.strip().splitlines()) == 1
    res = er_sample("-m", tiny_model, "--attention", "squeezed", "--context", "xl3m", prompts=[{"id": "a", "prompt": "x"}])
    assert res.code == 2 and "xl3m" in res.err
