"""Promise: an argument that cannot mean anything is a usage error (exit 2, one line) before any row
is judged, never a run that blames the data or prints an empty result with exit 0."""

from __future__ import annotations

from tests.helpers import jsonl, run_er, sample_record

SCORED = [sample_record(f"g{i}", 0, 1, correct=True, reward=1.0, rewards={"math": 1.0}, task="addition")
          for i in range(3)]


def one_usage_line(proc, *words: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    assert proc.stdout == b""
    return err


def test_a_negative_or_zero_timeout_is_a_usage_error():
    rows = [sample_record("a", 0, 1)]
    for value in ("-1", "0", "nan", "inf"):
        one_usage_line(run_er("score", "-r", "math", "--timeout", value, input=jsonl(rows)), "--timeout")
        one_usage_line(run_er("eval", "-r", "math", "--timeout", value, input=jsonl(rows)), "--timeout")


def test_a_non_positive_max_line_bytes_is_a_usage_error_not_the_datas_fault():
    for command in (("advantage",), ("score", "-r", "length"), ("eval",), ("validate",)):
        for value in ("-1", "0"):
            one_usage_line(run_er(*command, "--max-line-bytes", value, input=jsonl(SCORED)), "--max-line-bytes")


def test_eval_by_a_field_no_row_has_is_a_usage_error():
    one_usage_line(run_er("eval", "--by", "nosuchfield", input=jsonl(SCORED)), "--by nosuchfield")
    one_usage_line(run_er("eval", "--by", "task,policy.nosuch", input=jsonl(SCORED)), "policy.nosuch")
    proc = run_er("eval", "--by", "task", "--by", "policy.step", input=jsonl(SCORED))
    assert proc.returncode == 0, proc.stderr


def test_eval_preset_on_rows_of_another_dataset_says_so():
    tail = [sample_record(f"t{i}", 0, 1, correct=True, answer=a) for i, a in enumerate(["12", "a,ac,c"])]
    err = one_usage_line(run_er("eval", "--preset", "gsm8k", input=jsonl(tail)), "--preset gsm8k", ":2:")
    assert "'a,ac,c'" in err
    labelled = [sample_record("x", 0, 1, correct=True, dataset="tail")]
    one_usage_line(run_er("eval", "--preset", "gsm8k", input=jsonl(labelled)), "'tail'", ":1:")
    gpqa = [sample_record("q", 0, 1, correct=True, answer="42")]
    one_usage_line(run_er("eval", "--preset", "gpqa", input=jsonl(gpqa)), "letter")


def test_eval_preset_accepts_its_own_rows():
    rows = [sample_record("a", 0, 1, correct=True, answer="1,234"),
            sample_record("b", 0, 1, correct=False, answer="x", dataset="gsm8k")]
    proc = run_er("eval", "--preset", "gsm8k", input=jsonl(rows))
    assert proc.returncode == 0, proc.stderr
