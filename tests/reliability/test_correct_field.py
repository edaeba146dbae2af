"""Promise: `correct` is never trusted silently. A verifier reward named in the run (math, tail)
always recomputes it; otherwise it must be true/false/null, anything else is a data error at its
line; `er sample` never copies a prompt's `correct`, `reward(s)` or `advantage` into its samples."""

from __future__ import annotations

from tests.helpers import jsonl, parse_jsonl, run_er, sample_record

RIGHT = "<think>2+2</think> \\boxed{4}"
WRONG = "<think>2+2</think> \\boxed{5}"


def test_a_string_correct_is_a_data_error_at_its_line():
    rows = [sample_record("a", 0, 1, correct=True), sample_record("b", 0, 1, correct="false")]
    proc = run_er("score", "-r", "dler", "--workers", "0", input=jsonl(rows))
    err = proc.stderr.decode()
    assert proc.returncode == 1 and ":2:" in err and "'correct'" in err and err.count("\n") == 1, err
    assert proc.stdout == b"" or len(parse_jsonl(proc.stdout)) <= 1


def test_a_non_boolean_correct_goes_to_rejects_with_its_reason(tmp_path):
    rejects = tmp_path / "rej.jsonl"
    rows = [sample_record("a", 0, 1, correct=True), sample_record("b", 0, 1, correct=1),
            sample_record("c", 0, 1, correct=None)]
    proc = run_er("score", "-r", "dler", "--workers", "0", "--rejects", str(rejects), input=jsonl(rows))
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in parse_jsonl(proc.stdout)] == ["a", "c"]
    bad = parse_jsonl(rejects.read_bytes())
    assert [b["line"] for b in bad] == [2] and "true, false or null" in bad[0]["error"]


def test_a_verifier_in_the_run_recomputes_a_carried_correct():
    # a scored file whose verdicts were flipped (and one a string): -r math decides again
    rows = [sample_record("a", 0, 1, completion=RIGHT, correct=False),
            sample_record("b", 0, 1, completion=WRONG, correct=True),
            sample_record("c", 0, 1, completion=WRONG, correct="true")]
    out = parse_jsonl(run_er("score", "-r", "math", "--workers", "0", input=jsonl(rows), check=True).stdout)
    assert [r["correct"] for r in out] == [True, False, False]
    assert [r["reward"] for r in out] == [1.0, 0.0, 0.0]
    # a verifier with other rewards: they see the recomputed verdict
    out = parse_jsonl(run_er("score", "-r", "math", "-r", "dler", "--workers", "0", input=jsonl(rows),
                             check=True).stdout)
    assert [r["correct"] for r in out] == [True, False, False]


def test_the_tail_judge_recomputes_a_carried_correct():
    rows = [sample_record("a", 0, 1, answer="12", task="addition", completion="\\boxed{12}", correct=False),
            sample_record("b", 0, 1, answer="12", task="addition", completion="\\boxed{13}", correct="yes")]
    out = parse_jsonl(run_er("score", "-r", "tail", "--workers", "0", input=jsonl(rows), check=True).stdout)
    assert [r["correct"] for r in out] == [True, False]


def test_without_a_verifier_a_boolean_correct_is_used_as_given():
    rows = [sample_record("a", 0, 1, completion=WRONG, correct=True)]
    out = parse_jsonl(run_er("score", "-r", "dler", "--workers", "0", input=jsonl(rows), check=True).stdout)
    assert out[0]["correct"] is True and out[0]["reward"] == 1.0


def test_score_help_states_the_rule():
    text = " ".join(run_er("score", "--help", check=True).stdout.decode().split())
    assert "always recomputes" in text and "true, false or null" in text


def test_sample_does_not_copy_stage_owned_fields_from_a_prompt(tiny_model):
    prompt = {"id": "p", "prompt": "1 + 1 =", "answer": "2", "correct": True, "reward": 1.0,
              "rewards": {"math": 1.0}, "advantage": 0.5, "estimator": "grpo", "note": "kept"}
    proc = run_er("sample", "-m", tiny_model, "-n", "2", "--max-tokens", "2", "--backend", "transformers",
                  "--seed", "0", input=jsonl([prompt]))
    assert proc.returncode == 0, proc.stderr
    out = parse_jsonl(proc.stdout)
    assert len(out) == 2
    for r in out:
        assert not {"correct", "reward", "rewards", "advantage", "estimator"} & set(r)
        assert r["note"] == "kept" and r["answer"] == "2"
