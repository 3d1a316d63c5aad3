"""class_counts, class_weights, pos_weight and ClassCounter.

Order: reference values, parity with scikit-learn, backends and Dask, invariants,
the streaming counter, errors.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wce
from wce.weights import NORMALIZATIONS, SCHEMES, ClassCounter

from ._arrays import host, to
from .conftest import load_cases

mpmath.mp.dps = 50


# ---------------------------------------------------------------------------
# An independent reference: the contract's formulas in 50-digit arithmetic
# ---------------------------------------------------------------------------
def _ref_scheme(n: list[int], scheme: str, beta: float, c: float) -> list:
    n_mp = [mpmath.mpf(v) for v in n]
    total = mpmath.fsum(n_mp)
    num = len(n_mp)
    f = [v / total for v in n_mp]
    if scheme == "inverse":
        return [1 / v for v in n_mp]
    if scheme == "balanced":
        return [total / (num * v) for v in n_mp]
    if scheme == "inverse_sqrt":
        return [1 / mpmath.sqrt(v) for v in n_mp]
    if scheme == "effective_number":
        b = mpmath.mpf(beta)
        return [(1 - b) / (1 - b**v) for v in n_mp]
    if scheme == "median_frequency":
        s = sorted(f)
        med = (s[(num - 1) // 2] + s[num // 2]) / 2
        return [med / v for v in f]
    assert scheme == "log"
    return [1 / mpmath.log(mpmath.mpf(c) + v) for v in f]


def reference(
    n: list[int],
    scheme: str,
    normalize: str | None,
    beta: float = 0.999,
    c: float = 1.02,
) -> np.ndarray:
    w = _ref_scheme(n, scheme, beta, c)
    if normalize == "sum_to_one":
        w = [v / mpmath.fsum(w) for v in w]
    elif normalize == "sum_to_classes":
        w = [len(w) * v / mpmath.fsum(w) for v in w]
    elif normalize == "mean_sample":
        denom = mpmath.fsum(a * b for a, b in zip(n, w, strict=True))
        w = [sum(n) * v / denom for v in w]
    return np.array([float(v) for v in w])


COUNTS = ([6, 3, 1], [900, 90, 10])


# ---------------------------------------------------------------------------
# Reference values
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("counts", COUNTS, ids=str)
@pytest.mark.parametrize("normalize", NORMALIZATIONS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_reference_values(
    counts: list[int], scheme: str, normalize: str | None
) -> None:
    got = wce.class_weights(np.array(counts), scheme=scheme, normalize=normalize)
    assert got.dtype == np.float64 and got.shape == (3,)
    np.testing.assert_allclose(got, reference(counts, scheme, normalize), rtol=1e-12)


def test_reference_values_by_hand() -> None:
    """A few values written out, as in the issue and the papers."""
    check = np.testing.assert_allclose
    check(wce.class_weights([6, 3, 1]), [5 / 9, 10 / 9, 10 / 3], rtol=1e-15)
    check(wce.class_weights([6, 3, 1], scheme="inverse"), [1 / 6, 1 / 3, 1.0])
    check(wce.class_weights([6, 3, 1], scheme="median_frequency"), [0.5, 1.0, 3.0])
    check(
        wce.class_weights([6, 3, 1], scheme="inverse", normalize="sum_to_classes"),
        [1 / 3, 2 / 3, 2.0],
    )
    check(
        wce.class_weights([900, 90, 10], scheme="balanced", normalize="sum_to_one"),
        np.array([1 / 900, 1 / 90, 1 / 10]) / (1 / 900 + 1 / 90 + 1 / 10),
    )
    check(
        wce.class_weights([900, 90, 10], scheme="log", c=1.02),
        1 / np.log(1.02 + np.array([0.9, 0.09, 0.01])),
        rtol=1e-14,
    )
    # effective number, beta = 0.99, n = 1: (1 - beta) / (1 - beta) = 1
    check(
        wce.class_weights([1, 2], scheme="effective_number", beta=0.99),
        [1.0, 0.01 / (1 - 0.99**2)],
        rtol=1e-12,
    )


def test_median_frequency_even_number_of_classes() -> None:
    # f = [0.4, 0.3, 0.2, 0.1]; median (0.3 + 0.2) / 2 = 0.25
    got = wce.class_weights([4, 3, 2, 1], scheme="median_frequency")
    np.testing.assert_allclose(got, [0.625, 0.25 / 0.3, 1.25, 2.5], rtol=1e-14)


@pytest.mark.parametrize(
    "case",
    [c for c in load_cases() if c["function"] == "class_weights"],
    ids=lambda c: c["id"],
)
def test_bug_report_cases(case: dict) -> None:
    """R21 (zero total sample weight), R21b (absent class), R21c (the formula)."""
    options = dict(case["options"])
    scheme = options.pop("scheme")
    counts = wce.class_counts(np.array(case["inputs"]["labels"]), **options)
    if case["expected"] == "error":
        with pytest.raises(
            ValueError,
            match=r"^counts must be positive for every "
            r"class .*got 0 for class 2 .*empty='zero'",
        ):
            wce.class_weights(counts, scheme=scheme)
        return
    np.testing.assert_allclose(
        wce.class_weights(counts, scheme=scheme), case["expected"], rtol=1e-12
    )


def test_r21_zero_total_weight_with_empty_zero() -> None:
    counts = wce.class_counts(
        [0, 0, 1, 1, 2, 2], num_classes=3, sample_weight=[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    )
    got = wce.class_weights(counts, empty="zero")
    np.testing.assert_allclose(got, [1.0, 1.0, 0.0])  # C = 2 present classes
    assert np.isfinite(got).all()


@pytest.mark.parametrize("normalize", NORMALIZATIONS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_empty_zero_leaves_the_class_out(scheme: str, normalize: str | None) -> None:
    """An empty class gets 0; the others are as if it did not exist."""
    got = wce.class_weights(
        [6, 0, 3, 1], scheme=scheme, normalize=normalize, empty="zero"
    )
    np.testing.assert_allclose(
        got[[0, 2, 3]], reference([6, 3, 1], scheme, normalize), rtol=1e-12
    )
    assert got[1] == 0.0


# ---------------------------------------------------------------------------
# Parity with scikit-learn
# ---------------------------------------------------------------------------
def test_sklearn_balanced_parity() -> None:
    from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

    rng = np.random.default_rng(0)
    y = rng.choice(5, size=500, p=[0.6, 0.2, 0.1, 0.07, 0.03])
    ours = wce.class_weights(wce.class_counts(y), scheme="balanced")
    np.testing.assert_allclose(
        ours, compute_class_weight("balanced", classes=np.arange(5), y=y), rtol=1e-13
    )
    np.testing.assert_allclose(
        ours[y], compute_sample_weight("balanced", y), rtol=1e-13
    )


def test_sklearn_balanced_parity_with_sample_weight() -> None:
    from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

    rng = np.random.default_rng(1)
    y = rng.choice(4, size=300, p=[0.7, 0.2, 0.07, 0.03])
    sw = rng.uniform(0.1, 3.0, size=300)
    ours = wce.class_weights(wce.class_counts(y, sample_weight=sw))
    theirs = compute_class_weight(
        "balanced", classes=np.arange(4), y=y, sample_weight=sw
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)
    # integer sample weights as a bootstrap: compute_sample_weight's `indices`
    idx = rng.integers(0, 300, size=300)
    reps = np.bincount(idx, minlength=300)
    ours = wce.class_weights(wce.class_counts(y, sample_weight=reps))
    np.testing.assert_allclose(
        ours[y], compute_sample_weight("balanced", y, indices=idx), rtol=1e-13
    )


# ---------------------------------------------------------------------------
# Every backend, Dask and a cluster
# ---------------------------------------------------------------------------
MASK = np.array([[[0, 1, 1], [2, 0, 0]], [[1, 1, 1], [0, 3, -100]]])


def test_counts_on_every_backend(backend: str) -> None:
    labels = to(backend, MASK, np.int64)
    counts = wce.class_counts(
        labels,
        num_classes=5,
        ignore_index=-100,
        sample_weight=to(backend, [1.0, 2.0], np.float64),
    )
    np.testing.assert_array_equal(host(counts), [5.0, 8.0, 1.0, 2.0, 0.0])
    assert host(counts).dtype == np.float64
    weights = wce.class_weights(counts, scheme="inverse", empty="zero")
    np.testing.assert_allclose(host(weights), [1 / 5, 1 / 8, 1.0, 0.5, 0.0])
    # every scheme, each with one normalisation, in turn
    for scheme, normalize in zip(SCHEMES, NORMALIZATIONS * 2, strict=False):
        got = wce.class_weights(
            to(backend, [900, 90, 10], np.int64), scheme=scheme, normalize=normalize
        )
        want = reference([900, 90, 10], scheme, normalize)
        np.testing.assert_allclose(host(got), want, rtol=1e-12)


def test_counts_keep_the_backend_and_types(backend: str) -> None:
    counts = wce.class_counts(to(backend, [0, 2, 2], np.int32))
    np.testing.assert_array_equal(host(counts), [1.0, 0.0, 2.0])
    if backend == "tensorflow":
        import tensorflow as tf

        assert isinstance(counts, tf.Tensor)
    elif backend == "torch":
        import torch

        assert isinstance(counts, torch.Tensor)
    elif backend == "jax":
        import jax

        assert isinstance(counts, jax.Array)
    else:
        assert isinstance(counts, np.ndarray)
    bools = wce.class_counts(to(backend, [True, False, True], np.bool_))
    np.testing.assert_array_equal(host(bools), [1.0, 2.0])


def test_pos_weight_on_every_backend(backend: str) -> None:
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]])
    got = wce.pos_weight(to(backend, y, np.float32))
    np.testing.assert_allclose(host(got), [1.0, 3.0, 1 / 3], rtol=1e-7)
    # labels on axis 1 of (N, C, H, W)
    other = np.ones_like(y)
    other[0, 0] = 0  # 11 positives, 1 negative
    seg = np.moveaxis(np.stack([y, other], axis=-1), -1, 1)  # (4, 2, 3)
    got = wce.pos_weight(to(backend, seg, np.int64), axis=1)
    np.testing.assert_allclose(host(got), [6 / 6, 1 / 11])


def test_traced_counts_and_weights() -> None:
    import jax
    import jax.numpy as jnp
    import tensorflow as tf

    def fn(lab: object) -> object:
        counts = wce.class_counts(lab, num_classes=4)
        return wce.class_weights(
            counts, scheme="median_frequency", normalize="mean_sample", empty="zero"
        )

    labels = np.array([0, 0, 0, 1, 2, 2])
    want = np.concatenate(
        [reference([3, 1, 2], "median_frequency", "mean_sample"), [0.0]]
    )
    np.testing.assert_allclose(
        np.asarray(jax.jit(fn)(jnp.asarray(labels))), want, rtol=1e-12
    )
    np.testing.assert_allclose(
        tf.function(fn)(tf.constant(labels)).numpy(), want, rtol=1e-12
    )


def test_traced_empty_class_gets_zero_weight() -> None:
    """Under jit the empty-class check cannot raise: the class gets weight 0."""
    import jax
    import jax.numpy as jnp

    got = jax.jit(wce.class_weights)(jnp.asarray([6.0, 0.0, 3.0, 1.0]))
    np.testing.assert_allclose(
        np.asarray(got),
        [
            *reference([6, 3, 1], "balanced", None)[:1],
            0.0,
            *reference([6, 3, 1], "balanced", None)[1:],
        ],
        rtol=1e-12,
    )


def test_dask_counts_stay_lazy() -> None:
    import dask
    import dask.array as da

    calls: list[int] = []

    def block(i: int) -> np.ndarray:
        calls.append(i)
        return np.array([0, 1, 1, 2, 2, 2]) if i else np.array([0, 0, 2, 0, 0, 0])

    parts = [
        da.from_delayed(dask.delayed(block)(i), shape=(6,), dtype=np.int64)
        for i in range(2)
    ]
    labels = da.concatenate(parts)
    counts = wce.class_counts(labels, num_classes=3)
    weights = wce.class_weights(counts)
    assert isinstance(counts, da.Array) and isinstance(weights, da.Array)
    assert counts.shape == (3,) and not calls
    np.testing.assert_array_equal(counts.compute(scheduler="sync"), [6.0, 2.0, 4.0])
    np.testing.assert_allclose(
        weights.compute(scheduler="sync"), reference([6, 2, 4], "balanced", None)
    )
    assert sorted(calls) == [0, 0, 1, 1]


def test_dask_counts_match_numpy() -> None:
    import dask.array as da

    rng = np.random.default_rng(2)
    mask = rng.integers(0, 6, size=(40, 8, 8))
    mask[mask == 5] = -1
    sw = rng.uniform(size=40)
    want = wce.class_counts(mask, ignore_index=-1, sample_weight=sw)
    lazy = wce.class_counts(
        da.from_array(mask, chunks=(3, 4, 8)),
        ignore_index=-1,
        sample_weight=da.from_array(sw, chunks=7),
    )
    assert np.isnan(lazy.shape[0])  # num_classes unknown until computed
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), want, rtol=1e-13)
    y = rng.integers(0, 2, size=(50, 3))
    np.testing.assert_allclose(
        wce.pos_weight(da.from_array(y, chunks=(7, 2))).compute(scheduler="sync"),
        wce.pos_weight(y),
        rtol=1e-13,
    )


def test_dask_dataframe_column() -> None:
    import dask.dataframe as dd
    import pandas as pd

    frame = pd.DataFrame({"y": [0, 1, 1, 2, 2, 2, 2], "w": [1.0] * 6 + [3.0]})
    ddf = dd.from_pandas(frame, npartitions=3)
    got = wce.class_counts(ddf["y"], sample_weight=ddf["w"])
    np.testing.assert_array_equal(got.compute(scheduler="sync"), [1.0, 2.0, 6.0])


def test_dask_local_cluster() -> None:
    """Counts computed by two worker processes on loopback equal NumPy's."""
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    rng = np.random.default_rng(3)
    labels = rng.choice(4, size=20_000, p=[0.85, 0.1, 0.04, 0.01])
    lazy = wce.class_counts(da.from_array(labels, chunks=2_500), num_classes=4)
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        future = client.compute(lazy)
        counts = future.result()
        weights = client.compute(wce.class_weights(lazy, normalize="mean_sample"))
        weights = weights.result()
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=4))
    np.testing.assert_allclose(
        weights,
        reference(np.bincount(labels).tolist(), "balanced", "mean_sample"),
        rtol=1e-12,
    )


# ---------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------
counts_strategy = st.lists(st.integers(1, 10**6), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(counts_strategy)
def test_balanced_and_mean_sample_sum_to_n(counts: list[int]) -> None:
    n = np.array(counts, dtype=np.float64)
    w = wce.class_weights(n, scheme="balanced")
    np.testing.assert_allclose((n * w).sum(), n.sum(), rtol=1e-12)
    for scheme in SCHEMES:
        w = wce.class_weights(n, scheme=scheme, normalize="mean_sample")
        np.testing.assert_allclose((n * w).sum(), n.sum(), rtol=1e-12)
        w = wce.class_weights(n, scheme=scheme, normalize="sum_to_classes")
        np.testing.assert_allclose(w.sum(), len(n), rtol=1e-12)
        w = wce.class_weights(n, scheme=scheme, normalize="sum_to_one")
        np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), min_size=1, max_size=40)
)
def test_integer_sample_weights_equal_repeated_labels(pairs: list) -> None:
    labels = np.array([p[0] for p in pairs])
    reps = np.array([p[1] for p in pairs])
    weighted = wce.class_counts(labels, num_classes=5, sample_weight=reps)
    repeated = wce.class_counts(np.repeat(labels, reps), num_classes=5)
    np.testing.assert_array_equal(weighted, repeated)
    if weighted.all():
        np.testing.assert_allclose(
            wce.class_weights(weighted), wce.class_weights(repeated), rtol=1e-15
        )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 10**5), min_size=2, max_size=10, unique=True))
def test_weights_grow_with_rarity(counts: list[int]) -> None:
    n = np.array(sorted(counts, reverse=True), dtype=np.float64)
    for scheme in SCHEMES:
        for normalize in NORMALIZATIONS:
            w = wce.class_weights(n, scheme=scheme, normalize=normalize, beta=0.9999)
            assert (np.diff(w) > 0).all(), (scheme, normalize, w)


def test_effective_number_limits() -> None:
    n = np.array([900.0, 90.0, 10.0, 1.0])
    near_one = wce.class_weights(n, scheme="effective_number", beta=1 - 1e-10)
    np.testing.assert_allclose(near_one, 1 / n, rtol=1e-6)
    np.testing.assert_allclose(
        wce.class_weights(n, scheme="effective_number", beta=1.0), 1 / n, rtol=0
    )
    near_zero = wce.class_weights(n, scheme="effective_number", beta=1e-12)
    np.testing.assert_allclose(near_zero, 1.0, rtol=1e-11)
    np.testing.assert_array_equal(
        wce.class_weights(n, scheme="effective_number", beta=0.0), 1.0
    )
    # and monotone in between: the spread grows with beta
    spreads = [
        np.ptp(np.log(wce.class_weights(n, scheme="effective_number", beta=b)))
        for b in (0.5, 0.9, 0.99, 0.999, 0.9999)
    ]
    assert (np.diff(spreads) > 0).all()


def test_counts_from_float32_counts_stay_float32() -> None:
    got = wce.class_weights(np.array([6.0, 3.0, 1.0], dtype=np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [5 / 9, 10 / 9, 10 / 3], rtol=1e-6)


# ---------------------------------------------------------------------------
# ClassCounter
# ---------------------------------------------------------------------------
LABELS = np.random.default_rng(4).choice(4, size=257, p=[0.6, 0.25, 0.1, 0.05])


def _batches(n: int = 32) -> list[np.ndarray]:
    return [LABELS[i : i + n] for i in range(0, len(LABELS), n)]


def test_counter_from_numpy_torch_jax_tf_batches(backend: str) -> None:
    counter = ClassCounter(4)
    for batch in _batches():
        assert counter.update(to(backend, batch)) is counter
    np.testing.assert_array_equal(counter.counts, np.bincount(LABELS))
    np.testing.assert_allclose(
        counter.weights(scheme="inverse_sqrt", normalize="sum_to_one"),
        reference(np.bincount(LABELS).tolist(), "inverse_sqrt", "sum_to_one"),
        rtol=1e-12,
    )


def test_counter_from_a_dataloader_tf_data_and_a_generator() -> None:
    import tensorflow as tf
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    want = np.bincount(LABELS)
    data = TensorDataset(torch.zeros(len(LABELS), 2), torch.from_numpy(LABELS))
    loader = DataLoader(data, batch_size=50)
    np.testing.assert_array_equal(
        ClassCounter(4).update_from(loader, select=1).counts, want
    )
    dataset = tf.data.Dataset.from_tensor_slices({"y": LABELS}).batch(64)
    np.testing.assert_array_equal(
        ClassCounter(4).update_from(dataset, select="y").counts, want
    )
    gen = (b.tolist() for b in _batches(10))
    np.testing.assert_array_equal(ClassCounter(4).update_from(gen).counts, want)
    gen = ({"labels": b} for b in _batches(10))
    pick: Callable = lambda b: b["labels"]  # noqa: E731
    np.testing.assert_array_equal(
        ClassCounter(4).update_from(gen, select=pick).counts, want
    )


def test_counters_merge_with_plus_and_sum_and_pickle() -> None:
    parts = [ClassCounter(4).update(b) for b in _batches(40)]
    merged = sum(parts[1:], parts[0])
    assert isinstance(merged, ClassCounter)
    np.testing.assert_array_equal(merged.counts, np.bincount(LABELS))
    np.testing.assert_array_equal(sum(parts).counts, np.bincount(LABELS))
    np.testing.assert_array_equal(
        (parts[0] + parts[1]).counts, parts[0].counts + parts[1].counts
    )
    restored = pickle.loads(pickle.dumps(merged))
    np.testing.assert_array_equal(restored.counts, merged.counts)
    assert merged.total == len(LABELS)
    n = np.bincount(LABELS)
    np.testing.assert_allclose(merged.pos_weight(), (n.sum() - n) / n)


def test_counter_weights_and_sample_weight_and_ignore() -> None:
    counter = ClassCounter(3, ignore_index=-1)
    counter.update([0, 1, -1, 2], sample_weight=[2.0, 1.0, 5.0, 1.0])
    counter.update(np.array([[0, 0], [-1, 2]]))
    np.testing.assert_array_equal(counter.counts, [4.0, 1.0, 2.0])
    np.testing.assert_allclose(
        counter.weights(), reference([4, 1, 2], "balanced", None)
    )
    assert "ClassCounter(3, counts=[4.0, 1.0, 2.0])" == repr(counter)


def test_counter_multilabel_pos_weight(backend: str) -> None:
    rng = np.random.default_rng(5)
    y = (rng.uniform(size=(90, 3)) < [0.5, 0.2, 0.05]).astype(np.int64)
    y[0] = 1  # every label has a positive
    counter = ClassCounter(3, multilabel=True)
    for i in range(0, 90, 20):
        counter.update(to(backend, y[i : i + 20]))
    np.testing.assert_allclose(
        counter.pos_weight(), host(wce.pos_weight(y)), rtol=1e-13
    )
    np.testing.assert_array_equal(counter.counts, y.sum(0))
    assert counter.total == 90
    weighted = ClassCounter(3, multilabel=True).update(
        y, sample_weight=np.full(90, 2.0)
    )
    np.testing.assert_allclose(weighted.pos_weight(), counter.pos_weight())
    seg = ClassCounter(3, multilabel=True, axis=1).update(
        y.reshape(9, 10, 3).transpose(0, 2, 1)
    )
    np.testing.assert_allclose(seg.pos_weight(), counter.pos_weight())


def test_class_counts_matches_the_counter_on_a_mask() -> None:
    rng = np.random.default_rng(6)
    mask = rng.integers(0, 7, size=(5, 16, 16))
    counter = ClassCounter(7)
    for m in mask:
        counter.update(m)
    np.testing.assert_array_equal(wce.class_counts(mask), counter.counts)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
def test_errors_class_counts() -> None:
    with pytest.raises(
        TypeError,
        match=r"^labels must be integer class ids, got "
        r"dtype float64; cast them to an integer dtype",
    ):
        wce.class_counts(np.array([0.0, 1.0]))
    with pytest.raises(
        ValueError,
        match=r"^labels must be class ids >= 0, got an "
        r"entry equal to -1; fix the labels, or pass ignore_index=",
    ):
        wce.class_counts([0, -1])
    with pytest.raises(
        ValueError,
        match=r"^labels must be class ids in \[0, 3\) for"
        r" num_classes=3, got an entry equal to 3; .*raise "
        r"num_classes",
    ):
        wce.class_counts([0, 3], num_classes=3)
    with pytest.raises(
        ValueError,
        match=r"^labels must be at least one class id "
        r"when num_classes is None, got 0 elements; pass "
        r"num_classes=C",
    ):
        wce.class_counts(np.zeros(0, dtype=int))
    with pytest.raises(
        ValueError,
        match=r"^num_classes must be a positive int or "
        r"None, got 0;",
    ):
        wce.class_counts([0], num_classes=0)
    with pytest.raises(
        TypeError,
        match=r"^num_classes must be a positive int or "
        r"None, got 2.0;",
    ):
        wce.class_counts([0], num_classes=2.0)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"^sample_weight must be non-negative and "
        r"finite .*got an entry equal to -1.0;",
    ):
        wce.class_counts([0, 1], sample_weight=[1.0, -1.0])
    with pytest.raises(
        ValueError,
        match=r"^sample_weight must be broadcastable to "
        r"the element shape \(2,\)",
    ):
        wce.class_counts([0, 1], sample_weight=[1.0, 1.0, 1.0])
    assert wce.class_counts(np.zeros(0, dtype=int), num_classes=2).tolist() == [0, 0]


def test_errors_class_counts_traced() -> None:
    import jax
    import jax.numpy as jnp

    with pytest.raises(
        TypeError,
        match=r"^num_classes must be an int when the "
        r"labels are traced \(jit/compile\), got None; pass "
        r"num_classes=C",
    ):
        jax.jit(wce.class_counts)(jnp.asarray([0, 1]))


def test_errors_dask() -> None:
    import dask.array as da

    with pytest.raises(
        TypeError,
        match=r"^labels must be integer class ids, got "
        r"dtype float64;",
    ):
        wce.class_counts(da.zeros(4, chunks=2))
    lazy = wce.class_counts(da.from_array(np.array([0, -5]), chunks=1))
    with pytest.raises(
        ValueError,
        match=r"^labels must be class ids >= 0, got an "
        r"entry equal to -5;",
    ):
        lazy.compute(scheduler="sync")
    empty = wce.class_counts(
        da.from_array(np.array([-1, -1]), chunks=1), ignore_index=-1
    )
    with pytest.raises(
        ValueError,
        match=r"^labels must be at least one class id "
        r"when num_classes is None, got no counted elements \(all "
        r"equal to ignore_index=-1\); pass num_classes=C",
    ):
        empty.compute(scheduler="sync")
    lazy = wce.pos_weight(da.from_array(np.array([[1, 0], [1, 0]]), chunks=1))
    with pytest.raises(ValueError, match=r"no positives for label 1;"):
        lazy.compute(scheduler="sync")


def test_errors_class_weights() -> None:
    with pytest.raises(
        ValueError,
        match=r"^scheme must be one of 'inverse', "
        r"'balanced', .*'log', got 'balance'; 'balanced' gives",
    ):
        wce.class_weights([1, 2], scheme="balance")
    with pytest.raises(
        ValueError,
        match=r"^normalize must be one of None, "
        r"'sum_to_one', 'sum_to_classes', 'mean_sample', got 'mean';",
    ):
        wce.class_weights([1, 2], normalize="mean")
    with pytest.raises(
        ValueError,
        match=r"^empty must be one of 'error', 'zero', "
        r"got 'skip';",
    ):
        wce.class_weights([1, 2], empty="skip")
    with pytest.raises(ValueError, match=r"^beta must be in \[0, 1\], got 1.5;"):
        wce.class_weights([1, 2], scheme="effective_number", beta=1.5)
    with pytest.raises(
        ValueError,
        match=r"^c must be a float > 1 \(so that "
        r"log\(c \+ f_c\) > 0\), got 1.0; pass a value such as 1.02",
    ):
        wce.class_weights([1, 2], scheme="log", c=1.0)
    with pytest.raises(TypeError, match=r"^c must be a float > 1, got '2';"):
        wce.class_weights([1, 2], scheme="log", c="2")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"^counts must be of shape \(C,\), one "
        r"count per class, got shape \(2, 1\);",
    ):
        wce.class_weights([[1], [2]])
    with pytest.raises(
        ValueError,
        match=r"^counts must be non-negative and finite, "
        r"got -1.0 for class 1;",
    ):
        wce.class_weights([1, -1])
    with pytest.raises(
        ValueError,
        match=r"^counts must be non-negative and finite, "
        r"got nan for class 0;",
    ):
        wce.class_weights([np.nan, 1.0])
    with pytest.raises(
        ValueError,
        match=r"^counts must be positive for at least one"
        r" class, got 0 for every class;",
    ):
        wce.class_weights([0, 0], empty="zero")
    with pytest.raises(
        ValueError,
        match=r"^counts must be positive for every class"
        r" \(the weights divide by n_c\), got 0 for classes 1, 3 "
        r"\(no samples, or zero total sample_weight\); give classes "
        r"1, 3 samples, drop them from num_classes, or pass "
        r"empty='zero' to give them weight 0$",
    ):
        wce.class_weights([5, 0, 2, 0])
    with pytest.raises(
        TypeError,
        match=r"^counts must be a real-valued array, got "
        r"dtype bool;",
    ):
        wce.class_weights([True, False])


def test_errors_pos_weight() -> None:
    with pytest.raises(
        ValueError,
        match=r"^labels must be at least one positive for"
        r" every label \(pos_weight divides by the positives\), got "
        r"no positives for label 1; drop label 1",
    ):
        wce.pos_weight(np.array([[1, 0], [0, 0]]))
    with pytest.raises(
        ValueError,
        match=r"^labels must be multi-hot targets in "
        r"\[0, 1\], got an entry equal to 2.0;",
    ):
        wce.pos_weight(np.array([[1, 2], [0, 1]]))
    with pytest.raises(ValueError, match=r"^axis must be in \[-2, 1\]"):
        wce.pos_weight(np.array([[1, 0], [0, 1]]), axis=2)
    with pytest.raises(
        TypeError,
        match=r"^labels must be multi-hot targets in "
        r"\[0, 1\], got dtype complex128;",
    ):
        wce.pos_weight(np.array([1j, 0]))


def test_errors_counter() -> None:
    with pytest.raises(
        TypeError,
        match=r"^num_classes must be a positive int, got "
        r"None;",
    ):
        ClassCounter(None)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"^ignore_index must be None with "
        r"multilabel=True, got -1;",
    ):
        ClassCounter(2, multilabel=True, ignore_index=-1)
    with pytest.raises(ValueError, match=r"^labels must be class ids in \[0, 2\)"):
        ClassCounter(2).update([0, 2])
    with pytest.raises(
        ValueError,
        match=r"^other must be a ClassCounter with "
        r"\(num_classes, multilabel, ignore_index\) = \(2, False, "
        r"None\), got \(3, False, None\);",
    ):
        ClassCounter(2) + ClassCounter(3)
    with pytest.raises(TypeError):
        ClassCounter(2) + 1  # type: ignore[operator]
    with pytest.raises(
        ValueError,
        match=r"^labels must be 3 labels on axis -1 "
        r"\(num_classes=3\), got shape \(2, 2\);",
    ):
        ClassCounter(3, multilabel=True).update(np.ones((2, 2)))
    with pytest.raises(
        ValueError,
        match=r"^labels must be multi-hot targets in "
        r"\[0, 1\], got an entry equal to -1.0;",
    ):
        ClassCounter(2, multilabel=True).update(np.array([[0, -1]]))
    with pytest.raises(
        ValueError,
        match=r"^sample_weight must be one weight per "
        r"row, shape \(2,\), got shape \(3,\);",
    ):
        ClassCounter(2, multilabel=True).update(
            np.ones((2, 2)), sample_weight=[1.0, 1.0, 1.0]
        )
    with pytest.raises(
        ValueError,
        match=r"^counts must be at least one positive "
        r"for every label .*got no positives for label 1;",
    ):
        ClassCounter(2).update([0, 0]).pos_weight()
    with pytest.raises(
        ValueError,
        match=r"^counts must be positive for every class"
        r" .*got 0 for class 1 ",
    ):
        ClassCounter(2).update([0, 0]).weights()
