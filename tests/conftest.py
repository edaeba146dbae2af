"""Session fixtures shared by every test area."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A tiny Qwen2 model + tokenizer built locally once per test session."""
    from er.tiny import build_tiny

    return build_tiny(str(tmp_path_factory.mktemp("tiny") / "model"))
