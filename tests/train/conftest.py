"""Fixtures for the training tests (the session's `tiny_model` comes from tests/conftest.py)."""

from __future__ import annotations

import os
import shutil

import pytest

# The test machine's cores are shared; one intra-op thread per process is many times faster there than
# oversubscribed thread pools (and subprocesses inherit it).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def model_copy(tiny_model, tmp_path) -> str:
    """A private copy of the tiny model (for tests that compare paths or write beside it)."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model, dst)
    return str(dst)
