"""Fixtures for the training tests (the session's `tiny_model` comes from tests/conftest.py)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def model_copy(tiny_model, tmp_path) -> str:
    """A private copy of the tiny model (for tests that compare paths or write beside it)."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model, dst)
    return str(dst)
