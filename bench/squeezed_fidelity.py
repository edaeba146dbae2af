"""Squeezed Attention's fidelity against its KV budget (`bench/long_context.py --squeezed [--quick]`).

Model: the real SmolLM2-135M-Instruct (`examples/real_model.py --path`), greedy, through er's own sampler
and transformers backend (`er sample --attention squeezed`'s code path: Sampler.prepare renders and
tokenizes each record with its fixed context, HFBackend.generate answers it).

Tasks:
- needles: documents of about 2,000 tokens of filler sentences holding four facts "The secret code of NAME
  is NNNN."; one question per fact ("What is the secret code of NAME? ..."), correct when the completion
  holds the code. Generated here (seeded).
- L-Eval fixtures (tests/data/leval_*.jsonl, documents of a few dozen tokens) through the `leval` preset,
  scored by `er eval --preset leval` (exam exact match, F1, ROUGE): their documents are far shorter than
  any real one, so this shows that the path runs on the preset, not a fidelity figure.

Variants, per document (its KV computed and its keys clustered once, then shared by every variant):
full attention (every context key; the same code path with every key admitted, which the tests show equals
plain attention), Squeezed Attention at three target budgets b (clusters 5% of the clustered keys, window
W = 32; the threshold quantile q = 1 − (b·n − W)/(n − W), the one that would keep b of the context on the
observation window; the budget it actually kept online is measured and printed), and for each a baseline
that attends to the most recent keys of the context, as many as the squeezed run kept on average (the
same budget). No speed is measured: the selection is a mask over eager attention, there is no kernel.
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import time

import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILLER = ["The grass is green and the sky is blue.", "The sun rises in the east and sets in the west.",
          "Rivers flow down from the hills to the sea.", "Birds sing in the trees every morning.",
          "The town market opens at nine and closes at six.", "Farmers plant wheat in the spring."]
NAMES = ["Anna", "Boris", "Clara", "David", "Elena", "Felix", "Grace", "Hugo"]
WINDOW = 32
CLUSTERS = 0.05
BUDGETS = (0.05, 0.10, 0.20)


def needle_rows(docs: int, sentences: int = 200, needles: int = 4) -> list[dict]:
    rows = []
    for d in range(docs):
        rng = random.Random(d)
        body = [rng.choice(FILLER) for _ in range(sentences)]
        facts = [(name, rng.randrange(1000, 10000)) for name in rng.sample(NAMES, needles)]
        for (name, code), at in zip(facts, sorted(rng.sample(range(sentences), needles))):
            body[at] = f"The secret code of {name} is {code}."
        text = " ".join(body)
        for name, code in facts:
            rows.append({"id": f"needle/{d}/{name}", "context": text, "answer": str(code),
                         "prompt": f"What is the secret code of {name}? Answer with the number only."})
    return rows


def leval_rows() -> list[dict]:
    from er.evaluation.longbench import leval_prompts, task_of

    rows = []
    data = os.path.join(ROOT, "tests", "data")
    for name in sorted(os.listdir(data)):
        if name.startswith("leval_") and name.endswith(".jsonl") and ".pred" not in name:
            with open(os.path.join(data, name), "rb") as fh:
                for line, raw in enumerate(fh, 1):
                    rows.extend(leval_prompts(orjson.loads(raw), line, task_of(name)))
    return rows


class Runner:
    """One model, one Squeezed setup; documents are built once, variants swapped into its cache."""

    def __init__(self, model: str):
        from transformers import AutoTokenizer

        from er.sampling.hf import HFBackend
        from er.sampling.longctx import parse_options
        from er.sampling.sampler import Policy, SampleOptions, Sampler

        lc = parse_options(f"squeezed:clusters={CLUSTERS},window={WINDOW},cache=64", None, None)
        self.backend = HFBackend(model, batch_size=1, longctx=lc)
        self.squeezed = lc.attention
        opt = SampleOptions(n=1, max_tokens=14, temperature=0.0, seed=0, longctx=lc)
        opt.max_context = self.backend.max_context
        self.sampler = Sampler(Policy(self.backend, model, None), AutoTokenizer.from_pretrained(model), opt)
        self.built: dict = {}  # context ids -> the Document as built

    def prepare(self, rows: list[dict]):
        prepared = [self.sampler.prepare(("bench", i + 1, dict(r)), i) for i, r in enumerate(rows)]
        for p in prepared:
            ctx = tuple(p.ids[0][:p.contexts[0]])
            if ctx not in self.built:
                self.built[ctx] = self.squeezed.document(self.backend.model, list(ctx))
        return prepared

    def answer(self, prepared, variant) -> list[dict]:
        """Records of every prepared prompt with each document replaced by variant(doc)."""
        for ctx, doc in self.built.items():
            self.squeezed.documents[ctx] = variant(doc)
        out = []
        for p in prepared:
            [group] = self.sampler.generate_chunk([p])
            out.extend(group)
        return out


def full(doc):
    return dataclasses.replace(doc, fine=None, coarse=None, recent=None)


def squeezed_at(budget: float):
    from er.sampling.longctx.squeezed import Squeezed

    def variant(doc):
        if doc.fine is None:
            return doc
        q = min(1.0, max(0.0, 1 - (budget * doc.n - doc.window) / (doc.n - doc.window)))
        return dataclasses.replace(doc, threshold=Squeezed.calibrate(("quantile", q), doc.queries, doc.fine))

    return variant


def recent_at(fraction: float):
    import math

    return lambda doc: dataclasses.replace(doc, fine=None, coarse=None, recent=min(doc.n, math.ceil(fraction * doc.n)))


def needle_accuracy(records: list[dict]) -> float:
    return sum(r["answer"] in r["completion"] for r in records) / len(records)


def keys_fraction(records: list[dict]) -> float:
    return sum(r["long_context"]["keys_fraction"] for r in records) / len(records)


def leval_scores(records: list[dict]) -> str:
    er = [sys.executable, "-m", "er.cli"]
    out = subprocess.run(er + ["eval", "--preset", "leval"], input=b"".join(orjson.dumps(r) + b"\n" for r in records),
                         capture_output=True, check=True, cwd=ROOT).stdout
    parts = []
    for rep in (orjson.loads(x) for x in out.splitlines()):
        score = rep.get("exact_match", rep.get("f1", rep.get("leval_score")))
        parts.append(f"{rep['task']} {score:.2f}")
    return ", ".join(parts)


def main(quick: bool = False) -> None:
    import torch

    sys.path.insert(0, ROOT)
    from bench._util import save, table

    torch.set_num_threads(2)
    model = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "real_model.py"), "--path"],
                           capture_output=True, text=True, check=True).stdout.strip()
    runner = Runner(model)
    budgets = BUDGETS[1:2] if quick else BUDGETS
    t0 = time.perf_counter()
    needles = runner.prepare(needle_rows(1 if quick else 3))
    leval = runner.prepare(leval_rows())
    build_s = time.perf_counter() - t0
    n_ctx = sorted({p.contexts[0] for p in needles})
    n_leval = sorted({p.contexts[0] for p in leval})
    rows = []
    base = runner.answer(needles, full)
    rows.append(("full attention", "1.000", f"{needle_accuracy(base):.3f}", leval_scores(runner.answer(leval, full))))
    for b in budgets:
        sq = runner.answer(needles, squeezed_at(b))
        kept = keys_fraction(sq)
        rows.append((f"squeezed, target {b:.0%}", f"{kept:.3f}", f"{needle_accuracy(sq):.3f}",
                     leval_scores(runner.answer(leval, squeezed_at(b)))))
        rec = runner.answer(needles, recent_at(kept))
        rows.append(("recent keys, same budget", f"{keys_fraction(rec):.3f}", f"{needle_accuracy(rec):.3f}",
                     leval_scores(runner.answer(leval, recent_at(kept)))))
    text = (f"SmolLM2-135M-Instruct, greedy, 14 tokens; needles: {len(needles)} questions over "
            f"{len(needles) // 4} documents of {n_ctx} context tokens; L-Eval fixtures: {len(leval)} questions "
            f"over documents of {n_leval} context tokens (too short for a budget to mean much); "
            f"clusters {CLUSTERS:.0%}, window {WINDOW}; documents built "
            f"in {build_s:.0f} s; no speed figure (mask over eager attention, no kernel)\n"
            + table(rows, ("variant", "keys fraction", "needle accuracy", "L-Eval fixtures (er eval)")))
    print(text)
    save("squeezed_quick" if quick else "squeezed", text)
