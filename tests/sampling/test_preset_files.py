"""`--preset NAME` reads the user's own files (and stdin) in the benchmark's shape; eval/score use its verifier."""

from __future__ import annotations


from tests.helpers import jsonl, parse_jsonl, run_er

ROWS = [
    {"question": "What is 40 + 2?", "answer": "40 + 2 = 42\n#### 42", "source": "mine", "id": "q-1"},
    {"question": "What is 1,000 + 1?", "answer": "#### 1,001", "source": "mine"},
]


def test_sample_preset_reads_a_file_keeping_extra_columns(er_sample, tiny_model):
    r = er_sample("--preset", "gsm8k", "-m", tiny_model, "-n", "2", "--max-tokens", "3", "--seed", "0",
                  "--backend", "transformers", prompts=ROWS)
    assert r.code == 0, r.err
    assert len(r.records) == 4
    first, third = r.records[0], r.records[2]
    assert first["answer"] == "42" and third["answer"] == "1001"
    assert first["source"] == "mine" and "question" not in first  # extra columns kept, the preset's replaced
    assert first["id"] == "q-1" and third["id"] == "gsm8k/1"  # the row's own id wins
    assert first["dataset"] == "gsm8k"
    assert first["prompt"][0]["content"].startswith("What is 40 + 2?")


def test_sample_preset_reads_stdin(tiny_model):
    proc = run_er("sample", "--preset", "gsm8k", "-m", tiny_model, "--max-tokens", "2", "--backend",
                  "transformers", input=jsonl(ROWS[:1]))
    assert proc.returncode == 0, proc.stderr.decode()
    assert [r["answer"] for r in parse_jsonl(proc.stdout)] == ["42"]


def test_a_row_in_a_benchmark_shape_without_preset_names_the_preset(er_sample, tiny_model):
    r = er_sample("-m", tiny_model, "--max-tokens", "2", "--backend", "transformers", prompts=ROWS[:1])
    assert r.code == 1
    assert "missing field 'prompt' (its fields are a benchmark's: add --preset gsm8k)" in r.err


def test_a_row_the_preset_cannot_read_is_rejected_at_its_line(er_sample, tiny_model):
    rows = [ROWS[0], {"question": "no gold", "answer": "none here"}]
    r = er_sample("--preset", "gsm8k", "-m", tiny_model, "--max-tokens", "2", "--backend", "transformers",
                  prompts=rows, rejects=True)
    assert r.code == 0, r.err
    assert len(r.records) == 1 and len(r.rejects) == 1 and r.rejects[0]["line"] == 2


def test_a_long_context_preset_on_record_files_is_a_usage_error(er_sample, tiny_model):
    r = er_sample("--preset", "leval", "-m", tiny_model, prompts=ROWS[:1])
    assert r.code == 2 and "--dataset FILE" in r.err


def _samples():
    return [{"id": "gsm8k/0", "prompt": "p", "answer": "42", "group_id": "gsm8k/0", "sample_idx": i,
             "group_size": 2, "completion": c, "completion_tokens": 5, "finish_reason": "stop",
             "dataset": "gsm8k"} for i, c in enumerate(["so \\boxed{42}", "so \\boxed{41}"])]


def test_eval_preset_uses_its_verifier_without_reward():
    proc = run_er("eval", "--preset", "gsm8k", "--workers", "0", input=jsonl(_samples()))
    assert proc.returncode == 0, proc.stderr.decode()
    (report,) = parse_jsonl(proc.stdout)
    assert report["accuracy"] == 0.5 and report["verifier"].startswith("math")


def test_eval_preset_keeps_a_correct_the_rows_carry():
    rows = [{**r, "correct": True} for r in _samples()]  # judged upstream (another verifier): not re-verified
    proc = run_er("eval", "--preset", "gsm8k", "--workers", "0", input=jsonl(rows))
    assert proc.returncode == 0, proc.stderr.decode()
    assert parse_jsonl(proc.stdout)[0]["accuracy"] == 1.0


def test_score_preset_uses_its_verifier_without_reward():
    proc = run_er("score", "--preset", "gsm8k", "--workers", "0", input=jsonl(_samples()))
    assert proc.returncode == 0, proc.stderr.decode()
    rows = parse_jsonl(proc.stdout)
    assert [r["correct"] for r in rows] == [True, False] and rows[0]["rewards"] == {"math": 1.0}
