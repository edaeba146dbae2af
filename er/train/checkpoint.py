"""Checkpoints: Hugging Face `save_pretrained` directories, written atomically (DESIGN.md, Checkpoints).

Layout of an output directory DIR:

    DIR/step-N/                  exactly a save_pretrained directory (config, safetensors weights,
                                 tokenizer): plain `vllm.LLM(DIR/step-N)` and `from_pretrained` load it
    DIR/trainer-state/step-N/    what only `er update --resume` reads, where no model loader looks:
        er_state.json            {"step": N, ...scalars: python/numpy RNG, optimizer param groups, counters}
        er_state.safetensors     tensors of the trainer state: optimizer moments, torch RNG
    DIR/latest -> step-N         a RELATIVE symlink, so `-m DIR/latest` is a model path everywhere

Why a sibling tree and not files beside the weights: vLLM loads every `*.safetensors` of a model
directory and fails on the optimizer moments, and tools that copy or upload a model directory would
carry the optimizer state (twice the weights' size with AdamW) along.

A save writes the trainer state into `DIR/trainer-state/.tmp-step-N-xxxx` and renames it to `step-N`,
then the model into `DIR/.tmp-step-N-xxxx` (every file fsynced) renamed to `DIR/step-N`, then replaces
`latest` (a new symlink under a temporary name, `os.replace`d over the old one). A checkpoint is complete
when both halves exist, so a kill -9 at any moment leaves the previous `latest` (and every complete
step-N) loadable and resumable; leftover `.tmp-*` entries are ignored and removed by the next writer.
An existing DIR/step-N is never overwritten: `save_checkpoint` refuses it, and `er update` numbers its
steps past DIR's highest (er.train.outdir); one writer at a time holds DIR (er.locking).
`keep_last=K` then removes all but the K newest complete checkpoints (never `latest`'s target), each
model directory renamed out of sight before it is deleted. No pickle is ever written or loaded: tensors
go to safetensors, everything else to JSON.

Checkpoints of the earlier layout (er_state.* inside step-N) are still read by `--resume`;
`old_layout_hint` says how to move their state so that vLLM loads them.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from typing import Any

from er.io import current_umask
from er.train.outdir import write_failures

STATE_DIR = "trainer-state"
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


def _remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def clean_temporaries(out_dir: str) -> None:
    """Remove leftovers of interrupted writes (`.tmp-step-*`, `.latest-*`, `.old-step-*`), in DIR and its state tree."""
    for folder in (out_dir, os.path.join(out_dir, STATE_DIR)):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.startswith((".tmp-step-", ".latest-", ".old-step-")):
                _remove(os.path.join(folder, name))


def state_dir(path: str) -> str:
    """Where the trainer state of the checkpoint `path` (DIR/step-N, or a link to it) lives."""
    real = os.path.realpath(path)
    return os.path.join(os.path.dirname(real), STATE_DIR, os.path.basename(real))


def _state_file(path: str, name: str) -> str | None:
    """The trainer-state file `name` of checkpoint `path`: the state tree first, else the old layout."""
    for folder in (state_dir(path), os.path.realpath(path)):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _make_tmp(parent: str, step: int) -> str:
    tmp = tempfile.mkdtemp(prefix=f".tmp-step-{step}-", dir=parent)
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; a checkpoint is an ordinary directory
    return tmp


def _ordinary_modes(path: str) -> None:
    """Give every file under `path` the mode the umask gives a new file.

    save_pretrained writes its weights through a private temporary file (mode 0600), so another
    user's sampler or evaluator on a shared machine could not read the checkpoint.
    """
    mode = 0o666 & ~current_umask()
    for root, _dirs, files in os.walk(path):
        for name in files:
            os.chmod(os.path.join(root, name), mode)


def _install(tmp: str, final: str) -> None:
    """Rename the finished `tmp` to `final`, moving an existing `final` aside first (for a trainer state: one
    left without its model directory by an interrupted save)."""
    parent = os.path.dirname(final)
    if os.path.lexists(final):
        old = tempfile.mkdtemp(prefix=f".old-{os.path.basename(final)}-", dir=parent)
        os.rename(final, os.path.join(old, "x"))
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(parent)


@write_failures
def save_checkpoint(model: Any, tokenizer: Any, out_dir: str, step: int, extra_state: dict | None = None,
                    state_dict: dict | None = None, keep_last: int | None = None) -> str:
    """Write DIR/step-N and DIR/trainer-state/step-N atomically, point DIR/latest at it, return the step-N path.

    `extra_state`: {"json": {...scalars...}, "tensors": {name: tensor}} (either part optional), written as
    er_state.json / er_state.safetensors in the state tree. `state_dict` overrides the model's own (e.g. a
    full state dict gathered from FSDP shards). `keep_last`: afterwards keep only the K newest checkpoints.
    """
    os.makedirs(out_dir, exist_ok=True)
    states = os.path.join(out_dir, STATE_DIR)
    os.makedirs(states, exist_ok=True)
    extra_state = extra_state or {}
    name = f"step-{step}"
    final = os.path.join(out_dir, name)
    if os.path.lexists(final):  # er update numbers its steps past DIR's (er.train.outdir): never reached there
        raise FileExistsError(errno.EEXIST, f"{final} exists and a checkpoint is never overwritten")
    tmp_state = _make_tmp(states, step)
    tmp = None
    try:
        tensors = extra_state.get("tensors") or {}
        if tensors:
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                      os.path.join(tmp_state, STATE_TENSORS))
        meta = dict(extra_state.get("json") or {})
        meta["step"] = int(step)
        with open(os.path.join(tmp_state, STATE_JSON), "w") as f:
            json.dump(meta, f)
        _ordinary_modes(tmp_state)
        _fsync_tree(tmp_state)
        tmp = _make_tmp(out_dir, step)
        kwargs = {"safe_serialization": True}
        if state_dict is not None:
            kwargs["state_dict"] = state_dict
        model.save_pretrained(tmp, **kwargs)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        _ordinary_modes(tmp)
        _fsync_tree(tmp)
        _install(tmp_state, os.path.join(states, name))
        tmp_state = None
        _install(tmp, final)
        tmp = None
    except BaseException:
        for leftover in (tmp_state, tmp):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)
        raise
    point_latest(out_dir, name)
    if keep_last is not None:
        prune(out_dir, keep_last)
    return final


def _retire(out_dir: str, name: str) -> None:
    """Remove checkpoint `name` of DIR: the model directory vanishes in one rename, then both halves go."""
    path = os.path.join(out_dir, name)
    if os.path.lexists(path):
        hidden = tempfile.mkdtemp(prefix=f".old-{name}-", dir=out_dir)
        os.rename(path, os.path.join(hidden, "x"))
        shutil.rmtree(hidden, ignore_errors=True)
    shutil.rmtree(os.path.join(out_dir, STATE_DIR, name), ignore_errors=True)


def prune(out_dir: str, keep_last: int) -> list[str]:
    """Remove all but the `keep_last` newest complete checkpoints of DIR (never `latest`'s target).

    Incomplete step directories newer than the oldest kept one are left alone (a writer may be
    finishing them); state directories whose model directory is gone are removed too. Returns the
    names removed.
    """
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    steps = sorted(((s, n) for n in os.listdir(out_dir) if (s := _step_of(n)) is not None
                    and is_complete(os.path.join(out_dir, n))), reverse=True)
    keep = {n for _s, n in steps[:keep_last]}
    link = os.path.join(out_dir, "latest")
    if os.path.islink(link):
        keep.add(os.path.basename(os.path.normpath(os.readlink(link))))
    removed = [n for _s, n in steps[keep_last:] if n not in keep]
    for name in removed:
        _retire(out_dir, name)
    oldest_kept = min((s for s, n in steps if n in keep), default=None)
    states = os.path.join(out_dir, STATE_DIR)
    if oldest_kept is not None and os.path.isdir(states):
        for name in os.listdir(states):
            s = _step_of(name)
            if s is not None and s < oldest_kept and not os.path.isdir(os.path.join(out_dir, name)):
                shutil.rmtree(os.path.join(states, name), ignore_errors=True)
    if removed:
        _fsync_dir(out_dir)
    return removed


def _step_of(name: str) -> int | None:
    m = _STEP_DIR.match(name)
    return int(m.group(1)) if m else None


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
    """Both halves are there: the model (config.json, or a LoRA adapter's) and its trainer state (either layout)."""
    model = any(os.path.isfile(os.path.join(path, n)) for n in ("config.json", "adapter_config.json"))
    return model and _state_file(path, STATE_JSON) is not None


def is_old_layout(path: str) -> bool:
    """Trainer state inside the model directory (er before the trainer-state tree): vLLM cannot load it."""
    return os.path.isfile(os.path.join(os.path.realpath(path), STATE_TENSORS))


def old_layout_hint(path: str) -> str:
    real = os.path.realpath(path)
    dest = state_dir(real)
    return (f"{path} holds er's trainer state beside the weights (the earlier layout; vLLM cannot load it): "
            f"mkdir -p {dest} && mv {real}/er_state.* {dest}/")


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
            step = _step_of(name)
            path = os.path.join(out_dir, name)
            if step is not None and step > best_step and is_complete(path):
                best, best_step = path, step
    return best


def checkpoint_step(path: str) -> int | None:
    """N when `path` (after resolving symlinks) is a directory named step-N, else None."""
    return _step_of(os.path.basename(os.path.realpath(path).rstrip("/")))


def read_step(path: str) -> int | None:
    """The training step of a checkpoint (its er_state.json, else a `step-N` name), or None."""
    state = _state_file(path, STATE_JSON)
    if state is not None:
        try:
            with open(state) as f:
                step = json.load(f).get("step")
            if isinstance(step, int):
                return step
        except (OSError, ValueError):
            pass
    return checkpoint_step(path)


def load_state(path: str) -> tuple[dict, dict]:
    """(json scalars, tensors) of a checkpoint's trainer state; tensors via safetensors (no pickle)."""
    meta_path = _state_file(path, STATE_JSON)
    if meta_path is None:
        raise FileNotFoundError(f"{path}: no trainer state ({os.path.join(state_dir(path), STATE_JSON)})")
    with open(meta_path) as f:
        meta = json.load(f)
    tensors: dict = {}
    tpath = os.path.join(os.path.dirname(meta_path), STATE_TENSORS)
    if os.path.isfile(tpath):
        from safetensors.torch import load_file

        tensors = load_file(tpath)
    return meta, tensors
