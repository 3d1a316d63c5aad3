"""Shared fixtures: every backend, converters, and the cases from bug reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import jax
import pytest

jax.config.update("jax_enable_x64", True)

BACKENDS = ("numpy", "torch", "jax", "tensorflow")
# a copy of ../shared/cases/cases.json (scripts/test checks that it is current)
CASES_PATH = Path(__file__).resolve().parent / "data" / "cases.json"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def load_cases() -> list[dict]:
    """The cases from public bug reports (tests/data/cases.json)."""
    with CASES_PATH.open() as f:
        return json.load(f)
