"""The fused PyTorch path: same values and gradients as the generic path.

Order: float64 references, parity with the generic path for every keyword, odd
shapes and chunk boundaries, gradients (gradcheck, upstream scaling, in-place
mode), dispatch, and ``linear_cross_entropy`` against torch's unfused layer. Every
test runs on the compiled kernels and on the pure-PyTorch chunked path (the
fallback where the kernels are not built or do not apply).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

F = torch.nn.functional

import wce  # noqa: E402
from wce._fused import _linear, _native  # noqa: E402
from wce._fused import _torch as ft  # noqa: E402

Tensor = Any
REDUCTIONS = ("none", "sum", "mean", "weighted_mean")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The compiled kernels, or the pure-PyTorch chunked path they fall back to."""
    mode = str(getattr(request, "param", "compiled"))
    if mode == "compiled":
        assert _native.library() is not None, "the compiled kernels were not built"
    else:
        monkeypatch.setattr(_native, "supports", lambda *t: False)
    return mode


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # every test runs on both paths; softmax tests pick theirs through `method`
    if "method" not in metafunc.fixturenames:
        metafunc.parametrize("kernel", ["compiled", "chunked"], indirect=True)


@pytest.fixture(params=["compiled", "exp", "softmax"])
def method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The compiled kernel, and both chunked PyTorch kernels: written-out exp (few
    classes) and torch's softmax."""
    if request.param != "compiled":
        monkeypatch.setattr(_native, "supports", lambda *t: False)
        small = 10**9 if request.param == "exp" else 0
        monkeypatch.setattr(ft, "SMALL_CLASSES", small)
    return str(request.param)


def run(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    fused: bool = True,
    upstream: Tensor | None = None,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Loss and gradient of ``fn`` at ``x``, on the fused or the generic path."""
    xx = x.detach().clone().requires_grad_(True)
    with _path(fused, chunk):
        out = fn(xx)
    g = torch.ones_like(out) if upstream is None else upstream
    (gx,) = torch.autograd.grad(out, xx, g)
    return out.detach(), gx


class _path:
    def __init__(self, fused: bool, chunk: int | None) -> None:
        self.stack: list[Any] = []
        if not fused:
            self.stack.append(ft.disabled())
        if chunk is not None:
            self.stack.append(ft.chunk_elements(chunk))

    def __enter__(self) -> None:
        for c in self.stack:
            c.__enter__()

    def __exit__(self, *exc: object) -> None:
        for c in reversed(self.stack):
            c.__exit__(*exc)


def assert_same(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    chunk: int | None = None,
    upstream: Tensor | None = None,
    rtol: float = 1e-6,
) -> None:
    """Fused and generic agree in value and gradient."""
    lf, gf = run(fn, x, chunk=chunk, upstream=upstream)
    lg, gg = run(fn, x, fused=False, upstream=upstream)
    scale = float(x.abs().max()) * 1e-7 if x.dtype == torch.float32 else 1e-15
    torch.testing.assert_close(lf, lg, rtol=rtol, atol=scale)
    torch.testing.assert_close(gf, gg, rtol=rtol, atol=max(scale, 1e-8))


def _cases(c: int, n: int) -> Iterator[dict[str, Any]]:
    cw = torch.rand(c) + 0.5
    yield {}
    yield {"class_weight": cw}
    yield {"class_weight": cw, "weight_by": "prediction"}
    yield {"cost_matrix": torch.rand(c, c)}
    yield {"class_weight": cw, "cost_matrix": torch.rand(c, c)}
    yield {"sample_weight": torch.rand(n)}
    yield {"label_smoothing": 0.1, "class_weight": cw}
    yield {"ignore_index": -100, "class_weight": cw, "sample_weight": torch.rand(n)}
    yield {"ignore_index": -100, "sample_weight": torch.rand(n)}
    yield {"ignore_index": -100, "cost_matrix": torch.rand(c, c)}


# ---------------------------------------------------------------------------
# float64 references
# ---------------------------------------------------------------------------
def reference_softmax(
    x: Tensor, y: Tensor, *, cw: Tensor | None, eps: float, red: str
) -> Tensor:
    """Class-weighted smoothed cross-entropy written from the formulas."""
    c = x.shape[-1]
    logp = torch.log_softmax(x.double(), -1)
    q = F.one_hot(y, c).double() * (1 - eps) + eps / c
    loss = -(q * logp).sum(-1)
    w = torch.ones_like(loss) if cw is None else cw.double()[y]
    if red == "none":
        return w * loss
    if red == "sum":
        return (w * loss).sum()
    den = w.sum() if red == "weighted_mean" else torch.tensor(float(len(y)))
    return (w * loss).sum() / den


@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_softmax_matches_float64_reference(method: str, red: str, eps: float) -> None:
    x = torch.randn(29, 13) * 4
    y = torch.randint(0, 13, (29,))
    cw = torch.rand(13) + 0.1
    with ft.chunk_elements(13 * 4):
        out = wce.softmax_cross_entropy(
            x, y, class_weight=cw, label_smoothing=eps, reduction=red
        )
    ref = reference_softmax(x, y, cw=cw, eps=eps, red=red)
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)


def test_sigmoid_matches_float64_reference() -> None:
    z = torch.randn(31, 5) * 6
    t = (torch.rand(31, 5) > 0.7).float()
    pw = torch.rand(5) * 4
    out = wce.sigmoid_cross_entropy(z, t, pos_weight=pw, reduction="sum")
    ref = F.binary_cross_entropy_with_logits(
        z.double(), t.double(), pos_weight=pw.double(), reduction="sum"
    )
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=0.0)


# ---------------------------------------------------------------------------
# parity with the generic path, every keyword
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("c", [3, 40])
def test_softmax_keywords_match_generic(method: str, red: str, c: int) -> None:
    n = 23
    x = torch.randn(n, c) * 3
    labels = torch.randint(0, c, (n,))
    labels[[2, 9]] = -100
    for kw in _cases(c, n):
        y = labels if "ignore_index" in kw else labels.clamp(min=0)

        def fn(a: Tensor, y: Tensor = y, kw: dict = kw) -> Tensor:
            return wce.softmax_cross_entropy(a, y, reduction=red, **kw)

        assert_same(fn, x, chunk=3 * c)


@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_softmax_probability_labels_match_generic(red: str, eps: float) -> None:
    x = torch.randn(17, 6) * 2
    t = torch.softmax(torch.randn(17, 6) * 2, -1)
    t[3] = torch.nn.functional.one_hot(torch.tensor(2), 6).float()
    cw = torch.rand(6) + 0.5
    for kw in ({}, {"class_weight": cw}, {"cost_matrix": torch.rand(6, 6)}):

        def fn(a: Tensor, kw: dict = kw) -> Tensor:
            return wce.softmax_cross_entropy(
                a, t, reduction=red, label_smoothing=eps, **kw
            )

        assert_same(fn, x, chunk=6 * 5)


@pytest.mark.parametrize("red", REDUCTIONS)
def test_sigmoid_keywords_match_generic(red: str) -> None:
    n, c = 19, 7
    z = torch.randn(n, c) * 4
    t = (torch.rand(n, c) > 0.6).float()
    t[1, 2] = -1.0
    pw, cw = torch.rand(c) * 3, torch.rand(c) + 0.2
    cases: list[dict[str, Any]] = [
        {},
        {"pos_weight": pw},
        {"pos_weight": 2.5, "class_weight": cw},
        {"pos_weight": pw, "sample_weight": torch.rand(n)},
        {"pos_weight": pw, "sample_weight": torch.rand(n, c)},
        {"pos_weight": pw, "label_smoothing": 0.2},
        {"pos_weight": pw, "ignore_index": -1, "class_weight": cw},
    ]
    for kw in cases:
        tt = t if "ignore_index" in kw else t.clamp(min=0)
        soft = torch.rand(n, c)

        def fn(a: Tensor, tt: Tensor = tt, kw: dict = kw) -> Tensor:
            return wce.sigmoid_cross_entropy(a, tt, reduction=red, **kw)

        def fn_soft(a: Tensor, kw: dict = kw, soft: Tensor = soft) -> Tensor:
            kw = {k: v for k, v in kw.items() if k != "ignore_index"}
            return wce.sigmoid_cross_entropy(a, soft, reduction=red, **kw)

        assert_same(fn, z, chunk=5)  # chunks split rows: column blocks
        assert_same(fn_soft, z, chunk=2 * c)


# ---------------------------------------------------------------------------
# odd shapes, chunk boundaries, special values
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "c", "chunk"), [(1, 5, None), (6, 1, 2), (7, 4, 8), (8, 4, 8), (9, 4, 1)]
)
def test_softmax_odd_shapes(method: str, n: int, c: int, chunk: int | None) -> None:
    x = torch.randn(n, c)
    y = torch.randint(0, c, (n,))
    cw = torch.rand(c) + 0.5
    for red in REDUCTIONS:

        def fn(a: Tensor, red: str = red) -> Tensor:
            return wce.softmax_cross_entropy(a, y, class_weight=cw, reduction=red)

        assert_same(fn, x, chunk=chunk)


def test_softmax_one_dimensional_logits() -> None:
    x = torch.randn(5)

    def fn(a: Tensor) -> Tensor:
        return wce.softmax_cross_entropy(a, torch.tensor(3), reduction="none")

    assert_same(fn, x)


@pytest.mark.parametrize("red", REDUCTIONS)
def test_all_rows_ignored_give_zero_with_zero_gradient(method: str, red: str) -> None:
    x = torch.randn(4, 6)
    y = torch.full((4,), -100)

    def fn(a: Tensor) -> Tensor:
        return wce.softmax_cross_entropy(a, y, ignore_index=-100, reduction=red)

    loss, g = run(fn, x, chunk=12)
    assert torch.all(loss == 0) and torch.all(g == 0)
    assert_same(fn, x, chunk=12)


@pytest.mark.parametrize("inplace", [False, True])
def test_masked_and_infinite_logits(method: str, inplace: bool) -> None:
    x = torch.randn(9, 6) * 3
    x[0, 2] = -torch.inf  # a masked class
    x[1, :] = -torch.inf  # a row of masked classes, ignored
    x[4, 3] = -70.0  # a label probability below float32's normal range
    x[4, 0] = 40.0
    y = torch.tensor([1, 5, 0, 2, 3, 4, 5, 0, 1])
    for red in REDUCTIONS:

        def fn(a: Tensor, red: str = red) -> Tensor:
            return wce.softmax_cross_entropy(
                a * 1, y, ignore_index=5, reduction=red, inplace_backward=inplace
            )

        assert_same(fn, x, chunk=12)


@pytest.mark.parametrize("c", [3, 300])
def test_confident_predictions_keep_relative_precision(method: str, c: int) -> None:
    x = torch.randn(6, c)
    x[:, 1] = torch.tensor([12.0, 18.0, 25.0, 40.0, 0.0, 9.0])
    y = torch.tensor([1, 1, 1, 1, 0, 1])

    def fn(a: Tensor) -> Tensor:
        return wce.softmax_cross_entropy(a, y, reduction="none")

    lf, _ = run(fn, x)
    lg, _ = run(fn, x, fused=False)
    torch.testing.assert_close(lf, lg, rtol=1e-5, atol=0.0)


def test_sigmoid_infinite_logits() -> None:
    z = torch.randn(6, 3)
    z[0, 0], z[1, 1], z[2, 2] = torch.inf, -torch.inf, torch.inf
    t = torch.zeros(6, 3)
    t[0, 0] = t[1, 1] = 1.0
    for red in REDUCTIONS:

        def fn(a: Tensor, red: str = red) -> Tensor:
            return wce.sigmoid_cross_entropy(a, t, pos_weight=2.0, reduction=red)

        assert_same(fn, z, chunk=4)


def test_class_axis_one() -> None:
    x = torch.randn(3, 6, 4, 5)
    y = torch.randint(0, 6, (3, 4, 5))
    t = (torch.rand(3, 6, 4, 5) > 0.5).float()
    sw, pw = torch.rand(3), torch.rand(6)
    for red in REDUCTIONS:

        def soft(a: Tensor, red: str = red) -> Tensor:
            return wce.softmax_cross_entropy(
                a, y, axis=1, sample_weight=sw, reduction=red
            )

        def sig(a: Tensor, red: str = red) -> Tensor:
            return wce.sigmoid_cross_entropy(
                a, t, axis=1, pos_weight=pw, sample_weight=sw, reduction=red
            )

        assert_same(soft, x, chunk=18)
        assert_same(sig, x, chunk=7)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes(dtype: Any) -> None:
    x = torch.randn(11, 7).to(dtype)
    y = torch.randint(0, 7, (11,))
    cw = torch.rand(7) + 0.5
    lf, gf = run(lambda a: wce.softmax_cross_entropy(a, y, class_weight=cw), x)
    lg, gg = run(
        lambda a: wce.softmax_cross_entropy(a, y, class_weight=cw), x, fused=False
    )
    assert lf.dtype == lg.dtype and gf.dtype == gg.dtype == dtype
    torch.testing.assert_close(lf, lg, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(gf, gg)


def test_forward_without_gradient_matches() -> None:
    x = torch.randn(13, 9)
    y = torch.randint(0, 9, (13,))
    t = torch.rand(13, 9)
    with torch.no_grad(), ft.chunk_elements(20):
        fused = wce.softmax_cross_entropy(x, y, label_smoothing=0.1)
        fused_sig = wce.sigmoid_cross_entropy(x, t, pos_weight=2.0)
    with ft.disabled():
        generic = wce.softmax_cross_entropy(x, y, label_smoothing=0.1)
        generic_sig = wce.sigmoid_cross_entropy(x, t, pos_weight=2.0)
    torch.testing.assert_close(fused, generic)
    torch.testing.assert_close(fused_sig, generic_sig)


# ---------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("red", REDUCTIONS)
def test_gradcheck_float64(method: str, red: str) -> None:
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1, -1, 2])
    t = torch.softmax(torch.randn(5, 4, dtype=torch.float64), -1)
    cw = torch.rand(4, dtype=torch.float64) + 0.5
    z = torch.rand(5, 4, dtype=torch.float64)
    with ft.chunk_elements(8):
        assert torch.autograd.gradcheck(
            lambda a: wce.softmax_cross_entropy(
                a, y, class_weight=cw, ignore_index=-1, label_smoothing=0.1,
                reduction=red,
            ),
            (x,),
        )  # fmt: skip
        assert torch.autograd.gradcheck(
            lambda a: wce.softmax_cross_entropy(a, t, reduction=red), (x,)
        )
        assert torch.autograd.gradcheck(
            lambda a: wce.sigmoid_cross_entropy(
                a, z, pos_weight=cw, class_weight=cw, reduction=red
            ),
            (x,),
        )


def test_upstream_gradient_scales_the_stored_gradient() -> None:
    x = torch.randn(10, 6)
    y = torch.randint(0, 6, (10,))
    cw = torch.rand(6)
    for red, up in (("mean", torch.tensor(3.5)), ("none", torch.rand(10))):

        def fn(a: Tensor, red: str = red) -> Tensor:
            return wce.softmax_cross_entropy(a, y, class_weight=cw, reduction=red)

        assert_same(fn, x, upstream=up)
        _, g1 = run(fn, x)
        _, g2 = run(fn, x, upstream=up)
        expected = g1 * (up if up.ndim == 0 else up[:, None])
        torch.testing.assert_close(g2, expected)


def test_retain_graph_gives_the_same_gradient_twice() -> None:
    x = torch.randn(8, 5, requires_grad=True)
    loss = wce.softmax_cross_entropy(x * 1, torch.randint(0, 5, (8,)))
    (g1,) = torch.autograd.grad(loss * 2, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss * 2, x)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_inplace_mode_gives_the_same_gradient(loss: str) -> None:
    x = torch.randn(12, 7)
    y = torch.randint(0, 7, (12,))
    t = (torch.rand(12, 7) > 0.5).float()

    def fn(a: Tensor, inplace: bool) -> Tensor:
        logits = a * 2.0  # a non-leaf buffer that nothing else saved
        if loss == "softmax":
            return wce.softmax_cross_entropy(
                logits, y, label_smoothing=0.1, inplace_backward=inplace
            )
        return wce.sigmoid_cross_entropy(
            logits, t, pos_weight=3.0, inplace_backward=inplace
        )

    l1, g1 = run(lambda a: fn(a, True), x, chunk=14, upstream=torch.tensor(0.5))
    l2, g2 = run(lambda a: fn(a, False), x, upstream=torch.tensor(0.5))
    torch.testing.assert_close(l1, l2)
    torch.testing.assert_close(g1, g2)


def test_inplace_mode_refuses_logits_saved_by_another_op() -> None:
    x = torch.randn(6, 4, requires_grad=True)
    logits = x.exp()  # exp saves its output for its backward
    loss = wce.softmax_cross_entropy(
        logits, torch.zeros(6, dtype=torch.int64), inplace_backward=True
    )
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_inplace_mode_second_backward_gives_its_own_error() -> None:
    x = torch.randn(6, 4, requires_grad=True)
    loss = wce.softmax_cross_entropy(
        x * 1, torch.zeros(6, dtype=torch.int64), inplace_backward=True
    )
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="supports one backward pass"):
        loss.backward()


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_inplace_mode_on_overlapping_views_is_ignored(loss: str) -> None:
    # an expanded tensor has one memory location for several entries: the
    # gradient cannot be written over it, so a new buffer is used
    b = torch.randn(1, 5)

    def fn(a: Tensor) -> Tensor:
        v = a.expand(4, 5)
        if loss == "softmax":
            y = torch.tensor([0, 1, 2, 3])
            return wce.softmax_cross_entropy(v, y, inplace_backward=True)
        t = torch.rand(4, 5, generator=torch.Generator().manual_seed(1)) > 0.5
        return wce.sigmoid_cross_entropy(v, t.float(), inplace_backward=True)

    assert_same(fn, b)


# ---------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------
def test_switch_is_per_thread() -> None:
    import threading

    seen: list[bool] = []

    def other() -> None:
        with ft.disabled():
            seen.append(wce._fused.enabled())

    with ft.disabled():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert not wce._fused.enabled()
    assert seen == [False]
    assert wce._fused.enabled()


def test_weights_that_want_gradients_use_the_generic_path() -> None:
    x = torch.randn(5, 3)
    cw = torch.rand(3, requires_grad=True)
    loss = wce.softmax_cross_entropy(x, torch.tensor([0, 1, 2, 0, 1]), class_weight=cw)
    assert loss.grad_fn is not None and "Fused" not in type(loss.grad_fn).__name__
    loss.backward()
    assert cw.grad is not None


def test_errors_are_the_generic_ones() -> None:
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="labels must be class ids in"):
        wce.softmax_cross_entropy(x, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="labels must be probabilities"):
        wce.softmax_cross_entropy(x, torch.full((4, 3), 2.0))
    with pytest.raises(ValueError, match="class_weight must be shape"):
        wce.softmax_cross_entropy(x, torch.tensor([0, 1, 2, 0]), class_weight=[1.0])
    with pytest.raises(ValueError, match="labels must be targets in"):
        wce.sigmoid_cross_entropy(x, torch.full((4, 3), 3.0))
    with pytest.raises(ValueError, match="reduction must be one of"):
        wce.sigmoid_cross_entropy(x, torch.zeros(4, 3), reduction="avg")


# ---------------------------------------------------------------------------
# linear_cross_entropy
# ---------------------------------------------------------------------------
def _linear_inputs(
    dtype: Any = torch.float64,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n, h, c = 21, 6, 11
    hid = torch.randn(n, h, dtype=dtype, requires_grad=True)
    w = torch.randn(c, h, dtype=dtype, requires_grad=True)
    b = torch.randn(c, dtype=dtype, requires_grad=True)
    y = torch.randint(0, c, (n,))
    y[[3, 7]] = -100
    return hid, w, b, y


@pytest.mark.parametrize("slab", [11, 40, 10**6])
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_linear_matches_torch_unfused(slab: int, red: str) -> None:
    hid, w, b, y = _linear_inputs()
    cw = torch.rand(11, dtype=torch.float64) + 0.5
    up = torch.rand(21, dtype=torch.float64) if red == "none" else torch.tensor(2.0)
    with _linear.slab_elements(slab):
        ours = wce.linear_cross_entropy(hid, w, y, bias=b, ignore_index=-100,
                                        class_weight=cw, reduction=red)  # fmt: skip
    g_ours = torch.autograd.grad(ours, (hid, w, b), up)
    tred = "mean" if red == "mean" else red
    theirs = F.cross_entropy(hid @ w.T + b, y, weight=cw, reduction=tred)
    if red == "mean":  # torch's "mean" with weights is wce's "weighted_mean"
        theirs = F.cross_entropy(hid @ w.T + b, y, weight=cw, reduction="sum")
        theirs = theirs / (y != -100).sum()
    g_theirs = torch.autograd.grad(theirs, (hid, w, b), up)
    torch.testing.assert_close(ours, theirs)
    for a, e in zip(g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("red", REDUCTIONS)
def test_linear_keywords_match_softmax_cross_entropy(red: str) -> None:
    hid, w, b, y = _linear_inputs()
    cw = torch.rand(11, dtype=torch.float64) + 0.5
    cases: list[dict[str, Any]] = [
        {"label_smoothing": 0.2, "class_weight": cw},
        {"class_weight": cw, "weight_by": "prediction"},
        {"cost_matrix": torch.rand(11, 11, dtype=torch.float64)},
        {"sample_weight": torch.rand(21, dtype=torch.float64)},
    ]
    for kw in cases:
        with _linear.slab_elements(30):
            ours = wce.linear_cross_entropy(
                hid, w, y, bias=b, ignore_index=-100, reduction=red, **kw
            )
        g_ours = torch.autograd.grad(ours.sum(), (hid, w, b))
        with ft.disabled():
            theirs = wce.softmax_cross_entropy(
                hid @ w.T + b, y, ignore_index=-100, reduction=red, **kw
            )
        g_theirs = torch.autograd.grad(theirs.sum(), (hid, w, b))
        torch.testing.assert_close(ours, theirs)
        for a, e in zip(g_ours, g_theirs, strict=True):
            torch.testing.assert_close(a, e)


def test_linear_without_bias_float32_and_frozen_weight() -> None:
    hid, w, _, y = _linear_inputs(torch.float32)
    w.requires_grad_(False)
    with _linear.slab_elements(50):
        ours = wce.linear_cross_entropy(hid, w, y.clamp(min=0))
    (g,) = torch.autograd.grad(ours, (hid,))
    theirs = F.cross_entropy(hid @ w.T, y.clamp(min=0))
    (ge,) = torch.autograd.grad(theirs, (hid,))
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(g, ge)


@pytest.mark.parametrize("red", REDUCTIONS)
def test_linear_empty_batch_gives_zero(red: str) -> None:
    h = torch.zeros(0, 6, requires_grad=True)
    w = torch.randn(4, 6, requires_grad=True)
    y = torch.zeros(0, dtype=torch.int64)
    got = wce.linear_cross_entropy(h, w, y, reduction=red)
    want = wce.softmax_cross_entropy(h @ w.T, y, reduction=red)
    torch.testing.assert_close(got, want)
    got.sum().backward()
    assert w.grad is not None and float(w.grad.abs().sum()) == 0.0


def test_linear_rejects_a_bias_of_another_dtype() -> None:
    h, w = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(TypeError, match=r"bias must be a PyTorch tensor of the dtype"):
        wce.linear_cross_entropy(
            h, w, torch.tensor([0, 1, 2]), bias=torch.zeros(5, dtype=torch.float64)
        )


def test_linear_rejects_probability_labels() -> None:
    hid, w, b, _ = _linear_inputs()
    with pytest.raises(TypeError, match="integer class ids"):
        wce.linear_cross_entropy(hid, w, torch.rand(21, 11), bias=b)


# ---------------------------------------------------------------------------
# softmax focal loss (integer labels; dense targets use the generic path)
# ---------------------------------------------------------------------------
def _focal(a: Tensor, y: Tensor, **kw: Any) -> Tensor:
    """The fused focal loss, called the way the public function dispatches."""
    args = {
        "logits": a, "labels": y, "gamma": 2.0, "class_weight": None,
        "sample_weight": None, "label_smoothing": 0.0, "ignore_index": None,
        "axis": -1, "reduction": "mean", "axis_name": None, "normalizer": None,
    }  # fmt: skip
    args.update(kw)
    out = ft.dispatch("softmax_focal", args)
    assert out is not NotImplemented
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("c", [5, 300])
def test_softmax_focal_matches_generic(
    method: str, gamma: float, red: str, c: int
) -> None:
    from wce.longtail import softmax_focal_loss

    x = torch.randn(21, c) * 4
    x[0, 0] = 30.0  # a certain prediction: 1 - p_y far below float32's epsilon
    x[5, 1] = -torch.inf  # a masked class
    y = torch.randint(0, c, (21,))
    y[0], y[3], y[5] = 0, -1, 0
    x[6, y[6]] = -80.0  # a label probability below the normal range
    kw = {
        "gamma": gamma, "class_weight": torch.rand(c) + 0.5,
        "sample_weight": torch.rand(21), "ignore_index": -1, "reduction": red,
    }  # fmt: skip
    lf, gf = run(lambda a: _focal(a, y, **kw), x, chunk=4 * c)
    with ft.disabled():
        lg, gg = run(lambda a: softmax_focal_loss(a, y, **kw), x)
    rtol = 1e-5 if red == "none" else 1e-6  # a few roundings per element
    torch.testing.assert_close(lf, lg, rtol=rtol, atol=1e-12)
    torch.testing.assert_close(gf, gg, rtol=1e-5, atol=1e-7)


def test_softmax_focal_gradcheck() -> None:
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 4, 2, 1, 3, 0])
    for gamma in (0.5, 2.0):
        with ft.chunk_elements(10):
            assert torch.autograd.gradcheck(
                lambda a, g=gamma: _focal(a, y, gamma=g, reduction="sum"), (x,)
            )


def test_softmax_focal_dense_targets_use_the_generic_path() -> None:
    x = torch.randn(4, 3)
    t = torch.softmax(torch.randn(4, 3), -1)
    args = {
        "logits": x, "labels": t, "gamma": 2.0, "class_weight": None,
        "sample_weight": None, "label_smoothing": 0.0, "ignore_index": None,
        "axis": -1, "reduction": "mean", "axis_name": None, "normalizer": None,
    }  # fmt: skip
    assert ft.dispatch("softmax_focal", args) is NotImplemented
    args.update(labels=torch.tensor([0, 1, 2, 0]), label_smoothing=0.1)
    assert ft.dispatch("softmax_focal", args) is NotImplemented


def test_public_softmax_focal_loss_takes_the_fused_path() -> None:
    from wce.longtail import softmax_focal_loss

    x = torch.randn(9, 4, requires_grad=True)
    y = torch.randint(0, 4, (9,))
    loss = softmax_focal_loss(x, y, gamma=2.0, class_weight=torch.rand(4))
    assert "Fused" in type(loss.grad_fn).__name__
    with ft.disabled():
        generic = softmax_focal_loss(x, y, gamma=2.0, class_weight=loss.new_ones(4))
    assert "Fused" not in type(generic.grad_fn).__name__


def reference_sigmoid_focal(
    z: Tensor, t: Tensor, *, gamma: float, alpha: float | None, w: Tensor
) -> Tensor:
    """Lin et al.'s focal loss for hard targets in float64, as torchvision writes it:
    ``-alpha_t (1 - p_t)^gamma log p_t`` with ``p_t = p`` for t = 1, else ``1 - p``."""
    zd, td = z.double(), t.double()
    p = torch.sigmoid(zd)
    p_t = td * p + (1 - td) * (1 - p)
    ce = F.binary_cross_entropy_with_logits(zd, td, reduction="none")
    a_t = 1.0 if alpha is None else alpha * td + (1 - alpha) * (1 - td)
    return w.double() * a_t * (1 - p_t) ** gamma * ce


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_focal_matches_float64_reference(
    gamma: float, alpha: float | None
) -> None:
    from wce.longtail import sigmoid_focal_loss

    z = torch.randn(37, 11) * 3
    t = (torch.rand(37, 11) < 0.3).float()
    w = torch.rand(11) + 0.5
    got, _ = run(
        lambda a: sigmoid_focal_loss(
            a, t, gamma=gamma, alpha=alpha, class_weight=w, reduction="none"
        ),
        z,
    )
    want = reference_sigmoid_focal(z, t, gamma=gamma, alpha=alpha, w=w.expand(37, 11))
    torch.testing.assert_close(got.double(), want, rtol=5e-6, atol=1e-7)
    # the gradient against autograd through the float64 reference
    zd = z.double().requires_grad_(True)
    ref = reference_sigmoid_focal(zd, t, gamma=gamma, alpha=alpha, w=w.expand(37, 11))
    (g_ref,) = torch.autograd.grad(ref.sum(), zd)
    _, g = run(
        lambda a: sigmoid_focal_loss(
            a, t, gamma=gamma, alpha=alpha, class_weight=w, reduction="sum"
        ),
        z,
    )
    torch.testing.assert_close(g.double(), g_ref, rtol=5e-6, atol=1e-7)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("k", [3, 40])
def test_sigmoid_focal_keywords_match_generic(gamma: float, red: str, k: int) -> None:
    from wce.longtail import sigmoid_focal_loss

    n = 29
    z = torch.randn(n, k) * 4
    z[0, 0], z[1, 1], z[2, 2 % k] = 95.0, -95.0, 30.0  # saturated and confident
    t = torch.rand(n, k)  # soft targets
    t[3:9] = (t[3:9] < 0.5).float()  # and hard ones
    t[9, :] = -1.0  # ignored
    cases = [
        {},
        {"alpha": 0.25, "class_weight": torch.rand(k) + 0.5},
        {"sample_weight": torch.rand(n), "label_smoothing": 0.1},
        {"alpha": 0.7, "sample_weight": torch.rand(n, k)},
    ]
    for kw in cases:

        def fn(a: Tensor, kw: dict[str, Any] = kw) -> Tensor:
            return sigmoid_focal_loss(
                a, t, gamma=gamma, ignore_index=-1, reduction=red, **kw
            )

        lf, gf = run(fn, z, chunk=64)
        lg, gg = run(fn, z, fused=False)
        torch.testing.assert_close(lf, lg, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gf, gg, rtol=1e-5, atol=1e-7)


def test_sigmoid_focal_on_a_class_axis_of_one() -> None:
    from wce.longtail import sigmoid_focal_loss

    z = torch.randn(4, 3, 7) * 3
    t = (torch.rand(4, 3, 7) < 0.4).float()
    cw, sw = torch.rand(3) + 0.5, torch.rand(4)

    def fn(a: Tensor) -> Tensor:
        return sigmoid_focal_loss(
            a, t, gamma=1.5, alpha=0.3, class_weight=cw, sample_weight=sw, axis=1,
            reduction="weighted_mean",
        )  # fmt: skip

    lf, gf = run(fn, z)
    lg, gg = run(fn, z, fused=False)
    torch.testing.assert_close(lf, lg, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gf, gg, rtol=1e-5, atol=1e-7)


def test_sigmoid_focal_gradcheck() -> None:
    from wce.longtail import sigmoid_focal_loss

    z = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    t = torch.rand(6, 5, dtype=torch.float64)
    t[:3] = t[:3].round()
    for gamma, alpha in ((0.5, None), (2.0, 0.25)):
        with ft.chunk_elements(10):
            assert torch.autograd.gradcheck(
                lambda a, g=gamma, al=alpha: sigmoid_focal_loss(
                    a, t, gamma=g, alpha=al, reduction="sum"
                ),
                (z,),
            )


def test_public_sigmoid_focal_loss_takes_the_fused_path() -> None:
    from wce.longtail import sigmoid_focal_loss

    z = torch.randn(9, 4, requires_grad=True)
    t = (torch.rand(9, 4) < 0.5).float()
    loss = sigmoid_focal_loss(z, t, gamma=2.0, alpha=0.25)
    assert "Fused" in type(loss.grad_fn).__name__
    args = {
        "logits": z, "labels": t, "gamma": 2.0, "alpha": 1.5, "class_weight": None,
        "sample_weight": None, "label_smoothing": 0.0, "ignore_index": None,
        "axis": -1, "reduction": "mean", "axis_name": None, "normalizer": None,
    }  # fmt: skip
    # an invalid alpha goes to the generic path, which raises its own error
    assert ft.dispatch("sigmoid_focal", args) is NotImplemented
    with pytest.raises(ValueError, match="alpha"):
        sigmoid_focal_loss(z, t, alpha=1.5)


@pytest.mark.parametrize(
    "shape, axis, c",
    [((1, 150, 6, 5), 1, 150), ((1, 40, 7), 1, 40), ((300, 9), 0, 300)],
)
def test_class_axis_not_last_in_memory_with_a_batch_of_one(
    method: str, shape: tuple[int, ...], axis: int, c: int
) -> None:
    # moving the class axis last gives a view here, not a copy: the rows are not
    # contiguous, and a gradient buffer must not take their strides
    x = torch.randn(*shape) * 2
    lab_shape = shape[:axis] + shape[axis + 1 :]
    y = torch.randint(0, c, lab_shape)
    assert_same(lambda a: wce.softmax_cross_entropy(a, y, axis=axis), x)
    t = torch.softmax(torch.randn(*shape), axis)
    assert_same(lambda a: wce.softmax_cross_entropy(a, t, axis=axis), x)
    xt = torch.randn(c, 37).t()  # a transposed batch
    yt = torch.randint(0, c, (37,))
    assert_same(lambda a: wce.softmax_cross_entropy(a, yt), xt)


@pytest.mark.parametrize("c", [8, 150])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_focal_rows_without_weight_and_a_masked_label(
    method: str, c: int, dtype: Any
) -> None:
    from wce.longtail import softmax_focal_loss

    # the masked label makes the row's focal factor inf * 0; the row weighs
    # nothing, so its gradient is 0, not NaN
    x = torch.randn(2, c, dtype=dtype)
    x[0, 1] = -torch.inf
    y = torch.tensor([1, 0])
    sw = torch.tensor([0.0, 1.0], dtype=dtype)
    fn = lambda a: softmax_focal_loss(a, y, gamma=2.0, sample_weight=sw)  # noqa: E731
    lf, gf = run(fn, x)
    lg, gg = run(fn, x, fused=False)
    torch.testing.assert_close(lf, lg)
    torch.testing.assert_close(gf, gg)
    assert bool((gf[0] == 0).all())


def test_double_backward_raises_and_the_generic_path_supports_it() -> None:
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 4, 2, 1])
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad(wce.softmax_cross_entropy(x, y), x, create_graph=True)
    with wce.use_fused_kernels(False):
        ours = wce.softmax_cross_entropy(x, y)
    (g,) = torch.autograd.grad(ours, x, create_graph=True)
    (gg,) = torch.autograd.grad(g.pow(2).sum(), x)
    theirs = torch.nn.functional.cross_entropy(x, y)
    (h,) = torch.autograd.grad(theirs, x, create_graph=True)
    (hh,) = torch.autograd.grad(h.pow(2).sum(), x)
    torch.testing.assert_close(gg, hh)


def test_small_integer_label_dtypes() -> None:
    """uint8 masks with ignore_index=255, as segmentation data often comes."""
    x = torch.randn(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 255, 3], dtype=torch.uint8)
    want = wce.softmax_cross_entropy(x, y.to(torch.int64), ignore_index=255)
    for dtype in (torch.uint8, torch.int16, torch.int32):
        got = wce.softmax_cross_entropy(x, y.to(dtype), ignore_index=255)
        torch.testing.assert_close(got, want)


def test_torch_func_transforms_take_the_generic_path() -> None:
    x = torch.randn(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 3])
    g = torch.func.grad(lambda a: wce.softmax_cross_entropy(a, y))(x)
    want = (torch.softmax(x, -1) - torch.nn.functional.one_hot(y, 4)) / 3
    torch.testing.assert_close(g, want)
    per_row = torch.func.vmap(wce.softmax_cross_entropy)(x, y)
    torch.testing.assert_close(
        per_row, torch.nn.functional.cross_entropy(x, y, reduction="none")
    )
