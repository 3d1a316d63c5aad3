"""Every case from tests/data/cases.json (a copy of ../shared/cases/cases.json),
on every backend that applies.

Each case is a small input on which another library gave a wrong value, a NaN, a
crash or a surprise; ``expected`` comes from a float64 or 60-digit reference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import wce

from ._arrays import grad, host, to
from .conftest import BACKENDS, load_cases

CASES = load_cases()
AUTODIFF = ("torch", "jax", "tensorflow")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    return value


def _labels(case: dict, backend: str) -> Any:
    labels = np.asarray(_decode(case["inputs"]["labels"]))
    logits = np.asarray(_decode(case["inputs"]["logits"]))
    if case["function"].startswith("softmax") and labels.ndim < logits.ndim:
        labels = labels.astype(np.int64)
    else:
        labels = labels.astype(np.float64)
    return to(backend, labels)


def _tolerance(case: dict) -> dict:
    dtype = case["options"].get("dtype")
    if dtype in ("float16", "bfloat16"):
        return {"rtol": 1e-5, "atol": 1e-6}
    return {"rtol": 1e-6, "atol": 1e-12}


def _run_loss(case: dict, backend: str) -> tuple[Any, Any]:
    """(value or gradient as NumPy, the raw output) for a loss case."""
    options = dict(case["options"])
    dtype = options.pop("dtype", None) or "float32"
    weight_dtype = options.pop("weight_dtype", None)
    if weight_dtype is not None:
        options["class_weight"] = to(backend, options["class_weight"], weight_dtype)
    fn = getattr(wce, case["function"])
    logits = to(backend, np.asarray(_decode(case["inputs"]["logits"])), dtype)
    labels = _labels(case, backend)

    def loss(x: Any) -> Any:
        return fn(x, labels, reduction=case["reduction"], **options)

    if case["check"] == "value":
        out = loss(logits)
        return host(out), out
    upstream = case.get("upstream_grad")
    return grad(backend, loss, logits, upstream).ravel(), None


def _applies(case: dict, backend: str) -> bool:
    return not (case["check"] == "grad" and backend not in AUTODIFF)


PARAMS = [
    pytest.param(case, backend, id=f"{case['id']}-{backend}")
    for case in CASES
    for backend in BACKENDS
    if _applies(case, backend)
]


@pytest.mark.parametrize(("case", "backend"), PARAMS)
def test_case(case: dict, backend: str) -> None:
    if case["function"] == "class_weights":
        _check_class_weights(case, backend)
        return
    if case["expected"] == "error":
        with pytest.raises((ValueError, TypeError)) as info:
            _run_loss(case, backend)
        _assert_clear_message(str(info.value))
        return
    got, _ = _run_loss(case, backend)
    expected = np.asarray(_decode(case["expected"]), dtype=np.float64)
    assert got.size == expected.size
    np.testing.assert_allclose(got.ravel(), expected.ravel(), **_tolerance(case))


def _check_class_weights(case: dict, backend: str) -> None:
    options = dict(case["options"])
    scheme = options.pop("scheme")
    labels = to(backend, np.asarray(case["inputs"]["labels"], dtype=np.int64))
    if "sample_weight" in options:
        options["sample_weight"] = to(backend, options["sample_weight"], "float64")

    def run() -> Any:
        return wce.class_weights(wce.class_counts(labels, **options), scheme=scheme)

    if case["expected"] == "error":
        with pytest.raises(ValueError) as info:
            run()
        _assert_clear_message(str(info.value))
        assert "class 2" in str(info.value)
        return
    np.testing.assert_allclose(host(run()), case["expected"], rtol=1e-6)


def _assert_clear_message(text: str) -> None:
    """An error names the argument and says how to fix it (the template)."""
    assert " must be " in text and "; " in text, text
    assert "\n" not in text


def test_every_case_is_run() -> None:
    """Each case id appears, so none is silently dropped by the filter above."""
    ran = {p.values[0]["id"] for p in PARAMS}
    assert ran == {c["id"] for c in CASES}


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_precision_cases_return_float32(backend: str) -> None:
    """R20: bf16 logits are computed, and returned, in float32."""
    case = next(c for c in CASES if c["id"] == "R20")
    _, out = _run_loss(case, backend)
    assert "float32" in str(out.dtype)
