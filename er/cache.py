"""er's cache directory: `$ER_CACHE`, else `$XDG_CACHE_HOME/er`, else `~/.cache/er`.

It holds what is costly to rebuild and safe to lose: the real model the tests use (`models/`) and the
tokenizer classes transformers picked (`tokenizer-class/`, `er.tokenizer_memo`).
"""

from __future__ import annotations

import os


def cache_dir(*parts: str) -> str:
    root = os.environ.get("ER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "er")
    return os.path.join(root, *parts)
