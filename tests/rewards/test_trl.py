"""`er.rewards.trl_reward`: the catalog as TRL reward functions, and a real 2-step GRPOTrainer run."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import pytest

import er.rewards
from er.rewards import trl_reward
from er.rewards.trl import completion_text

L_T = 6


def test_plain_completions_group_by_prompt_and_verify_answers_inline():
    f = trl_reward("dler", L_T=L_T, num_generations=2)
    out = f(prompts=["p1", "p1", "p2", "p2"], completions=["\\boxed{4}", "\\boxed{5}", "\\boxed{7}", "\\boxed{7}"],
            completion_ids=[[1, 2], [1, 2], [1] * 10, [1, 2, 3]], answer=["4", "4", "7", "7"],
            trainer_state=None, log_extra=None, log_metric=None)
    # correct and <= L_T tokens -> 1; wrong -> 0; correct but 10 > L_T tokens -> 0
    assert out == [1.0, 0.0, 0.0, 1.0]


def test_a_completion_gets_the_same_length_reward_through_trl_and_through_er_sample_and_score(tiny_model, tmp_path):
    """One counting rule: completion_tokens counts the EOS in `er sample` records and in TRL's ids."""
    from transformers import AutoTokenizer

    from tests.helpers import jsonl, parse_jsonl, run_er
    from tests.rewards.er_bin import er_score

    proc = run_er("sample", "-m", tiny_model, "--backend", "transformers", "-n", "16", "--max-tokens", "40",
                  "--temperature", "1.5", "--seed", "1", "--logprobs", "-q",
                  input=jsonl([{"id": "a", "prompt": "1 + 1 ="}, {"id": "b", "prompt": "2 + 3 ="}]), check=True)
    records = [{**r, "correct": True} for r in parse_jsonl(proc.stdout)]
    stopped = [r for r in records if r["finish_reason"] == "stop"]
    assert stopped, "the seed gives no completion that ends with EOS: the test would prove nothing"
    L = stopped[0]["completion_tokens"] - 1  # the EOS decides: in with it counted, out without
    code, scored, err = er_score(tmp_path, records, "-r", f"dler:L_T={L}")
    assert code == 0, err
    eos = AutoTokenizer.from_pretrained(tiny_model).eos_token_id
    trl = trl_reward("dler", L_T=L, eos_token_id=eos, max_completion_length=40, num_generations=16)
    got = trl(prompts=[r["prompt"] for r in records], completions=[r["completion"] for r in records],
              completion_ids=[r["token_ids"] for r in records], correct=[True] * len(records))
    assert got == [r["reward"] for r in scored]
    assert got[records.index(stopped[0])] == 0.0


def test_conversational_completions_take_the_assistant_content():
    assert completion_text([{"role": "assistant", "content": "\\boxed{3}"}]) == "\\boxed{3}"
    f = trl_reward("math", num_generations=2)
    out = f(prompts=[[{"role": "user", "content": "1+2"}]] * 2,
            completions=[[{"role": "assistant", "content": "\\boxed{3}"}], [{"role": "assistant", "content": "x"}]],
            completion_ids=[[5], [6]], answer=["3", "3"])
    assert out == [1.0, 0.0]


def test_truncated_completions_are_never_correct_and_eos_is_counted_as_er_sample_counts_it():
    f = trl_reward("dler", L_T=3, eos_token_id=9, num_generations=2)
    out = f(prompts=["p", "p"], completions=["\\boxed{4}", "\\boxed{4}"], completion_ids=[[1, 2, 9], [1, 2]],
            answer=["4", "4"])
    assert out == [1.0, 0.0]  # 2 tokens + EOS = 3 <= L_T: finished; no EOS: cut at the cap
    f = trl_reward("dler", L_T=2, eos_token_id=9, num_generations=1)
    assert f(prompts=["p"], completions=["\\boxed{4}"], completion_ids=[[1, 2, 9]], answer=["4"]) == [0.0]


def test_a_correct_column_skips_verification_and_a_missing_answer_is_null():
    f = trl_reward("math", num_generations=1)
    assert f(prompts=["p"], completions=["\\boxed{1}"], completion_ids=[[1]], correct=[False]) == [0.0]
    assert f(prompts=["p"], completions=["\\boxed{1}"], completion_ids=[[1]], answer=[None]) == [None]


def test_group_rewards_see_whole_groups_of_num_generations_never_runs_of_identical_prompts():
    cols = {"mode": ["long", "long", "short", "short"], "correct": [True, True, True, False]}
    a = trl_reward("long-short", num_generations=4)(prompts=["q"] * 4, completions=["x"] * 4,
                                                    completion_ids=[[1]] * 4, **cols)
    b = trl_reward("long-short", num_generations=2)(prompts=["q"] * 4, completions=["x"] * 4,
                                                    completion_ids=[[1]] * 4, **cols)
    assert a == [1.5, 1.5, 1.0, 0.0]  # one group: long acc 1 > short acc 0.5
    assert b == [1.5, 1.5, 1.5, 0.0]  # two groups of the same prompt stay two groups
    with pytest.raises(ValueError, match="group size is unknown.*num_generations"):
        trl_reward("long-short")(prompts=["q"] * 4, completions=["x"] * 4, completion_ids=[[1]] * 4, **cols)
    with pytest.raises(ValueError, match="whole groups"):
        trl_reward("long-short", num_generations=3)(prompts=["q"] * 4, completions=["x"] * 4, **cols)


def test_missing_field_and_bad_parameters_are_errors():
    with pytest.raises(ValueError, match="level"):
        trl_reward("tldr", num_generations=1)(prompts=["p"], completions=["x"], completion_ids=[[1]], correct=[True])
    with pytest.raises(Exception, match="unknown parameter"):
        trl_reward("dler", nope=1)


def test_pickles_by_name_and_parameters():
    f = trl_reward("target-length", match="fm", num_generations=1)
    g = pickle.loads(pickle.dumps(f))
    assert g.__name__ == "er_target-length" and g.params == {"match": "fm"}
    assert g(prompts=["p"], completions=["a " * 95], completion_ids=[[1]], target_length=[80]) == [1.0]


def test_lazy_export_does_not_import_trl_or_torch():
    import subprocess
    import sys

    code = "import sys, er.rewards; er.rewards.trl_reward('length'); print('trl' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.slow
def test_grpo_trainer_runs_two_steps_with_the_dler_reward(tiny_model, tmp_path):
    assert (Path(er.rewards.__file__).parent / "dler.py").exists()
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("ACCELERATE_USE_CPU", "1")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    data = Dataset.from_list([{"prompt": f"{a} + {a + 1} =", "answer": str(2 * a + 1)} for a in range(8)])
    # every prompt twice in the data set: neighbours with the same prompt must still be groups of G=2
    data = Dataset.from_list([{"prompt": f"{a} + {a + 1} =", "answer": str(2 * a + 1)} for a in range(4) for _ in (0, 1)])
    reward = trl_reward("dler", L_T=L_T, eos_token_id=tok.eos_token_id)  # G comes from the trainer
    inner, sizes = reward.reward, []

    def spy(group):
        sizes.append(len(group))
        return inner(group)

    spy.fields, spy.needs_correct = inner.fields, inner.needs_correct
    reward.reward = spy
    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=8, max_steps=2, learning_rate=1e-4, use_cpu=True, bf16=False,
                      report_to="none", logging_steps=1, save_strategy="no", seed=0, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=data, processing_class=tok)
    trainer.train()
    assert trainer.state.global_step == 2
    assert sizes and set(sizes) == {2}
    logged = [h for h in trainer.state.log_history if "rewards/er_dler/mean" in h]
    assert len(logged) == 2
    assert all(0.0 <= h["rewards/er_dler/mean"] <= 1.0 and math.isfinite(h["reward"]) for h in logged)
