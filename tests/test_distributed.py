"""Exact normalisation across workers and micro-batches (wce.distributed).

The reference is always the single-process gradient of the whole batch. The data
put more ignored elements and heavier classes on one worker than on the other, so
averaging per-worker means is visibly wrong.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import wce
from wce.distributed import (
    GradientAccumulator,
    fixed_denominator,
    sum_and_denominator,
)

N, F, C = 8, 5, 3
CW = [1.0, 3.0, 0.5]
LABELS = [0, 1, -100, 2, -100, 1, -100, 1]  # 1 ignored, then 2
SIGMOID_IGNORED = [(0, 1), (5, 0), (6, 2), (7, 1)]
REDUCTIONS = ("mean", "weighted_mean", "sum")


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(N, F)))
    y = torch.tensor(LABELS)
    sw = torch.tensor(rng.uniform(0.5, 2.0, size=N))
    t = torch.tensor(rng.integers(0, 2, size=(N, C)), dtype=torch.float64)
    for i, j in SIGMOID_IGNORED:
        t[i, j] = -1.0
    return x, y, sw, t


def _model() -> torch.nn.Linear:
    rng = np.random.default_rng(5)
    model = torch.nn.Linear(F, C).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(rng.normal(size=(C, F))))
        model.bias.copy_(torch.tensor(rng.normal(size=C)))
    return model


def _softmax(reduction: str, **kwargs: Any) -> torch.nn.Module:
    from wce.torch import SoftmaxCrossEntropy

    return SoftmaxCrossEntropy(
        class_weight=torch.tensor(CW, dtype=torch.float64),
        ignore_index=-100,
        reduction=reduction,
        **kwargs,
    )


def _sigmoid(reduction: str, **kwargs: Any) -> torch.nn.Module:
    from wce.torch import SigmoidCrossEntropy

    return SigmoidCrossEntropy(
        class_weight=torch.tensor(CW, dtype=torch.float64),
        pos_weight=2.0,
        ignore_index=-1,
        reduction=reduction,
        **kwargs,
    )


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    return [torch.as_tensor(g).detach().clone() for g in grads]


def _reference(kind: str, reduction: str) -> tuple[float, list[torch.Tensor]]:
    """Loss and gradient of one process on the whole batch."""
    x, y, sw, t = _data()
    model = _model()
    if kind == "softmax":
        loss = _softmax(reduction)(model(x), y, sw)
    else:
        loss = _sigmoid(reduction)(model(x), t, sw)
    loss.backward()
    return float(loss.detach()), _grads(model)


# -- torch.distributed: two gloo processes ---------------------------------------
def _torch_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, y, sw, t = _data()
        half = slice(rank * N // world, (rank + 1) * N // world)
        results: dict[str, Any] = {}
        for kind in ("softmax", "sigmoid"):
            for reduction in REDUCTIONS:
                for sync in (True, False):
                    model = _model()
                    ddp = DDP(model)
                    if kind == "softmax":
                        crit = _softmax(reduction, sync_normalizer=sync)
                        loss = crit(ddp(x[half]), y[half], sw[half])
                    else:
                        crit = _sigmoid(reduction, sync_normalizer=sync)
                        loss = crit(ddp(x[half]), t[half], sw[half])
                    loss.backward()
                    results[f"{kind}/{reduction}/{sync}"] = (
                        float(loss.detach()),
                        _grads(model),
                    )
        # the synced module under torch.compile
        model = _model()
        ddp = DDP(model)
        compiled = torch.compile(
            _softmax("weighted_mean", sync_normalizer=True), backend="aot_eager"
        )
        loss = compiled(ddp(x[half]), y[half], sw[half])
        loss.backward()
        results["compiled"] = (float(loss.detach()), _grads(model))
        # accumulation inside DDP: two micro-batches per rank, no_sync on the first
        model = _model()
        ddp = DDP(model)
        acc = GradientAccumulator(sync=True)
        crit = _softmax("weighted_mean", normalizer=acc)
        idx = list(range(N))[half]
        micro = [idx[:1], idx[1:]]
        with ddp.no_sync():
            crit(ddp(x[micro[0]]), y[micro[0]], sw[micro[0]]).backward()
        crit(ddp(x[micro[1]]), y[micro[1]], sw[micro[1]]).backward()
        loss = acc.step(model.parameters())
        results["accumulate"] = (float(loss.detach()), _grads(model))
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn_gloo(out: Path) -> list[dict[str, Any]]:
    import torch.multiprocessing as mp

    ctx = mp.spawn(
        _torch_worker, args=(2, _free_port(), str(out)), nprocs=2, join=False
    )
    deadline = time.monotonic() + 150
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the gloo workers did not finish in 150 s")
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def _assert_grads_close(
    got: list[torch.Tensor], want: list[torch.Tensor], what: str
) -> None:
    for g, w in zip(got, want, strict=True):
        diff = float((g - w).abs().max())
        assert diff <= 1e-6, f"{what}: gradients differ by {diff}"
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=what)


# One test for the whole spawn, so that pytest-xdist never runs it twice.
def test_ddp_over_two_gloo_processes(tmp_path: Path) -> None:
    results = _spawn_gloo(tmp_path)
    for kind in ("softmax", "sigmoid"):
        for reduction in REDUCTIONS:
            want_loss, want_grads = _reference(kind, reduction)
            for rank in range(2):
                what = f"{kind}, {reduction}, rank {rank}, sync_normalizer=True"
                loss, grads = results[rank][f"{kind}/{reduction}/True"]
                assert loss == pytest.approx(want_loss, rel=1e-12), what
                _assert_grads_close(grads, want_grads, what)
            if reduction != "sum":
                # without the sync, the per-worker average is visibly biased
                _, grads = results[0][f"{kind}/{reduction}/False"]
                bias = max(
                    float((g - w).abs().max())
                    for g, w in zip(grads, want_grads, strict=True)
                )
                assert bias > 1e-3, f"{kind}, {reduction}: the data show no bias"
    # the same under torch.compile
    want_loss, want_grads = _reference("softmax", "weighted_mean")
    for rank in range(2):
        loss, grads = results[rank]["compiled"]
        assert loss == pytest.approx(want_loss, rel=1e-12)
        _assert_grads_close(grads, want_grads, f"compiled, rank {rank}")
    # micro-batches under DDP's no_sync, with GradientAccumulator(sync=True)
    want_loss, want_grads = _reference("softmax", "weighted_mean")
    for rank in range(2):
        loss, grads = results[rank]["accumulate"]
        assert loss == pytest.approx(want_loss, rel=1e-12)
        _assert_grads_close(grads, want_grads, f"accumulation, rank {rank}")


# -- micro-batches in one process --------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "weighted_mean"])
def test_gradient_accumulator_equals_whole_batch(reduction: str) -> None:
    want_loss, want_grads = _reference("softmax", reduction)
    x, y, sw, _ = _data()
    model = _model()
    acc = GradientAccumulator()
    crit = _softmax(reduction, normalizer=acc)
    for part in ([0, 1, 2], [3], [4, 5, 6, 7]):
        crit(model(x[part]), y[part], sw[part]).backward()
    loss = acc.step(model.parameters())
    assert float(loss.detach()) == pytest.approx(want_loss, rel=1e-12)
    for g, w in zip(_grads(model), want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    assert acc.denominator is None


@pytest.mark.parametrize("reduction", ["mean", "weighted_mean"])
def test_fixed_denominator_micro_batches_add_up(reduction: str) -> None:
    want_loss, want_grads = _reference("softmax", reduction)
    x, y, sw, _ = _data()
    if reduction == "mean":
        total = float((y != -100).sum())
    else:
        total = float(
            (torch.tensor(CW, dtype=torch.float64)[y.clamp(min=0)] * sw)[
                y != -100
            ].sum()
        )
    model = _model()
    crit = _softmax(reduction, normalizer=fixed_denominator(total))
    loss = sum(crit(model(x[p]), y[p], sw[p]) for p in ([0, 1, 2], [3, 4, 5, 6], [7]))
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(want_loss, rel=1e-12)
    _assert_grads_close(_grads(model), want_grads, f"fixed_denominator, {reduction}")


def test_gradient_accumulator_errors() -> None:
    acc = GradientAccumulator()
    with pytest.raises(ValueError, match="called after at least one loss"):
        acc.step([])
    with pytest.raises(ValueError, match="'sum'"):
        wce.softmax_cross_entropy(
            torch.zeros(2, 3), torch.tensor([0, 1]), reduction="sum", normalizer=acc
        )
    with pytest.raises(TypeError, match="PyTorch"):
        wce.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), normalizer=acc)


def test_sum_and_denominator_micro_batches_jax() -> None:
    import jax
    import jax.numpy as jnp

    x, y, sw, _ = (np.asarray(a) for a in _data())
    model = _model()
    params = {
        "w": jnp.asarray(model.weight.detach().numpy().T),
        "b": jnp.asarray(model.bias.detach().numpy()),
    }

    def parts(p: dict[str, Any], xb: Any, yb: Any, wb: Any) -> tuple[Any, Any]:
        logits = xb @ p["w"] + p["b"]
        return sum_and_denominator(
            wce.softmax_cross_entropy,
            logits,
            yb,
            class_weight=jnp.asarray(CW),
            ignore_index=-100,
            sample_weight=wb,
            reduction="weighted_mean",
        )

    step = jax.jit(jax.value_and_grad(parts, has_aux=True))
    total_num, total_den, total_grad = 0.0, 0.0, None
    for part in ([0, 1, 2], [3], [4, 5, 6, 7]):
        (num, den), g = step(params, x[part], y[part], sw[part])
        total_num, total_den = total_num + num, total_den + den
        total_grad = g if total_grad is None else jax.tree.map(jnp.add, total_grad, g)
    assert total_grad is not None
    want_loss, want_grads = _reference("softmax", "weighted_mean")
    assert float(total_num / total_den) == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(
        np.asarray(total_grad["w"]) / float(total_den),
        want_grads[0].numpy().T,
        rtol=1e-10,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        np.asarray(total_grad["b"]) / float(total_den),
        want_grads[1].numpy(),
        rtol=1e-10,
        atol=1e-12,
    )


def test_sum_and_denominator_values() -> None:
    logits = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    labels = np.array([1, 0, -1])
    num, den = sum_and_denominator(
        wce.softmax_cross_entropy,
        logits,
        labels,
        class_weight=[2.0, 1.0],
        ignore_index=-1,
        reduction="weighted_mean",
    )
    assert float(den) == pytest.approx(3.0)
    want = np.log1p(np.exp(-1.0)) + 2 * np.log1p(np.exp(-2.0))
    assert float(num) == pytest.approx(want, rel=1e-12)
    num, den = sum_and_denominator(
        wce.softmax_cross_entropy, logits, labels, ignore_index=-1, reduction="sum"
    )
    assert den is None
    with pytest.raises(ValueError, match="no denominator"):
        sum_and_denominator(wce.softmax_cross_entropy, logits, labels, reduction="none")


def test_axis_name_under_vmap_is_the_global_loss() -> None:
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(6, 3)))
    labels = jnp.asarray([0, 2, -1, 1, 1, -1])
    kwargs: dict[str, Any] = {"class_weight": jnp.asarray(CW), "ignore_index": -1}

    def one(z: Any, y: Any) -> Any:
        return wce.softmax_cross_entropy(
            z[None], y[None], reduction="weighted_mean", axis_name="batch", **kwargs
        )

    got = jax.jit(jax.vmap(one, axis_name="batch"))(logits, labels)
    want = wce.softmax_cross_entropy(
        logits, labels, reduction="weighted_mean", **kwargs
    )
    np.testing.assert_allclose(got, np.full(6, float(want)), rtol=1e-12)


def test_axis_name_with_torch_raises() -> None:
    with pytest.raises(TypeError, match="axis_name"):
        wce.softmax_cross_entropy(
            torch.zeros(2, 3), torch.tensor([0, 1]), axis_name="data"
        )


# -- JAX: shard_map and pmap over two CPU devices, in a subprocess ------------------
JAX_SCRIPT = r"""
import json
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
import wce

jax.config.update("jax_enable_x64", True)
assert jax.device_count() == 2, jax.devices()
data = json.loads(input())
x, y = np.asarray(data["x"]), np.asarray(data["y"], dtype=np.int64)
sw, t = np.asarray(data["sw"]), np.asarray(data["t"])
params = {"w": jnp.asarray(data["w"]), "b": jnp.asarray(data["b"])}
cw = jnp.asarray(data["cw"])


def loss_fn(p, xb, yb, wb, tb, kind, reduction, axis_name=None):
    logits = xb @ p["w"] + p["b"]
    if kind == "softmax":
        return wce.softmax_cross_entropy(
            logits, yb, class_weight=cw, ignore_index=-100, sample_weight=wb,
            reduction=reduction, axis_name=axis_name)
    return wce.sigmoid_cross_entropy(
        logits, tb, class_weight=cw, pos_weight=2.0, ignore_index=-1,
        sample_weight=wb, reduction=reduction, axis_name=axis_name)


mesh = jax.make_mesh((2,), ("data",))
shard = NamedSharding(mesh, P("data"))
args = [jax.device_put(a, shard) for a in (x, y, sw, t)]
out = {}
for kind in ("softmax", "sigmoid"):
    for reduction in ("mean", "weighted_mean", "sum"):
        ref = jax.value_and_grad(loss_fn)(params, x, y, sw, t, kind, reduction)

        def body(p, xb, yb, wb, tb, kind=kind, reduction=reduction):
            return jax.value_and_grad(loss_fn)(p, xb, yb, wb, tb, kind, reduction,
                                               "data")

        step = jax.jit(jax.shard_map(
            body, mesh=mesh, in_specs=(P(), P("data"), P("data"), P("data"),
                                       P("data")), out_specs=(P(), P())))
        sharded = step(params, *args)

        def pbody(p, xb, yb, wb, tb, kind=kind, reduction=reduction):
            value, g = jax.value_and_grad(loss_fn)(p, xb, yb, wb, tb, kind,
                                                   reduction, "data")
            return value, jax.lax.pmean(g, "data")

        split = [a.reshape((2, a.shape[0] // 2) + a.shape[1:]) for a in (x, y, sw, t)]
        pv, pg = jax.pmap(pbody, axis_name="data", in_axes=(None, 0, 0, 0, 0))(
            params, *split)
        out[f"{kind}/{reduction}"] = {
            "ref": [float(ref[0]), np.asarray(ref[1]["w"]).tolist(),
                    np.asarray(ref[1]["b"]).tolist()],
            "shard_map": [float(sharded[0]), np.asarray(sharded[1]["w"]).tolist(),
                          np.asarray(sharded[1]["b"]).tolist()],
            "pmap": [np.asarray(pv).tolist(), np.asarray(pg["w"]).tolist(),
                     np.asarray(pg["b"]).tolist()],
        }
print("RESULT " + json.dumps(out))
"""


def _run_jax_script() -> dict[str, Any]:
    x, y, sw, t = (np.asarray(a) for a in _data())
    model = _model()
    data = {
        "x": x.tolist(),
        "y": y.tolist(),
        "sw": sw.tolist(),
        "t": t.tolist(),
        "w": model.weight.detach().numpy().T.tolist(),
        "b": model.bias.detach().numpy().tolist(),
        "cw": CW,
    }
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_PLATFORMS="cpu",
        PYTHONWARNINGS="error::UserWarning:wce",
    )
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        env=env,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return dict(json.loads(line.removeprefix("RESULT ")))


def test_jax_shard_map_and_pmap_over_two_devices() -> None:
    results = _run_jax_script()
    for kind in ("softmax", "sigmoid"):
        for reduction in REDUCTIONS:
            _check_jax(results[f"{kind}/{reduction}"], kind, reduction)


def _check_jax(res: dict[str, Any], kind: str, reduction: str) -> None:
    what = f"{kind}, {reduction}"
    want_loss, want_grads = _reference(kind, reduction)
    want_w, want_b = want_grads[0].numpy().T, want_grads[1].numpy()
    # the JAX single-device reference agrees with the PyTorch one
    assert res["ref"][0] == pytest.approx(want_loss, rel=1e-12), what
    np.testing.assert_allclose(res["ref"][1], want_w, rtol=1e-10, atol=1e-12)
    # shard_map: jax.grad of the loss is the exact global gradient as it stands
    assert res["shard_map"][0] == pytest.approx(want_loss, rel=1e-12), what
    for got, want in ((res["shard_map"][1], want_w), (res["shard_map"][2], want_b)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=what)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=what)
    # pmap: the loss is global on every device; pmean of the gradients is exact
    np.testing.assert_allclose(res["pmap"][0], [want_loss] * 2, rtol=1e-12)
    for device in range(2):
        for got, want in (
            (res["pmap"][1][device], want_w),
            (res["pmap"][2][device], want_b),
        ):
            np.testing.assert_allclose(
                got,
                want,
                rtol=1e-10,
                atol=1e-12,
                err_msg=f"{what}, pmap device {device}",
            )
