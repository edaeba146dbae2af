"""An existing step-N is never overwritten: a repeated command continues the numbering.

`er update --out DIR` without `--resume` numbers its checkpoints after DIR's highest step-N (a new run
from -m); with `--resume` it continues DIR's latest checkpoint, and refuses when a newer step-N would
be the next name written. The project card's pipe is safe to repeat.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.helpers import ER, parse_jsonl
from tests.train.helpers import run_er as run_in_process

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from arith_task import problems  # noqa: E402

N_PROMPTS, G = 4, 2  # 8 samples a run, 4 a step: N = 2 steps per run


def digest(step_dir: Path) -> str:
    return hashlib.sha256((step_dir / "model.safetensors").read_bytes()).hexdigest()


def steps(ckpt: Path) -> list[int]:
    return sorted(int(p.name[5:]) for p in ckpt.iterdir() if p.name.startswith("step-"))


def the_card_pipe(work: Path, base: str) -> subprocess.CompletedProcess:
    """The README's pipe at small sizes; the first run starts from the base model, later ones from ckpt/latest."""
    er = " ".join(ER)
    script = f"""set -euo pipefail
        m=$(if [ -e ckpt/latest ]; then echo ckpt/latest; else echo {base}; fi)
        {er} sample -m $m prompts.jsonl -n {G} --max-tokens 8 --seed 1 --backend transformers -q \\
          | {er} score --reward dler --reward length:unit=chars,scale=-0.01 -q | {er} advantage -q \\
          | {er} update -m $m --out ckpt --batch-size {N_PROMPTS * G // 2} --lr 1e-3 --save-every 1 -q
    """
    proc = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc


def test_the_project_cards_pipe_run_twice_leaves_steps_1_to_2n_and_latest_at_the_newest(tiny_model, tmp_path):
    from er.sampling.policy import Watcher

    (tmp_path / "prompts.jsonl").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in problems(1, N_PROMPTS)))
    ckpt = tmp_path / "ckpt"
    first = parse_jsonl(the_card_pipe(tmp_path, tiny_model).stdout)
    assert [m["step"] for m in first] == [1, 2] and steps(ckpt) == [1, 2]
    watcher = Watcher(str(ckpt))  # a --watch sampler that took step-2
    watcher.accepted(watcher.poll())
    before = {n: (digest(ckpt / f"step-{n}"), os.stat(ckpt / f"step-{n}").st_ino) for n in (1, 2)}

    second = parse_jsonl(the_card_pipe(tmp_path, tiny_model).stdout)
    assert [m["step"] for m in second] == [3, 4]
    assert [m["checkpoint"] for m in second] == [str(Path("ckpt") / "step-3"), str(Path("ckpt") / "step-4")]
    assert steps(ckpt) == [1, 2, 3, 4] and os.readlink(ckpt / "latest") == "step-4"
    assert sorted(os.listdir(ckpt / "trainer-state")) == ["step-1", "step-2", "step-3", "step-4"]
    assert {n: (digest(ckpt / f"step-{n}"), os.stat(ckpt / f"step-{n}").st_ino) for n in (1, 2)} == before
    assert digest(ckpt / "step-3") != before[2][0]  # run 2 trained from step-2's weights onward
    assert watcher.poll() == str(ckpt / "step-4")  # the sampler sees the new step, never a rewritten one


def sft_rows(n: int) -> bytes:
    return b"".join(orjson.dumps({"prompt": f"copy {i % 5}:", "completion": f" {i % 5} {i % 3}"}) + b"\n"
                    for i in range(n))


def test_keep_last_after_a_rerun_keeps_the_new_steps_not_the_stale_ones(tiny_model, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    data = tmp_path / "sft.jsonl"
    data.write_bytes(sft_rows(8))
    args = ["update", "-m", tiny_model, "--out", ckpt, "--loss", "sft", "--batch-size", "2", "--save-every", "1",
            "--lr", "1e-3", "-q", data, "-o", tmp_path / "metrics.jsonl"]
    assert run_in_process(args, capsys)[0] == 0  # steps 1..4
    code, err = run_in_process([*args, "--keep-last", "2"], capsys)  # steps 5..8, the two newest kept
    assert code == 0, err
    assert "holds checkpoints up to step-4; this run's are step-5 on" in err
    assert steps(ckpt) == [7, 8] and os.readlink(ckpt / "latest") == "step-8"
    assert sorted(os.listdir(ckpt / "trainer-state")) == ["step-7", "step-8"]
    meta = orjson.loads((ckpt / "trainer-state" / "step-8" / "er_state.json").read_bytes())
    assert (meta["step"], meta["first_step"]) == (8, 4)


def test_resume_refuses_when_a_newer_step_would_be_overwritten(tmp_path):
    from er.errors import UsageError
    from er.train.outdir import first_step

    for n in (1, 2, 3):
        (tmp_path / f"step-{n}").mkdir()
    assert first_step(str(tmp_path), None) == 3
    assert first_step(str(tmp_path), 3) == 3
    with pytest.raises(UsageError, match="continues from step-2 .*but step-3 exists.*never overwritten"):
        first_step(str(tmp_path), 2)


def test_saving_over_an_existing_step_is_refused_and_leaves_it_as_it_was(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from er.errors import OutputError
    from er.train.checkpoint import save_checkpoint

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    out = tmp_path / "ckpt"
    save_checkpoint(model, tok, str(out), 1)
    before = digest(out / "step-1")
    with pytest.raises(OutputError, match="step-1 exists and a checkpoint is never overwritten"):
        save_checkpoint(model, tok, str(out), 1)
    assert digest(out / "step-1") == before and os.readlink(out / "latest") == "step-1"
    assert not [n for n in os.listdir(out) if n.startswith(".tmp")]
