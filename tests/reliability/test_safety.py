"""Promise 7: safety. Completions and answers are untrusted text: no built-in reward executes or
`eval`s them, and a dotted `module:attr` plug-in is imported only when the user names it."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import jsonl, parse_jsonl, run_er, sample_record


def hostile_rows(marker) -> list[dict]:
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"\\boxed{{__import__('os').system('touch {marker}')}}",
        f"$\\boxed{{eval(\"open('{marker}', 'w')\")}}$",
        f"\\boxed{{exec('open(\"{marker}\", \"w\")')}}",
        "\\boxed{lambda: 1}",
    ]
    return [sample_record(f"h{i}", 0, 1, completion=p, answer=p) for i, p in enumerate(payloads)]


def test_no_builtin_reward_executes_a_completion(tmp_path):
    marker = tmp_path / "pwned"
    rows = hostile_rows(marker)
    from er.rewards import REWARDS

    names = [n for n in ("math", "format", "length") if n in REWARDS.names()]
    for name in names:
        proc = run_er("score", "-r", name, "--workers", "1", "--rejects", str(tmp_path / "rej.jsonl"), input=jsonl(rows))
        assert proc.returncode == 0, proc.stderr
    assert not marker.exists()


def test_registry_lookups_never_import_unnamed_user_modules(tmp_path):
    (tmp_path / "evil_plugin.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    code = ("from er.rewards import REWARDS; from er.advantages import ESTIMATORS; "
            "REWARDS.names(); ESTIMATORS.names(); REWARDS.get('math')")
    subprocess.run([sys.executable, "-c", code], check=True, env={**__import__("os").environ, **env})
    proc = run_er("score", "--list", env=env)
    assert proc.returncode == 0
    assert not (tmp_path / "imported").exists()
    run_er("score", "-r", "evil_plugin:x", input=b"", env=env)  # named explicitly: now it is imported
    assert (tmp_path / "imported").exists()


def test_the_verifier_does_not_sympify_raw_strings(tmp_path):
    # math-verify reads LaTeX through its grammar; a Python expression in a box is text, never run
    # (it may still extract a number from it, as it would from any text).
    marker = tmp_path / "pwned2"
    rows = [sample_record("a", 0, 1, answer="7", completion=f"\\boxed{{__import__('os').system('touch {marker}')}}")]
    out = parse_jsonl(run_er("score", "-r", "math", "--workers", "0", input=jsonl(rows), check=True).stdout)
    assert out[0]["correct"] is False
    assert not marker.exists()


PLANT = """
import os, pickle
class Boom:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
with open("{path}", "wb") as f:
    pickle.dump(Boom(), f)
"""


def test_no_pickle_is_ever_loaded_from_a_model_or_checkpoint_dir(tiny_model, tmp_path):
    import shutil

    marker = tmp_path / "unpickled"
    # 1. a model dir whose only weights are a pickle: refused with one line, nothing unpickled
    evil = tmp_path / "evil-model"
    shutil.copytree(tiny_model, evil)
    (evil / "model.safetensors").unlink()
    subprocess.run([sys.executable, "-c", PLANT.format(marker=marker, path=evil / "pytorch_model.bin")], check=True)
    prompts = b'{"id": "p", "prompt": "1 + 1 ="}\n'
    proc = run_er("sample", "-m", str(evil), "-n", "1", "--max-tokens", "2", "--backend", "transformers", input=prompts)
    assert proc.returncode == 2 and "no safetensors weights" in proc.stderr.decode()
    proc = run_er("update", "-m", str(evil), "--out", str(tmp_path / "ck"), "--loss", "sft",
                  input=b'{"prompt": "a", "completion": "b"}\n')
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr
    # 2. pickles planted beside real weights (optimizer.pt, training_args.bin, rng_state.pth) are ignored
    ckpt = tmp_path / "ck2"
    run_er("update", "-m", tiny_model, "--out", str(ckpt), "--loss", "sft", input=b'{"prompt": "a", "completion": "b"}\n',
           check=True)
    latest = ckpt / "latest"
    for name in ("optimizer.pt", "training_args.bin", "rng_state.pth", "scheduler.pt", "pytorch_model.bin"):
        subprocess.run([sys.executable, "-c", PLANT.format(marker=marker, path=latest / name)], check=True)
    run_er("update", "-m", tiny_model, "--out", str(ckpt), "--loss", "sft", "--resume",
           input=b'{"prompt": "a", "completion": "b"}\n', check=True)
    run_er("sample", "-m", str(latest), "-n", "1", "--max-tokens", "2", "--backend", "transformers", input=prompts,
           check=True)
    assert not marker.exists()
