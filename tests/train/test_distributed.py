"""`er update` under torchrun: 2 CPU ranks (gloo) reach the same weights as 1 rank on the same data."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from er.train.checkpoint import load_state
from tests.train.helpers import read_jsonl, write_jsonl

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")


def test_two_gloo_ranks_match_one_process_with_ddp_and_fsdp2(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    rows = []
    for g in range(6):
        for i in range(4):
            rows.append({"prompt": f"{g} * {g} =", "group_id": f"g{g}", "group_size": 4,
                         "completion": f" {g * g}" + " 1" * (i + g % 3), "advantage": [1.0, -1.0, 0.5, -0.5][i]})
    write_jsonl(tmp_path / "in.jsonl", rows)
    args = ["-m", tiny_model, "--lr", "1e-3", "--batch-size", "12", "--max-tokens-per-micro-batch", "48",
            "--agg", "seq-mean-token-mean", "-q", str(tmp_path / "in.jsonl")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    one = subprocess.run([sys.executable, "-m", "er.cli", "update", "--out", str(tmp_path / "one"), *args,
                          "-o", str(tmp_path / "m1.jsonl")], capture_output=True, env=env, timeout=180)
    assert one.returncode == 0, one.stderr.decode()[-2000:]
    w1 = AutoModelForCausalLM.from_pretrained(tmp_path / "one" / "latest")
    m1 = read_jsonl(tmp_path / "m1.jsonl")
    moments1 = {k: v for k, v in load_state(str(tmp_path / "one" / "latest"))[1].items() if k.startswith("optim.")}
    assert len(moments1) > 2
    # FSDP2 (fully_shard) runs on CPU/gloo too; --save-every 1 saves the last step inside the loop,
    # so every rank must agree that no final save is due (a mismatch deadlocks the save's collectives)
    for name, extra in (("ddp", []), ("fsdp", ["--fsdp", "--save-every", "1"])):
        two = subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "er.cli", "update",
                              "--out", str(tmp_path / name), *extra, *args, "-o", str(tmp_path / f"{name}.jsonl")],
                             capture_output=True, env=env, timeout=180)
        assert two.returncode == 0, two.stderr.decode()[-3000:]
        m2 = read_jsonl(tmp_path / f"{name}.jsonl")
        assert [m["step"] for m in m2] == [1, 2]  # only rank 0 writes metrics
        for a, b in zip(m1, m2):
            assert abs(a["loss"] - b["loss"]) < 1e-5
            assert a["micro_batches"] == b["micro_batches"] > 2
        assert sorted(p for p in os.listdir(tmp_path / name) if p.startswith("step-")) == (
            ["step-1", "step-2"] if extra[1:] else ["step-2"])
        w2 = AutoModelForCausalLM.from_pretrained(tmp_path / name / "latest")
        for (n, p), (_, q) in zip(w1.named_parameters(), w2.named_parameters()):
            assert torch.allclose(p, q, atol=1e-5, rtol=0), (name, n)
        # the optimizer moments rank 0 writes are whole (gathered from every rank's shard under FSDP)
        moments2 = {k: v for k, v in load_state(str(tmp_path / name / "latest"))[1].items() if k.startswith("optim.")}
        assert moments2.keys() == moments1.keys()
        for k, v in moments1.items():
            assert torch.allclose(v, moments2[k], atol=1e-9, rtol=1e-3), (name, k)
