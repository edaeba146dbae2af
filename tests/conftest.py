"""Session fixtures shared by every test area."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# pytest-xdist runs N workers side by side; torch's default of one thread per core in each of them
# oversubscribes the CPUs, and OpenMP threads spinning for a busy core made a forward pass 5x slower.
# Set before torch is imported, so the workers (and the commands they start) share the cores instead.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A tiny Qwen2 model + tokenizer built locally once per test session."""
    from er.tiny import build_tiny

    return build_tiny(str(tmp_path_factory.mktemp("tiny") / "model"))
