"""Every usage error is reported before any model or heavy library loads: exit 2 in under a second.

Each case runs `er.cli.main` in a fresh interpreter and times the command itself in CPU seconds
(interpreter start-up and `import er.cli` excluded, they are the same for every command; CPU time, so
that a busy machine does not inflate it); a command that loaded torch,
transformers or vLLM before refusing its flags would take seconds, and the case checks that none did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "vllm", "datasets", "math_verify")
PROBE = """
import json, sys, time
from er.cli import main
argv = json.loads(sys.argv[1])
t0 = time.process_time()
code = main(argv)
print(json.dumps({"code": code, "seconds": time.process_time() - t0,
                  "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


def _cases(model: str, prompts: str, out: str):
    m = ["-m", model]
    return [
        ("sample", [*m, "--limit", "-1", prompts], "--limit"),
        ("sample", [*m, "--skip", "-1", prompts], "--skip"),
        ("sample", [*m, "--backend", "bogus", prompts], "--backend"),
        ("sample", [*m, "--preset", "nosuch", prompts], "unknown preset"),
        ("sample", [*m, "--preset", "leval", prompts], "--dataset FILE"),
        ("sample", [*m, "--attention", "lambda", "--backend", "vllm", prompts], "transformers backend"),
        ("sample", [*m, "--budgets", "abc", prompts], "--budgets"),
        ("sample", [*m, "--format", "csv", prompts], "--format"),
        ("sample", [*m, "--mode-markers", "one", prompts], "--mode-markers"),
        ("sample", [*m, "--shard", "3/2", prompts], "--shard"),
        ("sample", [*m, "-n", "x", prompts], "-n"),
        ("score", ["-r", "nosuch", prompts], "unknown reward"),
        ("score", ["-r", "math", "--timeout", "0", prompts], "--timeout"),
        ("score", ["--preset", "nosuch", prompts], "unknown preset"),
        ("advantage", ["-e", "nosuch", prompts], "unknown estimator"),
        ("update", [*m, "--out", out, "--lr", "-1", prompts], "--lr"),
        ("update", [*m, "--out", out, "--loss", "bogus", prompts], "--loss"),
        ("update", [*m, "--out", out, "--agg", "bogus", prompts], "--agg"),
        ("update", [*m, "--out", out, "--keep-last", "0", prompts], "--keep-last"),
        ("update", [*m, "--out", out, "--kl-coef", "0.1", "--loss", "sft", prompts], "--kl-coef"),
        ("update", [*m, "--out", out, "--estimator", "nosuch", prompts], "unknown estimator"),
        ("update", [*m, "--out", out, "--max-tokens-per-micro-batch", "lots", prompts], "--max-tokens-per-micro-batch"),
        ("eval", ["--metric", "bogus", prompts], "--metric"),
        ("eval", ["--plot", "x.bmp", prompts], "x.bmp"),
        ("eval", ["--min-pass", "2", prompts], "--min-pass"),
        ("eval", ["--preset", "nosuch", prompts], "unknown preset"),
        ("eval", ["--format", "csv", prompts], "--format"),
        ("schema", ["nosuch"], "nosuch"),
        ("validate", ["--kind", "nosuch", prompts], "nosuch"),
        ("synth-tail", ["--task", "nosuch"], "nosuch"),
        ("decompose", ["--min-len", "3", prompts], "--min-len"),
        ("merge", ["--base", model, "--tuned", model, "--out", out, "--top-frac", "2"], "--top-frac"),
    ]


@pytest.fixture(scope="module")
def case_paths(tiny_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("usage")
    prompts = d / "prompts.jsonl"
    prompts.write_text('{"id": "a", "prompt": "2 + 2 ="}\n')
    return tiny_model, str(prompts), str(d / "out")


@pytest.mark.parametrize("index", range(len(_cases("M", "P", "O"))))
def test_a_usage_error_comes_at_once(case_paths, index):
    command, args, says = _cases(*case_paths)[index]
    argv = [command, *args]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd="/")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 2, (argv, proc.stderr)
    assert says in proc.stderr and proc.stderr.startswith(f"er {command}: "), proc.stderr
    assert result["heavy"] == [], f"er {' '.join(argv)} imported {result['heavy']} before refusing its flags"
    assert result["seconds"] < 1.0, f"er {' '.join(argv)}: {result['seconds']:.2f} s"
