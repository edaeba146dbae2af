"""Whether two model directories are the same model up to their weights: architecture, shapes, tokenizer.

A checkpoint continues a model only if it has the model's architecture, tensor shapes and
tokenizer; otherwise training or sampling with one where the other is expected goes silently wrong
(`er update --resume` would train the checkpoint's model while the user named another; a `--watch`
sampler would encode prompts and decode token ids with the first model's tokenizer). Used by
`er update --resume` (the `--out` checkpoint against `-m`) and `er sample --watch` (each new
checkpoint against the one sampling).

Compared (the first difference is reported, e.g. `another architecture: hidden_size 96 vs 64`):
- config.json: `model_type`, `architectures` and the fields that fix tensor shapes (SHAPE_FIELDS),
  also inside a `text_config`, each only where both files have it (a saved config may spell out a
  default its source left implicit). A directory without config.json (e.g. an adapter) is not
  compared here.
- the tokenizer: the token -> id map, added tokens included, and the end-of-sequence id. Identical
  tokenizer files are the same tokenizer without loading them; a directory without tokenizer files is
  not compared.
Weights themselves, the chat template and generation settings may differ: that is what training changes.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import orjson

SHAPE_FIELDS = ("model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers",
                "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
                "num_experts", "num_local_experts", "moe_intermediate_size", "tie_word_embeddings")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt",
                   "special_tokens_map.json", "added_tokens.json")


def _config(path: str) -> dict | None:
    try:
        with open(os.path.join(path, "config.json"), "rb") as f:
            parsed = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def config_difference(a: str, b: str) -> str | None:
    """The first SHAPE_FIELDS value that differs between the config.json of `a` and of `b`, or None."""
    ca, cb = _config(a), _config(b)
    if ca is None or cb is None:
        return None
    pairs = [("", ca, cb)]
    if isinstance(ca.get("text_config"), dict) and isinstance(cb.get("text_config"), dict):
        pairs.append(("text_config.", ca["text_config"], cb["text_config"]))
    for prefix, x, y in pairs:
        for key in SHAPE_FIELDS:
            if x.get(key) is not None and y.get(key) is not None and x[key] != y[key]:
                return f"another architecture: {prefix}{key} {_show(x[key])} vs {_show(y[key])}"
    return None


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _files_digest(path: str) -> str | None:
    """A digest of the tokenizer files of `path` (None when it has none of them)."""
    h = hashlib.sha256()
    found = False
    for name in TOKENIZER_FILES:
        try:
            with open(os.path.join(path, name), "rb") as f:
                data = f.read()
        except OSError:
            continue
        found = True
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest() if found else None


def vocabulary(tokenizer: Any) -> tuple[dict, Any]:
    """What a sampler or trainer depends on: the token -> id map (added tokens included) and the EOS id."""
    return tokenizer.get_vocab(), tokenizer.eos_token_id


def tokenizer_difference(a: str, b: str, a_tokenizer: Any = None) -> str | None:
    """How the tokenizer of `b` differs from that of `a` (or the loaded `a_tokenizer`), or None."""
    da, db = _files_digest(a), _files_digest(b)
    if da == db or db is None or (da is None and a_tokenizer is None):
        return None  # the same files, or one side without a tokenizer of its own (an adapter) to compare
    from er.models import load_tokenizer

    ta = a_tokenizer if a_tokenizer is not None else load_tokenizer(a)
    (va, ea), (vb, eb) = vocabulary(ta), vocabulary(load_tokenizer(b))
    if len(va) != len(vb):
        return f"another tokenizer: {len(va)} vs {len(vb)} tokens"
    if va != vb:
        differ = sum(1 for token, i in va.items() if vb.get(token) != i)
        return f"another tokenizer: {differ} of its {len(va)} tokens differ"
    if ea != eb:
        return f"another tokenizer: end-of-sequence id {ea} vs {eb}"
    return None


def model_difference(a: str, b: str, a_tokenizer: Any = None) -> str | None:
    """How model directory `b` differs from `a` in architecture, shapes or tokenizer (None: the same model)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return None
    return config_difference(a, b) or tokenizer_difference(a, b, a_tokenizer)
