"""DLER update-selective merging (rl-length-methods §1 "Merging", worked toy numbers)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from er.errors import ErError, UsageError
from er.train.merge import merge


def _model(path, tensors):
    os.makedirs(path, exist_ok=True)
    save_file(tensors, os.path.join(path, "model.safetensors"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"model_type": "toy"}, f)
    return str(path)


@pytest.mark.parametrize("scope", ["tensor", "global"])
def test_toy_merge_reproduces_spec_numbers(tmp_path, scope):
    base = _model(tmp_path / "base", {"w": torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)})
    tuned = _model(tmp_path / "tuned", {"w": torch.tensor([1.1, 1.5, 3.02, 4.3], dtype=torch.float64)})
    summary = merge(base, tuned, str(tmp_path / "out"), top_frac=0.25, scale=0.7, scope=scope)
    out = load_file(str(tmp_path / "out" / "model.safetensors"))["w"]
    assert out.tolist() == pytest.approx([1.0, 1.65, 3.0, 4.0], abs=1e-12)
    assert summary["kept"] == 1 and summary["weights"] == 4
    assert os.path.isfile(tmp_path / "out" / "config.json")


def test_global_scope_thresholds_over_all_tensors_exactly(tmp_path):
    rng = np.random.default_rng(0)
    b = {f"t{i}": torch.tensor(rng.normal(size=(n,)), dtype=torch.float32) for i, n in enumerate([1000, 37, 5000])}
    t = {k: v + torch.tensor(rng.normal(scale=0.01 * (i + 1), size=v.shape), dtype=torch.float32)
         for i, (k, v) in enumerate(b.items())}
    t["count"] = torch.tensor([7], dtype=torch.int64)  # non-float tensors are copied from the tuned model
    b["count"] = torch.tensor([1], dtype=torch.int64)
    base, tuned = _model(tmp_path / "b", b), _model(tmp_path / "t", t)
    merge(base, tuned, str(tmp_path / "g"), top_frac=0.1, scale=0.5, scope="global")
    merge(base, tuned, str(tmp_path / "p"), top_frac=0.1, scale=0.5, scope="tensor")
    g, p = load_file(str(tmp_path / "g" / "model.safetensors")), load_file(str(tmp_path / "p" / "model.safetensors"))
    deltas = {k: (t[k].double() - b[k].double()) for k in ("t0", "t1", "t2")}
    allmag = torch.cat([d.abs() for d in deltas.values()])
    k = int(np.ceil(0.1 * allmag.numel()))
    thr = allmag.sort(descending=True).values[k - 1]
    kept_g = kept_p = 0
    for name, d in deltas.items():
        expect = (b[name].double() + 0.5 * torch.where(d.abs() >= thr, d, torch.zeros_like(d))).float()
        assert torch.equal(g[name], expect)
        kept_g += int((g[name] != b[name]).sum())
        kept_p += int((p[name] != b[name]).sum())
        # per tensor: ceil(10 %) of each tensor
        assert int((p[name] != b[name]).sum()) == int(np.ceil(0.1 * d.numel()))
    assert kept_g == k
    assert int(g["count"]) == 7
    # the largest deltas are in the noisiest tensor: global keeps more of t2 than per-tensor does
    assert int((g["t2"] != b["t2"]).sum()) > int((p["t2"] != b["t2"]).sum())


def test_merge_refuses_an_existing_output(tmp_path):
    base = _model(tmp_path / "base", {"w": torch.zeros(2)})
    (tmp_path / "out").mkdir()
    with pytest.raises(UsageError, match="exists"):
        merge(base, base, str(tmp_path / "out"))


def test_a_float_tensor_of_another_shape_is_refused_and_nothing_is_written(tmp_path):
    base = _model(tmp_path / "base", {"w": torch.zeros(2, 3, dtype=torch.bfloat16), "n": torch.zeros(2, dtype=torch.int32)})
    tuned = _model(tmp_path / "tuned", {"w": torch.zeros(3, 2, dtype=torch.bfloat16), "n": torch.zeros(5, dtype=torch.int32)})
    with pytest.raises(ErError, match=r"tensor w: shape \(2, 3\) in --base but \(3, 2\) in --tuned"):
        merge(base, tuned, str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["base", "tuned"]
    # integer tensors are copied from the tuned model, whatever their shape
    tuned_ok = _model(tmp_path / "ok", {"w": torch.ones(2, 3, dtype=torch.bfloat16), "n": torch.ones(5, dtype=torch.int32)})
    merge(base, tuned_ok, str(tmp_path / "out"), top_frac=1.0, scale=1.0)
    merged = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert merged["n"].tolist() == [1] * 5 and merged["w"].dtype == torch.bfloat16 and bool((merged["w"] == 1).all())


def test_merged_tiny_model_loads_with_transformers(tiny_model, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from tests.train.helpers import run_er

    tuned = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.01 * torch.randn_like(p))
    tuned.save_pretrained(tmp_path / "tuned")
    code, err = run_er(["merge", "--base", tiny_model, "--tuned", tmp_path / "tuned", "--out", tmp_path / "m",
                        "--scope", "global"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "m" / "er_merge.json").read_text())
    assert summary["kept_frac"] == pytest.approx(0.25, abs=1e-3)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    for (n, m), (_, b), (_, t) in zip(merged.named_parameters(), base.named_parameters(), tuned.named_parameters()):
        moved = m != b
        assert torch.allclose(m[moved], b[moved] + 0.7 * (t[moved] - b[moved]), atol=1e-6), n
