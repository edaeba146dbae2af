"""examples/recipes/*: the GPU recipes' own Makefiles, run on the tiny model with the sizes turned down."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.examples.conftest import BIN, ENV, EXAMPLES, GSM8K, make

RECIPES = EXAMPLES / "recipes"


def make_C(recipe, caller, *targets: str, timeout: float = 120, **variables: str):
    """`make -C RECIPE TARGETS VAR=value ...` called from `caller`, as the recipes' headers show."""
    args = ["make", "--no-print-directory", "-C", str(recipe), *targets, *(f"{k}={v}" for k, v in variables.items())]
    proc = subprocess.run(args, cwd=caller, env={**ENV, "PWD": str(caller)}, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_recipe_defaults_are_the_papers(tmp_path):
    dry = make(RECIPES / "dler" / "Makefile", tmp_path, "-n", "step", "STEP=1").stdout
    for flag in ("-m deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "--dataset openai/gsm8k --preset gsm8k --split train",
                 "-n 16", "--max-tokens 4000", "--backend vllm", "--gpu-memory-utilization 0.4", "-r dler:L_T=4000",
                 "-e batch --batch-groups 512 --dynamic-sampling", "--lr 1e-6", "--batch-size 1024",
                 "--clip-low 0.2 --clip-high 0.28 --kl-coef 5e-4", "--limit 512",
                 "--keep-last 9"):  # 8 optimizer steps per rollout step, plus the one a redo starts from
        assert flag in dry, flag
    hbpo = make(RECIPES / "hbpo" / "Makefile", tmp_path, "-n", "step", "STEP=1").stdout
    assert "--budgets 512,1024,2048,2560" in hbpo and "-r hbpo:beta=4,L_max=4096" in hbpo and "-e hbpo:" in hbpo
    hapo = make(RECIPES / "hapo" / "Makefile", tmp_path, "-n", "step", "STEP=1").stdout
    assert "--state runs/hapo-state.jsonl" in hapo and "--temperature 0.7" in hapo and "-n 4" in hapo
    lam = make(RECIPES / "grpo-lambda" / "Makefile", tmp_path, "-n", "step", "STEP=1").stdout
    assert "-r grpo-lambda:lam=0.2,alpha=0.6,batch_groups=64" in lam


def test_make_C_writes_every_output_of_a_recipe_into_the_callers_directory(tmp_path):
    before = {p: set(os.listdir(p)) for p in RECIPES.iterdir()}
    dry = make_C(RECIPES / "dler", tmp_path, "-n", "all", "STEPS=1", "DA_STEPS=1").stdout
    for flag in (f"--out {tmp_path}/ckpt ", f"-m {tmp_path}/ckpt/latest", f"--out {tmp_path}/ckpt-da ",
                 f"--tuned {tmp_path}/ckpt-da/latest", f"--out {tmp_path}/merged"):
        assert flag in dry, flag
    assert f"--state {tmp_path}/runs/hapo-state.jsonl" in make_C(RECIPES / "hapo", tmp_path, "-n", "step", "STEP=1").stdout
    assert {p: set(os.listdir(p)) for p in RECIPES.iterdir()} == before


def test_dler_then_da_dler_then_merge(tiny_vars, tmp_path):
    v = {**tiny_vars, "L_T": "16", "MINI_BATCH_PROMPTS": "2", "DA_STEPS": "1", "DYNAMIC_SAMPLING": "", "LR": "1e-3"}
    v.pop("MAX_TOKENS")  # the recipe's MAX_TOKENS = L_T
    make(RECIPES / "dler" / "Makefile", tmp_path, "all", **v)
    dler = records(tmp_path / "runs" / "step-1" / "rollouts.jsonl")
    assert {r["estimator"] for r in dler} == {"batch"} and all("dler" in r["rewards"] for r in dler)
    da = records(tmp_path / "runs-da" / "step-1" / "rollouts.jsonl")
    assert all("dler-da" in r["rewards"] for r in da)
    assert {r["policy"]["model"] for r in da} == {str(tmp_path / "ckpt" / "latest")}
    summary = json.loads((tmp_path / "merged" / "er_merge.json").read_text())
    assert summary["top_frac"] == 0.25 and summary["scale"] == 0.7
    assert 0.2 < summary["kept_frac"] < 0.3  # weight decay moved every weight; the top quarter is kept


def test_hbpo_splits_each_group_into_budget_subgroups_and_keeps_the_last_checkpoints(tiny_vars, tmp_path):
    v = {**tiny_vars, "G": "4", "BUDGETS": "8,16", "L_MAX": "16", "STEPS": "3"}
    before = set(os.listdir(RECIPES / "hbpo"))
    make_C(RECIPES / "hbpo", tmp_path, "train", timeout=240, **v)  # from the caller's directory, as documented
    assert set(os.listdir(RECIPES / "hbpo")) == before
    rows = records(tmp_path / "runs" / "step-1" / "rollouts.jsonl")
    assert len(rows) == 8 and [r["budget"] for r in rows[:4]] == [8, 8, 16, 16]
    assert all(r["sampling"]["max_tokens"] == r["budget"] and r["estimator"].startswith("hbpo") for r in rows)
    # KEEP_LAST defaults to 2 here (one optimizer step per rollout step): step-1 is gone, latest resolves
    ckpt = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == [".er-writer.lock", "latest", "step-2", "step-3", "trainer-state"]
    assert os.readlink(ckpt / "latest") == "step-3" and (ckpt / "latest" / "config.json").exists()


def test_hapo_reads_its_history_from_the_state_file(tiny_vars, tmp_path):
    (tmp_path / "runs").mkdir()
    # gsm8k/0 was once solved in 4 tokens: a wrong 16-token answer is now past (1 + 0.1) * 4 -> -1
    (tmp_path / "runs" / "hapo-state.jsonl").write_text(json.dumps({"id": "gsm8k/0", "h": 4, "n": 1}) + "\n")
    make(RECIPES / "hapo" / "Makefile", tmp_path, "train", **tiny_vars)
    rows = records(tmp_path / "runs" / "step-1" / "rollouts.jsonl")
    first = [r for r in rows if r["id"] == "gsm8k/0"]
    assert first and all(r["rewards"]["hapo"] == -1.0 for r in first if r["completion_tokens"] >= 16)
    assert all(r["rewards"]["hapo"] == 0.0 for r in rows if r["id"] != "gsm8k/0")


def test_grpo_lambda_with_two_sampler_shards_and_a_two_rank_torchrun_learner(tiny_vars, tmp_path):
    v = {**tiny_vars, "SHARDS": "2", "TORCHRUN": f"{BIN / 'torchrun'} --standalone --nproc-per-node 2"}
    make(RECIPES / "grpo-lambda" / "Makefile", tmp_path, "-j2", "train", **v)
    shards = [records(tmp_path / "runs" / "step-1" / f"samples-{i}-of-2.jsonl") for i in (0, 1)]
    assert [len(s) for s in shards] == [2, 2]  # one prompt x G=2 each
    assert shards[0][0]["group_id"] != shards[1][0]["group_id"]
    rows = records(tmp_path / "runs" / "step-1" / "rollouts.jsonl")
    assert len(rows) == 4 and all("grpo-lambda" in r["rewards"] for r in rows)
    metrics = records(tmp_path / "runs" / "step-1" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1] and metrics[0]["samples"] == 4
    assert os.readlink(tmp_path / "ckpt" / "latest") == "step-1"


def test_trl_bridge_runs_grpotrainer_steps_with_the_er_reward(tiny, tmp_path):
    proc = subprocess.run([sys.executable, str(RECIPES / "trl-bridge" / "train.py"), "--model", tiny,
                           "--dataset", str(GSM8K), "--steps", "2", "-G", "2", "--prompts-per-step", "2",
                           "--L-T", "16", "--cpu", "--output-dir", str(tmp_path / "out")],
                          env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "'rewards/er_dler/mean': '0'" in proc.stdout + proc.stderr
    assert "'epoch': '2'" in proc.stdout + proc.stderr  # 2 steps of 2 prompts (the fixture has 3)
    assert (tmp_path / "out" / "final" / "model.safetensors").exists()


def test_trl_bridge_sends_text_prompts_as_conversations_for_the_chat_template_unless_told_not_to(tmp_path):
    """As `er sample` does: GRPOTrainer applies the chat template only to conversational prompts."""
    sys.path.insert(0, str(RECIPES / "trl-bridge"))
    from train import load_prompts

    src = tmp_path / "prompts.jsonl"
    src.write_text('{"prompt": "What is 2 + 3?", "answer": "5"}\n{"prompt": "What is 4 - 1?", "answer": 3}\n')
    chat = load_prompts(str(src), None, None, None, chat=True)
    assert list(chat["prompt"]) == [[{"role": "user", "content": "What is 2 + 3?"}],
                                    [{"role": "user", "content": "What is 4 - 1?"}]]
    assert list(chat["answer"]) == ["5", "3"]
    assert list(load_prompts(str(src), None, None, None, chat=False)["prompt"]) == ["What is 2 + 3?", "What is 4 - 1?"]
    # a preset that already builds a conversation keeps it either way (a messages prompt is always templated)
    preset = load_prompts(str(GSM8K), "gsm8k", None, 1, chat=False)
    assert preset["prompt"][0][-1]["role"] == "user"
