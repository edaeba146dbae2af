"""`er update` really learns: SFT memorises a mapping; a policy gradient raises a rewarded token's frequency."""

from __future__ import annotations

import random

import torch

from er.train.tokenize import encode_prompt
from tests.train.helpers import read_jsonl, run_er, write_jsonl


def test_sft_drives_the_loss_down_and_greedy_decoding_reproduces_the_targets(tiny_model, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rng = random.Random(0)
    keys = "sum add carry digit step total".split()
    mapping = {k: " ".join(str(rng.randint(0, 9)) for _ in range(3)) for k in keys}
    records = [{"prompt": f"map {k} ->", "completion": " " + v} for _ in range(40) for k, v in mapping.items()]
    rng.shuffle(records)  # 240 records, 10 steps of 24
    write_jsonl(tmp_path / "sft.jsonl", records)
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "ck", "--loss", "sft", "--lr", "4e-3",
                        "--batch-size", "24", "--epochs", "12", "--weight-decay", "0", tmp_path / "sft.jsonl",
                        "-o", tmp_path / "metrics.jsonl"], capsys)
    assert code == 0, err
    losses = [m["loss"] for m in read_jsonl(tmp_path / "metrics.jsonl")]
    assert len(losses) == 10
    assert losses[-1] < 0.2 < 2.0 < losses[0]
    tok = AutoTokenizer.from_pretrained(tmp_path / "ck" / "latest")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "ck" / "latest")
    for k, v in mapping.items():
        ids = torch.tensor([encode_prompt(tok, f"map {k} ->")])
        out = model.generate(ids, max_new_tokens=8, do_sample=False)
        assert tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True) == " " + v


def _sample(path, tok, n, seed, prompt="digits:"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(seed)
    ids = torch.tensor([encode_prompt(tok, prompt)] * n)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=6, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             output_scores=True, return_dict_in_generate=True)
    comp = out.sequences[:, ids.shape[1]:]
    lps = torch.stack([s.log_softmax(-1) for s in out.scores], 1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
    rows = []
    for c, lp in zip(comp.tolist(), lps.tolist()):
        if tok.eos_token_id in c:
            c = c[:c.index(tok.eos_token_id) + 1]
        rows.append((c, lp[:len(c)]))
    return rows


def test_policy_gradient_raises_the_frequency_of_the_rewarded_token(tiny_model, tmp_path, capsys):
    from transformers import AutoTokenizer

    rng = random.Random(0)
    # warm start: a policy that writes digits, so a single digit is neither certain nor hopeless
    digits = [{"prompt": "digits:", "completion": "".join(" " + str(rng.randint(0, 9)) for _ in range(6))}
              for _ in range(64)]
    write_jsonl(tmp_path / "digits.jsonl", digits)
    code, err = run_er(["update", "-m", tiny_model, "--out", tmp_path / "warm", "--loss", "sft", "--lr", "1e-2",
                        "--batch-size", "32", "--epochs", "8", "-q", tmp_path / "digits.jsonl",
                        "-o", tmp_path / "w.jsonl"], capsys)
    assert code == 0, err
    tok = AutoTokenizer.from_pretrained(tiny_model)
    target = tok("7", add_special_tokens=False)["input_ids"][-1]

    def frequency(path):
        rows = _sample(path, tok, 64, seed=1234)
        tokens = [t for c, _ in rows for t in c]
        return sum(t == target for t in tokens) / len(tokens)

    model = str(tmp_path / "warm" / "latest")
    before = frequency(model)
    for r in range(5):
        rows = [{"prompt": "digits:", "group_id": f"r{r}g{i // 8}", "group_size": 8, "sample_idx": i % 8,
                 "token_ids": c, "logprobs": lp, "reward": float(target in c),
                 "policy": {"model": model, "step": r}}
                for i, (c, lp) in enumerate(_sample(model, tok, 32, seed=r))]
        write_jsonl(tmp_path / f"r{r}.jsonl", rows)
        # rewards without advantages: er update computes GRPO advantages itself
        code, err = run_er(["update", "-m", model, "--out", tmp_path / "pg", "--lr", "1e-2", "--batch-size", "32",
                            *(["--resume"] if r else []), tmp_path / f"r{r}.jsonl", "-o", tmp_path / f"m{r}.jsonl"],
                           capsys)
        assert code == 0, err
        assert "computing them with --estimator grpo" in err
        model = str(tmp_path / "pg" / "latest")
    after = frequency(model)
    assert before < 0.15
    assert after > before + 0.3
