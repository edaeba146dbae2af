"""Checkpoints: Hugging Face `save_pretrained` directories, written atomically (DESIGN.md, Checkpoints).

Layout of an output directory DIR:

    DIR/step-N/            model (safetensors) + config + tokenizer, loadable by transformers and vLLM
        er_state.json      {"step": N, ...scalars: python/numpy RNG, optimizer param groups, counters}
        er_state.safetensors  tensors of the trainer state: optimizer moments, torch RNG
    DIR/latest -> step-N   a RELATIVE symlink, so `-m DIR/latest` is a model path everywhere

A checkpoint is written into `DIR/.tmp-step-N-xxxx`, every file fsynced, then renamed to `step-N`;
`latest` is replaced by creating a new symlink under a temporary name and `os.replace`-ing it over
the old one. A kill -9 at any moment therefore leaves the previous `latest` (and every complete
step-N) loadable; leftover `.tmp-*` entries are ignored and removed by the next writer. No pickle is
ever written or loaded: tensors go to safetensors, everything else to JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from typing import Any

STATE_JSON = "er_state.json"
STATE_TENSORS = "er_state.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def _fsync_tree(path: str) -> None:
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_temporaries(out_dir: str) -> None:
    """Remove leftovers of interrupted writes (`.tmp-step-*`, `.latest-*`)."""
    if not os.path.isdir(out_dir):
        return
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if name.startswith(".tmp-step-"):
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith(".latest-") or name.startswith(".old-step-"):
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
            else:
                shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(model: Any, tokenizer: Any, out_dir: str, step: int, extra_state: dict | None = None,
                    state_dict: dict | None = None) -> str:
    """Write DIR/step-N atomically, point DIR/latest at it, and return the step-N path.

    `extra_state`: {"json": {...scalars...}, "tensors": {name: tensor}} (either part optional), written
    beside the model as er_state.json / er_state.safetensors. `state_dict` overrides the model's own
    (e.g. a full state dict gathered from FSDP shards).
    """
    os.makedirs(out_dir, exist_ok=True)
    extra_state = extra_state or {}
    tmp = tempfile.mkdtemp(prefix=f".tmp-step-{step}-", dir=out_dir)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a checkpoint is an ordinary directory
        kwargs = {"safe_serialization": True}
        if state_dict is not None:
            kwargs["state_dict"] = state_dict
        model.save_pretrained(tmp, **kwargs)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        tensors = extra_state.get("tensors") or {}
        if tensors:
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                      os.path.join(tmp, STATE_TENSORS))
        meta = dict(extra_state.get("json") or {})
        meta["step"] = int(step)
        with open(os.path.join(tmp, STATE_JSON), "w") as f:
            json.dump(meta, f)
        _fsync_tree(tmp)
        final = os.path.join(out_dir, f"step-{step}")
        if os.path.lexists(final):  # re-saving a step (e.g. after a resume): move the old one aside first
            old = tempfile.mkdtemp(prefix=f".old-step-{step}-", dir=out_dir)
            os.rename(final, os.path.join(old, "x"))
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    point_latest(out_dir, f"step-{step}")
    return final


def point_latest(out_dir: str, target: str) -> None:
    """Atomically make DIR/latest a relative symlink to `target` (a name inside DIR)."""
    link = os.path.join(out_dir, "latest")
    tmp_link = os.path.join(out_dir, f".latest-{os.getpid()}")
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(target, tmp_link)
    os.replace(tmp_link, link)
    _fsync_dir(out_dir)


def is_complete(path: str) -> bool:
    return os.path.isfile(os.path.join(path, STATE_JSON)) and os.path.isfile(os.path.join(path, "config.json"))


def latest_checkpoint(out_dir: str) -> str | None:
    """The newest complete checkpoint of DIR: `latest`'s target, else the highest complete step-N."""
    link = os.path.join(out_dir, "latest")
    if os.path.islink(link) or os.path.isdir(link):
        target = os.path.realpath(link)
        if is_complete(target):
            return target
    best, best_step = None, -1
    if os.path.isdir(out_dir):
        for name in os.listdir(out_dir):
            m = _STEP_DIR.match(name)
            path = os.path.join(out_dir, name)
            if m and int(m.group(1)) > best_step and is_complete(path):
                best, best_step = path, int(m.group(1))
    return best


def checkpoint_step(path: str) -> int | None:
    """N when `path` (after resolving symlinks) is a directory named step-N, else None."""
    m = _STEP_DIR.match(os.path.basename(os.path.realpath(path).rstrip("/")))
    return int(m.group(1)) if m else None


def read_step(path: str) -> int | None:
    """The training step of a checkpoint (its er_state.json, else a `step-N` name), or None."""
    real = os.path.realpath(path)
    try:
        with open(os.path.join(real, STATE_JSON)) as f:
            step = json.load(f).get("step")
            if isinstance(step, int):
                return step
    except (OSError, ValueError):
        pass
    return checkpoint_step(real)


def load_state(path: str) -> tuple[dict, dict]:
    """(json scalars, tensors) of a checkpoint's trainer state; tensors via safetensors (no pickle)."""
    real = os.path.realpath(path)
    with open(os.path.join(real, STATE_JSON)) as f:
        meta = json.load(f)
    tensors: dict = {}
    tpath = os.path.join(real, STATE_TENSORS)
    if os.path.isfile(tpath):
        from safetensors.torch import load_file

        tensors = load_file(tpath)
    return meta, tensors
