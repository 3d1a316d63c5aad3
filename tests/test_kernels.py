"""The compiled CPU kernels (``wce/_fused/_kernels.c``) at their own edges.

References are the generic path in float64 (itself checked against 40-digit mpmath
values in ``test_losses.py``). Covered here: every vector tail and both softmax
layouts (few classes: eight rows per vector; many: one row at a time), the
polynomial exp and log1p across the float32 range, rows left to the generic
formulas (more of them than the kernel can list), thread splits on PyTorch's
OpenMP team and on pthreads, the grouping of short sigmoid rows, and the switch
that turns the kernels off.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import torch

import wce
from wce._fused import _native
from wce._fused import _torch as ft

Tensor = Any


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    assert _native.library() is not None, "the compiled kernels were not built"


def _grad(fn: Any, x: Tensor, *, fused: bool, upstream: Tensor | None = None) -> Any:
    xx = x.detach().clone().requires_grad_(True)
    if fused:
        out = fn(xx)
    else:
        with wce.use_fused_kernels(False):
            out = fn(xx)
    g = torch.ones_like(out) if upstream is None else upstream
    (gx,) = torch.autograd.grad(out, xx, g)
    return out.detach(), gx


def _close_to_float64(
    fn: Any, x: Tensor, rtol: float = 2e-6, atol: float = 1e-6, gatol: float = 1e-7
) -> None:
    """The kernel in float32 against the generic path in float64 (loss within
    ``atol``, gradient within ``gatol``, both within ``rtol``)."""
    lf, gf = _grad(fn, x, fused=True)
    lr, gr = _grad(fn, x.double(), fused=False)
    assert lf.dtype == torch.float32
    torch.testing.assert_close(lf.double(), lr, rtol=rtol, atol=atol)
    torch.testing.assert_close(gf.double(), gr, rtol=rtol, atol=gatol)


# ---------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------
CLASS_COUNTS = [
    1,
    2,
    7,
    8,
    9,
    15,
    16,
    17,
    31,
    32,
    33,
    40,
    64,
    65,
    95,
    96,
    97,
    128,
    129,
    1000,
]


@pytest.mark.parametrize("c", CLASS_COUNTS)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 23])
def test_softmax_every_tail_against_float64(n: int, c: int) -> None:
    x = torch.randn(n, c) * 4
    y = torch.randint(0, c, (n,))
    cw = torch.rand(c) + 0.5
    sw = torch.rand(n)

    def fn(a: Tensor) -> Tensor:
        return wce.softmax_cross_entropy(
            a, y, class_weight=cw.to(a.dtype), sample_weight=sw.to(a.dtype),
            reduction="none",
        )  # fmt: skip

    _close_to_float64(fn, x)


@pytest.mark.parametrize("c", [5, 32, 33, 300])
@pytest.mark.parametrize("red", ["none", "sum", "mean", "weighted_mean"])
def test_softmax_options_against_float64(c: int, red: str) -> None:
    n = 29
    x = torch.randn(n, c) * 3
    y = torch.randint(0, c, (n,))
    y[::4] = 0
    cost = torch.rand(c, c) + 0.1
    cw = torch.rand(c) + 0.5
    options: list[dict[str, Any]] = [
        {"label_smoothing": 0.2},
        {"ignore_index": 0, "class_weight": cw},
        {"weight_by": "prediction", "class_weight": cw},
        {"cost_matrix": cost, "ignore_index": 0},
    ]
    for kw in options:

        def fn(a: Tensor, kw: dict[str, Any] = kw) -> Tensor:
            k = {n: v.to(a.dtype) if torch.is_tensor(v) else v for n, v in kw.items()}
            return wce.softmax_cross_entropy(a, y, reduction=red, **k)

        _close_to_float64(fn, x)


@pytest.mark.parametrize("c", [6, 200])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_against_float64(c: int, gamma: float) -> None:
    from wce.longtail import softmax_focal_loss

    x = torch.randn(40, c) * 3
    x[0, 1] = 30.0  # p_y near 1: (1 - p)^gamma of the others' mass
    y = torch.randint(0, c, (40,))
    y[0] = 1

    def fn(a: Tensor) -> Tensor:
        return softmax_focal_loss(a, y, gamma=gamma, reduction="none")

    _close_to_float64(fn, x)


def test_softmax_exp_over_the_float32_range() -> None:
    # differences to the max from 0 to past float32's smallest exp, both layouts
    for c in (3, 100):
        d = torch.linspace(0.0, 100.0, 64)
        x = torch.zeros(64, c)
        x[:, 1:] = -d[:, None]
        y = torch.ones(64, dtype=torch.int64)  # the label far below the max
        _close_to_float64(
            lambda a, y=y: wce.softmax_cross_entropy(a, y, reduction="none"), x,
            rtol=1e-6,
        )  # fmt: skip


@pytest.mark.parametrize("c", [4, 50])
@pytest.mark.parametrize("inplace", [False, True])
def test_more_non_finite_rows_than_the_kernel_lists(
    c: int, inplace: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_native, "BAD_CAPACITY", 2)
    x = torch.randn(30, c)
    x[3, 1] = torch.inf
    x[7, :] = -torch.inf
    x[11, 0] = torch.nan
    x[12, 2] = torch.inf
    x[20, :] = -torch.inf
    y = torch.randint(0, c, (30,))
    y[y == 3] = 0
    y[7] = 3  # ignored: an all -inf row that is not counted
    cw = torch.rand(c) + 0.5

    def fn(a: Tensor) -> Tensor:
        return wce.softmax_cross_entropy(
            a * 1, y, class_weight=cw, ignore_index=3, reduction="none",
            inplace_backward=inplace,
        )  # fmt: skip

    lf, gf = _grad(fn, x, fused=True)
    lg, gg = _grad(fn, x, fused=False)
    torch.testing.assert_close(lf, lg, equal_nan=True, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gf, gg, equal_nan=True, rtol=1e-6, atol=1e-6)
    assert torch.isnan(lf[11]) and torch.isinf(lf[20]) and lf[7] == 0


def test_threads_and_openmp_team_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _native.uses_openmp(), "PyTorch's OpenMP runtime was not found"
    x = torch.randn(4099, 37)
    y = torch.randint(0, 37, (4099,))
    z = torch.randn(3001, 70)
    t = (torch.rand(3001, 70) < 0.2).float()

    def both() -> tuple[Tensor, ...]:
        a, ga = _grad(lambda v: wce.softmax_cross_entropy(v, y, reduction="sum"), x,
                      fused=True)  # fmt: skip
        b, gb = _grad(lambda v: wce.sigmoid_cross_entropy(v, t, reduction="sum"), z,
                      fused=True)  # fmt: skip
        return a, ga, b, gb

    base = both()
    lib = _native.library()
    old = torch.get_num_threads()
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            for got, want in zip(both(), base, strict=True):
                torch.testing.assert_close(got, want, rtol=1e-6, atol=0.0)
        torch.set_num_threads(old)
        lib.wce_use_openmp(None, None, None)  # pthreads
        assert not _native.uses_openmp()
        for got, want in zip(both(), base, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=0.0)
    finally:
        torch.set_num_threads(old)
        omp = _native._torch_openmp()
        assert omp is not None
        lib.wce_use_openmp(*omp)


# ---------------------------------------------------------------------------
# sigmoid
# ---------------------------------------------------------------------------
def test_sigmoid_exp_and_log1p_over_the_float32_range() -> None:
    z = torch.linspace(-95.0, 95.0, 761)[:, None].repeat(1, 3)
    t = torch.tensor([0.0, 1.0, 0.3]).expand(761, 3).contiguous()
    pw = torch.tensor([2.0, 0.5, 3.0])

    def fn(a: Tensor) -> Tensor:
        return wce.sigmoid_cross_entropy(
            a, t.to(a.dtype), pos_weight=pw.to(a.dtype), reduction="none"
        )

    lf, gf = _grad(fn, z, fused=True)
    lr, gr = _grad(fn, z.double(), fused=False)
    # relative precision of every loss (down to 1e-41 ones) and of the gradient in
    # the tails, where sigmoid(z) is near 0 or 1; near the gradient's zero (about
    # z = 0.25 for the third column) only absolute precision can be asked
    torch.testing.assert_close(lf.double(), lr, rtol=2e-6, atol=1e-40)
    torch.testing.assert_close(gf.double(), gr, rtol=2e-6, atol=1e-7)
    tails = z.abs() >= 5
    torch.testing.assert_close(gf.double()[tails], gr[tails], rtol=2e-6, atol=1e-40)


@pytest.mark.parametrize("shape", [(1, 1), (5000, 1), (4097, 3), (9, 4100)])
@pytest.mark.parametrize("red", ["none", "mean", "weighted_mean"])
def test_sigmoid_groups_of_short_rows(shape: tuple[int, int], red: str) -> None:
    a, k = shape
    z = torch.randn(a, k) * 3
    t = (torch.rand(a, k) < 0.3).float()
    t[::7] = -1.0
    kw = {
        "pos_weight": torch.rand(k) + 0.5,
        "class_weight": torch.rand(k) + 0.5,
        "sample_weight": torch.rand(a),
        "ignore_index": -1,
    }

    def fn(x: Tensor) -> Tensor:
        k2 = {n: v.to(x.dtype) if torch.is_tensor(v) else v for n, v in kw.items()}
        return wce.sigmoid_cross_entropy(x, t.to(x.dtype), reduction=red, **k2)

    _close_to_float64(fn, z)


@pytest.mark.parametrize("k", [1, 8, 9, 16, 17, 24, 40, 4100])
def test_sigmoid_blocks_with_and_without_extreme_logits(k: int) -> None:
    # Blocks whose logits all stay within |z| <= 87 take a short form, the others
    # (and a pair of blocks holding one) the general one; scatter extreme logits
    # over every lane position so that both forms, and their mix, meet the
    # float64 reference. Rows of k labels are grouped, so k = 1 and 9 also leave
    # tails behind pairs of blocks.
    n = max(2, 8192 // k)
    z = torch.randn(n, k) * 4
    hit = torch.rand(n, k) < 0.02
    z[hit] = torch.tensor([86.9, -86.9, 87.5, -87.5, 95.0, -120.0])[
        torch.randint(0, 6, (int(hit.sum()),))
    ]
    t = torch.rand(n, k).round()
    pw = torch.rand(k) * 3 + 0.5

    def fn(a: Tensor) -> Tensor:
        return wce.sigmoid_cross_entropy(
            a, t.to(a.dtype), pos_weight=pw.to(a.dtype), reduction="none"
        )

    _close_to_float64(fn, z, atol=1e-40, gatol=1e-40)


@pytest.mark.parametrize("special", [float("inf"), float("-inf"), float("nan")])
def test_sigmoid_non_finite_logits_next_to_ordinary_ones(special: float) -> None:
    z = torch.randn(64, 24)
    z[5, 3] = special
    z[40, 17] = special
    t = torch.rand(64, 24).round()
    w = torch.ones(64, 24)
    w[40, 17] = 0.0  # a label that weighs nothing: zero loss and gradient

    def fn(a: Tensor) -> Tensor:
        return wce.sigmoid_cross_entropy(
            a, t.to(a.dtype), sample_weight=w.to(a.dtype), reduction="none"
        )

    lf, gf = _grad(fn, z, fused=True)
    lr, gr = _grad(fn, z.double(), fused=False)
    torch.testing.assert_close(lf.double(), lr, rtol=2e-6, atol=1e-7, equal_nan=True)
    torch.testing.assert_close(gf.double(), gr, rtol=2e-6, atol=1e-7, equal_nan=True)
    assert float(lf[40, 17]) == 0.0 and float(gf[40, 17]) == 0.0
    # the neighbours of the special logit are ordinary numbers
    assert bool(torch.isfinite(lf[5, :3]).all()) and bool(
        torch.isfinite(gf[5, 4:]).all()
    )


@pytest.mark.parametrize("huge", [True, False])
@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_fresh_gradient_buffers_with_and_without_huge_pages(
    loss: str, huge: bool
) -> None:
    # gradients of 8 MiB: a fresh mapping, advised for huge pages or mapped by
    # each thread in one call; either way the values are the reference's
    n, c = 4096, 512
    x = torch.randn(n, c) * 3
    y = torch.randint(0, c, (n,))
    t = (torch.rand(n, c) < 0.2).float()

    def fn(a: Tensor) -> Tensor:
        if loss == "softmax":
            return wce.softmax_cross_entropy(a, y, reduction="sum")
        return wce.sigmoid_cross_entropy(a, t.to(a.dtype), reduction="sum")

    _native.use_hugepages(huge)
    try:
        _close_to_float64(fn, x)
    finally:
        _native.use_hugepages(True)


def test_sigmoid_labels_of_other_dtypes_are_read_as_float() -> None:
    z = torch.randn(33, 5)
    t = torch.rand(33, 5) < 0.4
    for lab in (t, t.to(torch.uint8), t.to(torch.int64)):
        _close_to_float64(
            lambda a, lab=lab: wce.sigmoid_cross_entropy(a, lab, reduction="sum"), z
        )


# ---------------------------------------------------------------------------
# the switch
# ---------------------------------------------------------------------------
def test_environment_variable_turns_the_kernels_off() -> None:
    code = (
        "import torch, wce\n"
        "from wce._fused import _native\n"
        "assert _native.library() is None\n"
        "x = torch.randn(4, 3, requires_grad=True)\n"
        "wce.softmax_cross_entropy(x, torch.tensor([0, 1, 2, 0])).backward()\n"
        "print('ok')\n"
    )
    env = {**os.environ, "WCE_NO_NATIVE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True,
        check=True, timeout=300,
    )  # fmt: skip
    assert out.stdout.strip() == "ok"


def test_kernel_and_chunked_path_agree_on_large_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = torch.randn(3000, 257)
    y = torch.randint(0, 257, (3000,))

    def fn(a: Tensor) -> Tensor:
        return wce.softmax_cross_entropy(a, y, label_smoothing=0.1)

    lk, gk = _grad(fn, x, fused=True)
    monkeypatch.setattr(_native, "supports", lambda *t: False)
    with ft.chunk_elements(10000):
        lc, gc = _grad(fn, x, fused=True)
    torch.testing.assert_close(lk, lc, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(gk, gc, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("c", [12, 40, 5000])
def test_label_smoothing_with_a_large_common_offset(c: int) -> None:
    # the smoothing term sums x_j - max: no cancellation against the offset
    x = 1000.0 + torch.randn(9, c) * 3
    y = torch.randint(0, c, (9,))

    def fn(a: Tensor) -> Tensor:
        return wce.softmax_cross_entropy(a, y, label_smoothing=0.3, reduction="none")

    _close_to_float64(fn, x, rtol=1e-6)


@pytest.mark.parametrize("c", [8, 32, 64, 96, 97, 128, 1000, 5000])
def test_many_equal_exponentials_next_to_the_maximum(c: int) -> None:
    # one logit at 0, the rest equal: summing many equal small exponentials into
    # a running float sum that holds the 1 rounds the same way each time, and
    # the error grows with the class count; the sums must not lose it
    x = torch.zeros(16, c)
    x[:, 1:] = -torch.linspace(2.0, 12.0, 16)[:, None]
    y = torch.ones(16, dtype=torch.int64)
    _close_to_float64(
        lambda a: wce.softmax_cross_entropy(a, y, reduction="none"), x, rtol=1e-6
    )


def test_rows_of_huge_finite_logits_are_not_taken_for_nan_rows() -> None:
    # +-3e38 in one row: a float sum of the row overflows to inf - inf, which
    # must not flag the row as holding a NaN (more such rows than the kernel
    # can list would then be lost)
    n, c = 1100, 128 + 3
    x = torch.randn(n, c)
    x[:, 0], x[:, 9] = 3e38, -3e38
    y = torch.randint(10, c, (n,))  # losses near 3e38: still float32 numbers
    _close_to_float64(lambda a: wce.softmax_cross_entropy(a, y, reduction="none"), x)


def test_many_classes_keep_relative_precision() -> None:
    # 32,000 exponentials summed per row: float partial sums go to double often
    x = torch.randn(3, 32000) * 2
    y = torch.tensor([0, 17, 31999])
    lf, gf = _grad(lambda a: wce.softmax_cross_entropy(a, y, reduction="none"), x,
                   fused=True)  # fmt: skip
    lr, gr = _grad(lambda a: wce.softmax_cross_entropy(a, y, reduction="none"),
                   x.double(), fused=False)  # fmt: skip
    torch.testing.assert_close(lf.double(), lr, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(gf.double(), gr, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 2_000_000), (2_000_000, 1)])
@pytest.mark.parametrize("red", ["sum", "weighted_mean"])
def test_sigmoid_long_rows_keep_the_sum_precise(
    shape: tuple[int, int], red: str
) -> None:
    # float partial sums go to double every 512 labels, also within a row
    z = torch.randn(*shape) * 2
    t = (torch.rand(*shape) < 0.3).float()
    sw = torch.rand(*shape)
    got = wce.sigmoid_cross_entropy(z, t, sample_weight=sw, reduction=red)
    with wce.use_fused_kernels(False):
        want = wce.sigmoid_cross_entropy(
            z.double(), t.double(), sample_weight=sw.double(), reduction=red
        )
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=0.0)


def test_focal_loss_down_to_subnormal_values() -> None:
    from wce.longtail import softmax_focal_loss

    # p_y near 1 and a small gamma: losses near float32's smallest numbers
    x = torch.zeros(8, 5)
    x[:, 0] = torch.linspace(14.0, 21.0, 8)
    y = torch.zeros(8, dtype=torch.int64)
    _close_to_float64(
        lambda a: softmax_focal_loss(a, y, gamma=3.0, reduction="none"), x, rtol=1e-5
    )


@pytest.mark.parametrize("loss", ["softmax", "focal", "sigmoid"])
@pytest.mark.parametrize("fused", [True, False])
def test_rows_that_carry_no_weight_get_a_zero_gradient(loss: str, fused: bool) -> None:
    # the loss of an ignored or zero-weight row does not depend on its logits, so
    # its gradient is 0, also where those logits are NaN or inf
    from wce.longtail import softmax_focal_loss

    x = torch.randn(5, 4)
    x[1] = torch.nan
    x[2, 3] = torch.inf
    x[3] = -torch.inf
    y = torch.tensor([0, 1, -1, 2, 3])
    sw = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])

    def fn(a: Tensor) -> Tensor:
        if loss == "softmax":
            return wce.softmax_cross_entropy(a, y, sample_weight=sw, ignore_index=-1)
        if loss == "focal":
            return softmax_focal_loss(a, y, sample_weight=sw, ignore_index=-1)
        t = torch.tensor([0.0, 1.0, -1.0, 1.0, 0.0])[:, None].expand(5, 4)
        return wce.sigmoid_cross_entropy(a, t, sample_weight=sw, ignore_index=-1)

    value, g = _grad(fn, x, fused=fused)
    assert torch.isfinite(value)
    assert torch.all(g[1:4] == 0)
    assert torch.isfinite(g).all()


def test_rows_that_carry_no_weight_get_a_zero_gradient_in_jax() -> None:
    import jax
    import jax.numpy as jnp

    x = jnp.array([[0.5, -1.0, 2.0], [jnp.nan, 0.0, 1.0], [1.0, jnp.inf, 0.0]])
    y = jnp.array([0, 1, -1])
    sw = jnp.array([1.0, 0.0, 1.0])
    g = jax.grad(
        lambda a: wce.softmax_cross_entropy(a, y, sample_weight=sw, ignore_index=-1)
    )(x)
    assert bool(jnp.all(g[1:] == 0)) and bool(jnp.all(jnp.isfinite(g)))
    assert float(jnp.abs(g[0]).sum()) > 0
