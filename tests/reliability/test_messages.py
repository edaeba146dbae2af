"""Promise: messages say what is really wrong, and the small promises of the README hold:
`er decompose --tokenizer` without a usable tokenizer, `er eval` given the wrong thing or nothing,
`er eval --compare` across datasets, `er --version`, `man er-COMMAND` in the venv `make` creates,
and a row-level TRL reward that needs no group size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import jsonl, run_er, sample_record
from tests.reliability.test_one_line_errors import one_line

DOC = b'{"text": "hello world"}\n'


def test_decompose_with_a_tokenizer_that_yields_no_tokens_is_one_line_exit_2(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    Tokenizer(BPE()).save(str(tmp_path / "tokenizer.json"))  # loads, but every text encodes to []
    one_line(run_er("decompose", "--tokenizer", str(tmp_path / "tokenizer.json"), input=DOC), 2, "no tokens")


def test_decompose_on_a_directory_without_tokenizer_files_says_so_not_sentencepiece(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    err = one_line(run_er("decompose", "--tokenizer", str(tmp_path), input=DOC), 2, "no tokenizer.json")
    assert "sentencepiece" not in err


def test_decompose_on_an_uncached_hub_name_offline_says_offline_not_no_such_file():
    err = one_line(run_er("decompose", "--tokenizer", "no-org/no-such-model", input=DOC,
                          env={"HF_HUB_OFFLINE": "1"}), 2, "HF_HUB_OFFLINE")
    assert "no such file" not in err


def scored(model: str, dataset: str, tokens: int) -> list[dict]:
    return [sample_record(f"{dataset}{i}", 0, 1, correct=True, model=model, dataset=dataset,
                          completion_tokens=tokens) for i in range(2)]


def test_eval_compare_never_compares_a_run_with_itself(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(jsonl(scored("m1", "gsm8k", 10)))
    (tmp_path / "b.jsonl").write_bytes(jsonl(scored("m2", "math500", 20) + scored("m2", "gsm8k", 5)))
    proc = run_er("eval", "--compare", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), check=True)
    reports = {(r["run"], r["dataset"]): r for r in map(json.loads, proc.stdout.splitlines())}
    assert reports[("b", "gsm8k")]["headline"] == "-50.0% length, +0.00 accuracy"
    assert reports[("b", "math500")]["headline"] is None and reports[("b", "math500")]["length_change"] is None
    assert "not compared" in proc.stderr.decode() and "math500" in proc.stderr.decode()


def test_eval_given_its_own_report_says_it_is_a_report(tmp_path):
    report = run_er("eval", input=jsonl(scored("m", "gsm8k", 10)), check=True).stdout
    for flags in ([], ["--rejects", str(tmp_path / "rej.jsonl")]):
        one_line(run_er("eval", *flags, input=report), 1, "report of `er eval`", ":1:")


def test_eval_of_an_empty_stream_says_so_and_exits_0():
    proc = run_er("eval", "--quiet", input=b"")
    assert proc.returncode == 0 and proc.stdout == b"" and "the input is empty" in proc.stderr.decode()


def test_er_version_prints_the_package_version():
    from importlib.metadata import version

    proc = run_er("--version", check=True)
    assert proc.stdout.decode() == f"er {version('er')}\n"


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_man_finds_the_pages_with_the_venv_on_path():
    bin_dir = Path(sys.executable).parent  # the venv's bin/, unresolved (a venv's python is a link)
    env = {k: v for k, v in os.environ.items() if k != "MANPATH"}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    proc = subprocess.run(["man", "-w", "er-sample"], capture_output=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(b"er-sample.1"), proc.stderr.decode()


def test_a_row_level_trl_reward_needs_no_group_size_and_a_group_level_one_names_its_level():
    from er.rewards import trl_reward

    def log_metric(name, value):  # what TRL passes, here not bound to a trainer
        pass

    call = dict(prompts=["p"] * 3, completions=["a", "bb", "c"], completion_ids=[[1], [1, 2], [1, 2, 3]],
                trainer_state=None, log_extra=log_metric, log_metric=log_metric, answer=["1"] * 3)
    assert trl_reward("dler", L_T=2)(**call) == trl_reward("dler", L_T=2, num_generations=3)(**call)
    with pytest.raises(ValueError, match="group-level"):
        trl_reward("long-short")(**call)
