"""DLER update-selective merging (arXiv 2510.15110 §4.6; rl-length-methods §1 "Update-selective merging").

    Delta = theta_tuned - theta_base
    M     = 1[|Delta| >= threshold],  threshold = the top-k% magnitude of |Delta|
    theta_merged = theta_base + s * (M * Delta)          k = 25 %, s = 0.7 (paper)

The paper does not say whether the top-k% threshold is taken per tensor or over all weights
(**reconstructed**): `scope="tensor"` keeps the top k% of each tensor, `scope="global"` the top k% of
all floating-point weights together. Keeping the top k% of n values means keeping
ceil(k * n) of them (at least one when k > 0); ties at the threshold are all kept (M uses >=).
Non-float tensors are copied from the tuned model (the tokenizer and config too), so the result
loads like the tuned model; a tuned tensor missing from the base is an error naming it (copied
unmerged it would carry the whole RL update, not the selected part). A write that fails (a full
disk) is one line, exit 1, with nothing left under the final name.

Memory: tensors are streamed one at a time with `safetensors.safe_open` from both models and written
shard by shard; at most one tensor of each model plus one output shard is held. The global threshold
is exact and found in two streaming passes: pass 1 builds a histogram of log2|Delta| over all
tensors (4096 bins between the global min and max exponents) to find the bin holding the k-th
largest value; pass 2 collects only the values inside that bin and selects the k-th largest exactly
with `numpy.partition`.

Worked (spec §1e): base [1, 2, 3, 4], tuned [1.1, 1.5, 3.02, 4.3], top 25 %, s = 0.7 ->
[1.0, 1.65, 3.0, 4.0].
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from typing import Iterator

import numpy as np

from er.errors import ErError, OutputError, UsageError

SHARD_BYTES = 2 * 1024**3


def _weight_files(path: str) -> dict[str, str]:
    """tensor name -> safetensors file of a save_pretrained directory (or a single .safetensors file)."""
    if os.path.isfile(path):
        files = [path]
        base = os.path.dirname(path)
    else:
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.isfile(index):
            with open(index) as f:
                wm = json.load(f)["weight_map"]
            return {k: os.path.join(path, v) for k, v in wm.items()}
        single = os.path.join(path, "model.safetensors")
        if not os.path.isfile(single):
            raise UsageError(f"{path}: no model.safetensors (or index) here")
        files, base = [single], path
    del base
    out = {}
    from safetensors import safe_open

    for f in files:
        with safe_open(f, framework="numpy") as h:
            for k in h.keys():
                out[k] = f
    return out


class _Reader:
    """Opens each safetensors file once and reads tensors by name (as float64 for floats)."""

    def __init__(self, files: dict[str, str]):
        from safetensors import safe_open

        self.files = files
        self._h = {f: safe_open(f, framework="pt") for f in set(files.values())}

    def get(self, name: str):
        return self._h[self.files[name]].get_tensor(name)

    def header(self, name: str) -> tuple[str, tuple[int, ...]]:
        """(safetensors dtype such as "BF16", shape) from the file header, without reading the data."""
        view = self._h[self.files[name]].get_slice(name)
        return view.get_dtype(), tuple(view.get_shape())


def _is_float(t) -> bool:
    return t.is_floating_point()


def _deltas(base: _Reader, tuned: _Reader, names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    for n in names:
        b, t = base.get(n), tuned.get(n)
        if _is_float(t) and b.shape == t.shape:
            yield n, (t.double() - b.double()).abs().numpy().ravel()


def keep_count(top_frac: float, n: int) -> int:
    if top_frac <= 0 or n == 0:
        return 0
    return min(n, max(1, math.ceil(top_frac * n - 1e-9)))


def kth_largest(values: np.ndarray, k: int) -> float:
    """The k-th largest of `values` (k >= 1), exactly."""
    return float(np.partition(values, len(values) - k)[len(values) - k])


def global_threshold(base: _Reader, tuned: _Reader, names: list[str], top_frac: float, bins: int = 4096) -> float:
    """Exact k-th largest |Delta| over all tensors, in two streaming passes (see module doc)."""
    lo, hi, total, zeros = math.inf, -math.inf, 0, 0
    for _, d in _deltas(base, tuned, names):
        total += d.size
        nz = d[d > 0]
        zeros += d.size - nz.size
        if nz.size:
            e = np.log2(nz)
            lo, hi = min(lo, float(e.min())), max(hi, float(e.max()))
    k = keep_count(top_frac, total)
    if k == 0:
        return math.inf
    if k > total - zeros:  # the threshold falls among the zero deltas
        return 0.0
    if hi <= lo:
        return float(2.0 ** hi)
    edges = np.linspace(lo, hi, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    for _, d in _deltas(base, tuned, names):
        nz = d[d > 0]
        if nz.size:
            counts += np.histogram(np.log2(nz), bins=edges)[0]
    above = np.cumsum(counts[::-1])[::-1]  # above[i] = values in bins >= i
    b = int(np.nonzero(above >= k)[0].max())  # the highest bin whose tail holds >= k values
    k_in_bin = k - (int(above[b + 1]) if b + 1 < bins else 0)
    lo_e, hi_e = edges[b], edges[b + 1]
    picked = []
    for _, d in _deltas(base, tuned, names):
        nz = d[d > 0]
        e = np.log2(nz)
        sel = (e >= lo_e) & ((e < hi_e) if b + 1 < bins else (e <= hi_e))
        if sel.any():
            picked.append(nz[sel])
    vals = np.concatenate(picked)
    return kth_largest(vals, k_in_bin)


def merge(base_path: str, tuned_path: str, out_path: str, top_frac: float = 0.25, scale: float = 0.7,
          scope: str = "tensor") -> dict:
    """Write the merged model to `out_path` (atomically: temp dir, then rename); returns a summary."""
    if not (0.0 <= top_frac <= 1.0):  # before torch: a bad flag is a usage error at once
        raise UsageError("--top-frac must be in [0, 1]")
    if scope not in ("tensor", "global"):
        raise UsageError("--scope must be tensor or global")
    import torch
    from safetensors.torch import save_file

    bfiles, tfiles = _weight_files(base_path), _weight_files(tuned_path)
    base, tuned = _Reader(bfiles), _Reader(tfiles)
    missing = [n for n in tfiles if n not in bfiles]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ErError(f"tensor {missing[0]}{more}: in --tuned but not in --base; a merge needs it in both "
                      "(is --base the model --tuned was trained from?)")
    names = list(tfiles)
    if os.path.lexists(out_path):
        raise UsageError(f"--out {out_path} exists; choose a new directory")
    float_names = []
    for n in names:
        (t_dtype, t_shape), (_, b_shape) = tuned.header(n), base.header(n)
        if t_dtype.startswith(("F", "BF")):  # F64/F32/F16/F8_*, BF16: the floating-point dtypes
            if b_shape != t_shape:
                raise ErError(f"tensor {n}: shape {b_shape} in --base but {t_shape} in --tuned")
            float_names.append(n)
    threshold = global_threshold(base, tuned, float_names, top_frac) if scope == "global" else None
    parent = os.path.dirname(os.path.abspath(out_path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-merge-", dir=parent)
    kept = total = 0
    try:
        shard: dict[str, torch.Tensor] = {}
        shard_bytes = 0
        weight_map: dict[str, str] = {}
        written: list[str] = []

        def flush():
            nonlocal shard, shard_bytes
            if shard:
                name = f"model-{len(written) + 1:05d}.safetensors"
                save_file(shard, os.path.join(tmp, name), metadata={"format": "pt"})
                for k in shard:
                    weight_map[k] = name
                written.append(name)
                shard, shard_bytes = {}, 0

        for n in tfiles:
            t = tuned.get(n)
            if n in float_names:
                b = base.get(n)
                delta = t.double() - b.double()
                mag = delta.abs()
                if scope == "tensor":
                    k = keep_count(top_frac, mag.numel())
                    thr = kth_largest(mag.numpy().ravel(), k) if k else math.inf
                else:
                    thr = threshold
                mask = mag >= thr
                kept += int(mask.sum())
                total += mag.numel()
                out = (b.double() + scale * torch.where(mask, delta, torch.zeros_like(delta))).to(t.dtype)
            else:
                out = t
            shard[n] = out.contiguous()
            shard_bytes += out.numel() * out.element_size()
            if shard_bytes >= SHARD_BYTES:
                flush()
        flush()
        if len(written) == 1:
            os.rename(os.path.join(tmp, written[0]), os.path.join(tmp, "model.safetensors"))
        else:
            with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)
        if os.path.isdir(tuned_path):  # config, tokenizer, generation config: from the tuned model
            for name in os.listdir(tuned_path):
                src = os.path.join(tuned_path, name)
                if (os.path.isfile(src) and not name.endswith(".safetensors")
                        and name != "model.safetensors.index.json" and not name.startswith("er_state")):
                    shutil.copy2(src, os.path.join(tmp, name))
        summary = {"base": base_path, "tuned": tuned_path, "out": out_path, "scope": scope,
                   "top_frac": top_frac, "scale": scale, "kept": kept, "weights": total,
                   "kept_frac": kept / total if total else 0.0}
        with open(os.path.join(tmp, "er_merge.json"), "w") as f:
            json.dump(summary, f, indent=2)
        if os.path.lexists(out_path):
            raise UsageError(f"--out {out_path} exists; choose a new directory")
        os.rename(tmp, out_path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError":  # a full disk, an I/O error
            raise OutputError(f"cannot write: {getattr(exc, 'strerror', None) or exc}", out_path) from None
        raise
    return summary
