"""A tokenizer from a model directory without transformers' Auto machinery, once its class is known.

`AutoTokenizer.from_pretrained(path)` decides on a class from `config.json` and
`tokenizer_config.json`, then returns `that_class.from_pretrained(path)`. Importing the code that
decides (`transformers.models.auto`) imports torch, the model registry and scikit-learn: 6-9 s of
CPU at every start. A light command such as `er sample --server` (which needs no torch at all)
paid most of its step there.

So the class AutoTokenizer picked is remembered, in `er.cache.cache_dir("tokenizer-class")`, under
a key made of everything that decision reads: the transformers version, the bytes of `config.json`
and `tokenizer_config.json`, and the names of the directory's tokenizer and config files. The next
process whose key matches imports that one class (about 1 s) and calls its `from_pretrained`, the
very call AutoTokenizer ends with; a key that does not match takes the Auto path and remembers its
answer. What the memo cannot vouch for always takes the Auto path:

- remote code (`auto_map` in either file): the class lives outside transformers;
- a path, or a `config.json` `_name_or_path`, that matches transformers' own list of Hub ids it
  forces onto the plain tokenizers backend (`MODEL_IDS_TO_TOKENIZERS_BACKEND`, stored with each
  entry, so the check is transformers' own);
- a class outside transformers, or Mistral's format (`MistralCommonBackend`), whose choice reads
  other files.

The memo is a cache: an entry that cannot be written (a read-only home, a full disk) or read is
ignored, and the tokenizer loads the Auto way. Entries are written whole (`er.io.OutputFile`: a temporary file,
then a rename), so two processes that fill the same entry at once leave one valid file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.metadata
import os
from typing import Any

import orjson

from er.cache import cache_dir

# Files whose names go into the key: the tokenizer's and the config's, not the weights (whose names
# may change between checkpoints of one model without changing its tokenizer).
KEYED_SUFFIXES = (".json", ".model", ".txt", ".jinja", ".tiktoken")
DECIDING_FILES = ("config.json", "tokenizer_config.json")


def load(path: str, auto_load) -> Any:
    """The tokenizer of the local directory `path`: through the remembered class when the key
    matches, else `auto_load(path)` (AutoTokenizer), whose class is then remembered."""
    facts = _facts(path)
    if facts is None:
        return auto_load(path)
    key, name_or_paths = facts
    entry = _read(key)
    if entry is not None and not _forced_backend(name_or_paths, entry.get("patterns", [])):
        cls = _import(entry.get("module"), entry.get("class"))
        if cls is not None:
            return cls.from_pretrained(path)
    tokenizer = auto_load(path)
    _remember(key, type(tokenizer), name_or_paths)
    return tokenizer


def _facts(path: str) -> tuple[str, list[str]] | None:
    """The key of `path`'s class decision and the names AutoTokenizer matches against its Hub-id list;
    None when the memo must not be used (not a directory, remote code, unreadable files)."""
    if not os.path.isdir(path):
        return None
    h = hashlib.sha256()
    try:
        h.update(f"transformers {importlib.metadata.version('transformers')}\0".encode())
        names = sorted(n for n in os.listdir(path) if n.endswith(KEYED_SUFFIXES))
        h.update(orjson.dumps(names))
        parsed = {}
        for name in DECIDING_FILES:
            file = os.path.join(path, name)
            data = b""
            if os.path.isfile(file):
                with open(file, "rb") as f:
                    data = f.read()
                parsed[name] = orjson.loads(data)
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    except (OSError, ValueError, importlib.metadata.PackageNotFoundError):
        return None  # the Auto path then reports what is wrong, in its own words
    if any(not isinstance(v, dict) or "auto_map" in v for v in parsed.values()):
        return None
    config_name = parsed.get("config.json", {}).get("_name_or_path")
    name_or_paths = [str(path).lower()] + ([config_name.lower()] if isinstance(config_name, str) else [])
    return h.hexdigest(), name_or_paths


def _forced_backend(name_or_paths: list[str], patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for name in name_or_paths for p in patterns)


def _import(module: Any, name: Any):
    if not (isinstance(module, str) and isinstance(name, str) and module.startswith("transformers.")):
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _entry_path(key: str) -> str:
    return os.path.join(cache_dir("tokenizer-class"), f"{key}.json")


def _read(key: str) -> dict | None:
    try:
        with open(_entry_path(key), "rb") as f:
            entry = orjson.loads(f.read())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def _remember(key: str, cls: type, name_or_paths: list[str]) -> None:
    if not cls.__module__.startswith("transformers.") or cls.__name__ == "MistralCommonBackend":
        return
    from transformers.models.auto import tokenization_auto  # imported already: AutoTokenizer just ran

    patterns = list(getattr(tokenization_auto, "MODEL_IDS_TO_TOKENIZERS_BACKEND", []))
    if _forced_backend(name_or_paths, patterns):
        return
    from er.errors import ErError
    from er.io import OutputFile

    target = _entry_path(key)
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        out = OutputFile(target, flag="tokenizer memo")  # a temporary file beside it, renamed on commit
        try:
            out.write(orjson.dumps({"module": cls.__module__, "class": cls.__name__, "patterns": patterns}))
        except BaseException:
            out.discard()
            raise
        out.commit()
    except (OSError, ErError):
        pass  # a cache that cannot be written costs the next process the Auto import, nothing else
