"""bench/gpu.py (the prepared GPU script): its arguments and its checkpoint staging, checked without a GPU."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gpu = _load()


def test_defaults_run_every_part_at_gpu_sizes_on_the_real_model():
    from real_model import model_dir

    args = gpu.parse_args([])
    assert args.model == model_dir() and not args.cpu
    assert args.parts == ["sample", "update", "reload", "serve", "lora"] and args.sizes == gpu.SIZES["gpu"]


def test_cpu_quick_selects_tiny_sizes_and_a_subset_of_parts():
    args = gpu.parse_args(["/some/model", "--cpu", "--quick", "--parts", "update"])
    assert args.model == "/some/model" and args.cpu and args.parts == ["update"]
    assert args.sizes == gpu.SIZES["quick"] and args.sizes[0] < gpu.SIZES["gpu"][0]


def test_an_unknown_part_is_a_usage_error():
    with pytest.raises(SystemExit) as e:
        gpu.parse_args(["--parts", "sample,train"])
    assert e.value.code == 2


def test_without_cuda_and_without_cpu_it_says_so_in_one_line():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "/nowhere"], capture_output=True,
                          text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=300)
    assert proc.returncode == 1 and "no CUDA device" in proc.stderr and "--cpu --quick" in proc.stderr


def test_new_step_links_the_model_and_moves_latest_to_it(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    gpu.new_step(str(model), ckpt, 0)
    gpu.new_step(str(model), ckpt, 1)
    assert os.readlink(ckpt / "latest") == "step-1"
    assert (ckpt / "step-1" / "model.safetensors").read_bytes() == b"weights"
    assert not list(ckpt.glob(".*tmp"))
