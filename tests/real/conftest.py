"""The real pretrained model (SmolLM2-135M-Instruct) that `make real-model` builds into a cache.

`make test` builds it first and sets ER_REAL_MODEL_REQUIRED=1, so a missing model fails there instead of
being skipped; a bare `pytest` without it skips these tests with the command that builds it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from real_model import is_built, model_dir  # noqa: E402


@pytest.fixture(scope="session")
def real_model() -> str:
    if not is_built():
        message = f"the real model is not built at {model_dir()}: run `make real-model`"
        if os.environ.get("ER_REAL_MODEL_REQUIRED"):
            pytest.fail(message)
        pytest.skip(message)
    return model_dir()
