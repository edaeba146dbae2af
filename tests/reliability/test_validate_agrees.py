"""Promise: `er validate` passes exactly what the commands accept, by running their own checks:
groups that are whole and contiguous, `group_size` kept, what a later stage needs (`--for score:math`
asks for `answer`), and it accepts the records `er sample` itself writes."""

from __future__ import annotations

from tests.helpers import jsonl, run_er, sample_record


def both(rows, validate_args=(), command=("advantage",)):
    """(validate's exit status, the command's exit status) on the same rows."""
    data = jsonl(rows)
    return run_er("validate", *validate_args, input=data).returncode, run_er(*command, input=data).returncode


def scored(group, idx, size, **kw):
    return sample_record(group, idx, size, reward=1.0, correct=True, rewards={"math": 1.0}, **kw)


def test_non_contiguous_groups_fail_validate_as_they_fail_the_commands():
    rows = [scored("a", 0, 2), scored("b", 0, 1), scored("a", 1, 2)]
    assert both(rows, ("--kind", "scored")) == (1, 1)
    proc = run_er("validate", "--kind", "scored", input=jsonl(rows))
    assert ":3:" in proc.stderr.decode() and "reappears" in proc.stderr.decode()


def test_a_group_size_mismatch_fails_validate_as_it_fails_the_commands():
    rows = [scored("a", 0, 3), scored("a", 1, 3)]
    assert both(rows, ("--kind", "scored")) == (1, 1)
    assert "group_size 3" in run_er("validate", "--kind", "scored", input=jsonl(rows)).stderr.decode()


def test_a_prompt_without_answer_fails_validate_for_score_math():
    prompts = [{"id": "a", "prompt": "1+1", "answer": "2"}, {"id": "b", "prompt": "2+2"}]
    assert run_er("validate", "--kind", "prompt", input=jsonl(prompts)).returncode == 0  # fine as a prompt
    proc = run_er("validate", "--kind", "prompt", "--for", "score:math", input=jsonl(prompts))
    err = proc.stderr.decode()
    assert proc.returncode == 1 and ":2:" in err and "'answer'" in err and ":1:" not in err, err
    # the same samples are what `er score -r math` refuses
    samples = [sample_record("a", 0, 1), {**sample_record("b", 0, 1), "answer": None}]
    assert both(samples, ("--for", "score:math"), ("score", "-r", "math", "--workers", "0")) == (1, 1)


def test_validate_for_score_reports_a_non_boolean_correct():
    rows = [scored("a", 0, 1, ), {**scored("b", 0, 1), "correct": "false"}]
    assert both(rows, ("--kind", "scored", "--for", "score:dler"), ("score", "-r", "dler", "--workers", "0")) == (1, 1)


def test_valid_rows_pass_validate_and_the_commands():
    rows = [scored("a", 0, 2), scored("a", 1, 2), scored(7, 0, 1, id=7)]
    assert both(rows, ("--kind", "scored")) == (0, 0)


def test_validate_accepts_what_er_sample_writes(tiny_model):
    prompts = [{"id": 1, "prompt": "1 + 1 =", "answer": "2"}, {"id": "two", "prompt": "2 + 2 =", "answer": "4"}]
    assert run_er("validate", "--kind", "prompt", "--for", "score:math", input=jsonl(prompts)).returncode == 0
    samples = run_er("sample", "-m", tiny_model, "-n", "2", "--max-tokens", "2", "--backend", "transformers",
                     "--seed", "0", input=jsonl(prompts), check=True).stdout
    proc = run_er("validate", "--kind", "sample", "--for", "score:math", input=samples)
    assert proc.returncode == 0, proc.stderr
    scored_out = run_er("score", "-r", "math", "--workers", "0", input=samples, check=True).stdout
    assert run_er("validate", "--kind", "scored", input=scored_out).returncode == 0
