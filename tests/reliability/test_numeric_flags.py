"""Promise: every numeric flag of every command (but `er update`, audited with its own flags) refuses
zero, negative and NaN values where they mean nothing: one line naming the flag, exit 2, before
any row is read. The table below is the audit; a numeric flag missing from it fails the last test."""

from __future__ import annotations

import importlib
import inspect
import typing

import pytest

from er.cli import COMMANDS, main

PROMPT = '{"id": "p", "prompt": "hi"}\n'

# (command, flag, bad values); "-m MODEL" is filled in for sample
BAD = [
    ("sample", "-n", ["0", "-1"]),
    ("sample", "--max-tokens", ["0"]),
    ("sample", "--temperature", ["-1", "nan"]),
    ("sample", "--top-p", ["0", "1.5", "nan"]),
    ("sample", "--batch-size", ["0", "-1"]),
    ("sample", "--chunk", ["0", "-1"]),
    ("sample", "--tensor-parallel-size", ["0"]),
    ("sample", "--gpu-memory-utilization", ["0", "1.5", "nan"]),
    ("sample", "--max-model-len", ["0"]),
    ("sample", "--stop-scale", ["0", "nan"]),
    ("sample", "--limit", ["-1"]),
    ("sample", "--skip", ["-1"]),
    ("sample", "--max-line-bytes", ["0"]),
    ("score", "--workers", ["-1"]),
    ("score", "--timeout", ["0", "nan"]),
    ("score", "--max-line-bytes", ["0"]),
    ("advantage", "--batch-groups", ["0", "-1"]),
    ("advantage", "--max-line-bytes", ["0"]),
    ("merge", "--top-frac", ["-1", "nan"]),
    ("merge", "--scale", ["nan", "inf"]),
    ("decompose", "--min-len", ["0", "-4"]),
    ("decompose", "--max-len", ["0"]),
    ("decompose", "--workers", ["-1"]),
    ("decompose", "--tokens-per-batch", ["0"]),
    ("decompose", "--cycles", ["0", "-1"]),
    ("decompose", "--max-line-bytes", ["0"]),
    ("synth-tail", "--n", ["-1"]),
    ("eval", "--workers", ["-1"]),
    ("eval", "--timeout", ["0", "nan"]),
    ("eval", "--auc-tokens", ["0", "-1"]),
    ("eval", "--lc-lambda", ["-1", "nan"]),
    ("eval", "--band", ["-1", "nan"]),
    ("eval", "--max-line-bytes", ["0"]),
    ("validate", "--max-line-bytes", ["0"]),
    ("sample", "--max-inflight", ["0", "-1"]),
    ("sample", "--request-timeout", ["0", "-1", "nan"]),
    ("eval", "--min-pass", ["0", "1.5", "nan"]),
    ("plot", "--smooth", ["-0.1", "1", "nan"]),
    ("serve", "--port", ["0", "-1", "70000"]),
    ("serve", "--max-model-len", ["0"]),
    ("serve", "--max-tokens", ["0", "-1"]),
    ("serve", "--max-num-seqs", ["0"]),
    ("serve", "--max-num-batched-tokens", ["0"]),
    ("serve", "--startup-timeout", ["0", "nan"]),
    ("serve", "--max-lora-rank", ["0", "-4"]),
]
# every value is meaningful: any seed; `synth-tail --n 0` writes no rows, `sample --limit 0` samples none
ANY_VALUE = {("sample", "--seed"), ("decompose", "--seed"), ("synth-tail", "--seed")}
# a model and an input that do not exist: the flag is refused before either is looked at
REQUIRED = {"merge": ["--base", "b", "--tuned", "t", "--out", "o"], "validate": ["--kind", "sample"],
            "score": ["-r", "length"], "serve": ["-m", "no-such-model"], "plot": ["-o", "run.png", "no-such.jsonl"]}


@pytest.mark.parametrize("command, flag, value", [(c, f, v) for c, f, vs in BAD for v in vs])
def test_a_meaningless_number_is_a_usage_error_naming_the_flag(command, flag, value, tiny_model, capsys,
                                                               monkeypatch, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(PROMPT)
    args = [command, *REQUIRED.get(command, []), *(["-m", tiny_model, str(prompts)] if command == "sample" else []),
            f"{flag}={value}" if flag.startswith("--") else flag, *([] if flag.startswith("--") else [value])]
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and flag in err, (args, code, err)


def test_sample_limit_0_samples_no_prompt(tiny_model, capsys, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(PROMPT * 3)
    assert main(["sample", "-m", tiny_model, "--limit", "0", str(prompts)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "0 out" in captured.err


def numeric_flags() -> list[tuple[str, set[str]]]:
    """(command, its spellings) of every int or float option: types from the commands' signatures,
    spellings from the command line that click builds from them."""
    from er.cli import click_group

    group = click_group()
    found = []
    for name, module in COMMANDS:
        if name == "update":
            continue
        run = importlib.import_module(f"er.commands.{module}").run
        hints = typing.get_type_hints(run, include_extras=True)
        opts = {p.name: set(p.opts) for p in group.commands[name].params}
        for pname in inspect.signature(run).parameters:
            hint = hints[pname]
            base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
            if {int, float} & set(typing.get_args(base) or (base,)):
                found.append((name, opts[pname]))
    return found


def test_the_table_covers_every_numeric_flag():
    table = {(c, f) for c, f, _ in BAD} | ANY_VALUE
    missing = [(c, sorted(spellings)) for c, spellings in numeric_flags()
               if not any((c, f) in table for f in spellings)]
    assert len(numeric_flags()) > 30 and not missing, f"numeric flags not audited: {missing}"
