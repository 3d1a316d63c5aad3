"""wce's fused PyTorch losses against torch's own, side by side, on this machine.

Every case times forward plus backward of each contender in one process, in turn
(one run of each, then the next round), after warm-up, and reports the median of
``--runs`` rounds. Peak extra memory is read from the torch profiler's allocator
events (``profile_memory=True``): the running sum of allocations and frees during
one forward plus backward, inputs excluded. The machine floor of a softmax case is
the larger of a clone of the logits (reading them and writing a new logits-sized
buffer, the least any non-in-place loss must do to return a gradient; timed as one
more contender, in the same rounds, median) and the time of one ``exp`` per logit
in a cache-resident buffer (the fastest of 15 runs).

Usage::

    python benchmarks/bench_torch.py            # full sizes, writes docs/benchmarks.md
    python benchmarks/bench_torch.py --quick    # small sizes, prints only
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import wce
from wce._fused import _native
from wce._fused import _torch as fused

Setup = Callable[[], Any]

#: The contender that only copies the logits: half of the machine floor.
COPY = "copy (floor)"
Step = Callable[[Any], None]


@dataclass
class Contender:
    name: str
    setup: Setup  # untimed: fresh leaf tensors for one run
    step: Step  # timed: forward plus backward


@dataclass
class Case:
    family: str
    size: str
    contenders: list[Contender]
    floor_s: float | None = None
    exp_floor_s: float | None = None  # one exp per logit, cache-resident
    times: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    logits_bytes: int = 0


# ---------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------
def timed(c: Contender) -> float:
    state = c.setup()
    t0 = time.perf_counter()
    c.step(state)
    dt = time.perf_counter() - t0
    del state
    return dt


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null: the profiler's C++ side logs each start."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_extra_bytes(c: Contender) -> float:
    state = c.setup()
    gc.collect()
    with (
        native_stderr_silenced(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
        c.step(state)
    events = [
        e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    ]
    events.sort(key=lambda e: e.start_ns())
    total = peak = 0
    for e in events:
        total += e.nbytes()
        peak = max(peak, total)
    del state
    return float(peak)


def run_case(case: Case, runs: int, warmup: int) -> None:
    for c in case.contenders:
        for _ in range(warmup):
            timed(c)
    samples: dict[str, list[float]] = {c.name: [] for c in case.contenders}
    for _ in range(runs):
        for c in case.contenders:
            samples[c.name].append(timed(c))
    case.times = {k: statistics.median(v) for k, v in samples.items()}
    if case.exp_floor_s is not None and COPY in case.times:
        case.floor_s = max(case.times[COPY], case.exp_floor_s)
    for c in case.contenders:
        case.peaks[c.name] = peak_extra_bytes(c)
        gc.collect()


def best_time(fn: Callable[[], Any], runs: int = 15) -> float:
    """The fastest of ``runs``: a floor is what the machine can do undisturbed."""
    fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def exp_seconds_per_element() -> float:
    """``exp`` throughput on cache-resident buffers, all threads."""
    src, dst = torch.randn(1 << 18), torch.empty(1 << 18)
    reps = 64

    def work() -> None:
        for _ in range(reps):
            torch.exp(src, out=dst)

    return best_time(work) / (reps * src.numel())


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------
def leaf(x: torch.Tensor) -> Setup:
    return lambda: x.detach().requires_grad_(True)


def fresh_copy(x: torch.Tensor) -> Setup:
    """A private logits buffer for the in-place mode (made outside the timing)."""
    return lambda: x.detach().clone().requires_grad_(True)


def backward(loss: torch.Tensor) -> None:
    loss.backward()


def ce_case(n: int, c: int, compile_: bool, exp_s: float) -> Case:
    x = torch.randn(n, c)
    y = torch.randint(0, c, (n,))
    w = torch.rand(c) + 0.5

    def ours(a: torch.Tensor) -> None:
        backward(
            wce.softmax_cross_entropy(a, y, class_weight=w, reduction="weighted_mean")
        )

    def ours_inplace(a: torch.Tensor) -> None:
        # the logits come from an op (as in a model); nothing else saved them
        logits = a.view_as(a)
        backward(
            wce.softmax_cross_entropy(
                logits, y, class_weight=w, reduction="weighted_mean",
                inplace_backward=True,
            )
        )  # fmt: skip

    def native(a: torch.Tensor) -> None:
        backward(F.cross_entropy(a, y, weight=w))

    def recipe(a: torch.Tensor) -> None:
        sw = w[y]
        backward((F.cross_entropy(a, y, reduction="none") * sw).sum() / sw.sum())

    def generic(a: torch.Tensor) -> None:
        with fused.disabled():
            ours(a)

    cs = [
        Contender("wce", leaf(x), ours),
        Contender("wce in-place", fresh_copy(x), ours_inplace),
        Contender("torch", leaf(x), native),
        Contender("recipe", leaf(x), recipe),
        Contender("wce generic", leaf(x), generic),
    ]
    if compile_:
        compiled = torch.compile(lambda a: F.cross_entropy(a, y, weight=w))
        cs.append(Contender("torch.compile", leaf(x), lambda a: backward(compiled(a))))
    # the floor's copy of the logits runs in the same rounds as the contenders,
    # so that it meets the same load on a shared machine
    cs.append(Contender(COPY, leaf(x), lambda a: a.detach().clone()))
    case = Case("CE, class weights", f"{n} x {c}", cs)
    case.logits_bytes = x.numel() * x.element_size()
    case.exp_floor_s = exp_s * x.numel()
    return case


def bce_case(n: int, c: int, compile_: bool) -> Case:
    x = torch.randn(n, c)
    t = (torch.rand(n, c) < 0.1).float()
    pw = torch.rand(c) * 8 + 1

    def ours(a: torch.Tensor) -> None:
        backward(wce.sigmoid_cross_entropy(a, t, pos_weight=pw))

    def ours_inplace(a: torch.Tensor) -> None:
        backward(
            wce.sigmoid_cross_entropy(a.view_as(a), t, pos_weight=pw,
                                      inplace_backward=True)
        )  # fmt: skip

    def native(a: torch.Tensor) -> None:
        backward(F.binary_cross_entropy_with_logits(a, t, pos_weight=pw))

    def recipe(a: torch.Tensor) -> None:
        sw = 1 + (pw - 1) * t
        backward(
            (F.binary_cross_entropy_with_logits(a, t, reduction="none") * sw).mean()
        )

    cs = [
        Contender("wce", leaf(x), ours),
        Contender("wce in-place", fresh_copy(x), ours_inplace),
        Contender("torch", leaf(x), native),
        Contender("recipe", leaf(x), recipe),
    ]
    if compile_:
        compiled = torch.compile(
            lambda a: F.binary_cross_entropy_with_logits(a, t, pos_weight=pw)
        )
        cs.append(Contender("torch.compile", leaf(x), lambda a: backward(compiled(a))))
    case = Case("BCE, pos_weight", f"{n} x {c}", cs)
    case.logits_bytes = x.numel() * x.element_size()
    return case


def linear_case(n: int, h: int, c: int) -> Case:
    hid = torch.randn(n, h) / h**0.5
    wt = torch.randn(c, h) / h**0.5
    b = torch.zeros(c)
    y = torch.randint(0, c, (n,))

    def params() -> tuple[torch.Tensor, ...]:
        return tuple(p.detach().requires_grad_(True) for p in (hid, wt, b))

    def ours(p: tuple[torch.Tensor, ...]) -> None:
        backward(wce.linear_cross_entropy(p[0], p[1], y, bias=p[2]))

    def native(p: tuple[torch.Tensor, ...]) -> None:
        backward(F.cross_entropy(F.linear(p[0], p[1], p[2]), y))

    cs = [Contender("wce", params, ours), Contender("torch", params, native)]
    case = Case("linear + CE", f"{n} x {h} -> {c}", cs)
    case.logits_bytes = n * c * 4
    return case


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def machine_facts() -> list[str]:
    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return "unknown"

    cpu = "unknown"
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    backend = "OpenMP" if "OpenMP" in torch.__config__.parallel_info() else "other"
    if _native.library() is None:
        kernels = "not built: the fused losses run the chunked PyTorch kernels"
    else:
        team = "PyTorch's OpenMP team" if _native.uses_openmp() else "pthreads"
        flags = read("/proc/cpuinfo").split()
        avx = "AVX2 + FMA" if {"avx2", "fma"} <= set(flags) else "baseline vectors"
        pages = (
            "fresh gradient buffers advised for huge pages"
            if os.environ.get("WCE_NO_HUGEPAGES", "") in ("", "0")
            else "huge-page advice off (WCE_NO_HUGEPAGES)"
        )
        kernels = f"compiled, {avx}, threads on {team}, {pages}"
    return [
        f"wce kernels: {kernels}",
        f"torch {torch.__version__}, Python {platform.python_version()}",
        f"CPU: {cpu}, {os.cpu_count()} logical cores",
        f"threads: torch.get_num_threads() = {torch.get_num_threads()} "
        f"(ATen parallel backend {backend})",
        "allocator: torch's default CPU allocator (glibc malloc; large blocks are "
        "fresh mmap pages, so every new buffer pays page faults); "
        f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}",
        "transparent huge pages: enabled "
        + read("/sys/kernel/mm/transparent_hugepage/enabled")
        + ", defrag "
        + read("/sys/kernel/mm/transparent_hugepage/defrag"),
        f"load average at start: {' '.join(read('/proc/loadavg').split()[:3])}",
    ]


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.1f}"


def fmt_mb(b: float) -> str:
    return f"{b / 2**20:.1f}"


def report(cases: list[Case], facts: list[str], runs: int) -> str:
    lines = [
        "# Benchmarks: the fused PyTorch path",
        "",
        "Written by `benchmarks/bench_torch.py`; forward plus backward, float32, CPU, "
        f"median of {runs} runs after warm-up, contenders run in turn in one "
        "process. Peak extra memory from the torch profiler's allocator events. "
        "The machine is shared with other work, so absolute times are noisy; the "
        "ratios are measured side by side. wce advises the gradient buffers it "
        "allocates for transparent huge pages; torch's own buffers get them only "
        "with `THP_MEM_ALLOC_ENABLE=1` (see the allocator line), and torch's "
        "times, which pay a page fault per 4 KiB of each new buffer, move the most "
        "with the machine's page-fault cost.",
        "",
        "## Machine",
        "",
        *[f"- {f}" for f in facts],
        "",
        "## Results",
        "",
        "| loss | size | contender | time (ms) | vs torch | peak extra (MiB) "
        "| peak / logits |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        base = case.times.get("torch")
        for name, t in case.times.items():
            ratio = f"{t / base:.2f}" if base else ""
            peak = case.peaks.get(name, float("nan"))
            rel = peak / case.logits_bytes if case.logits_bytes else float("nan")
            lines.append(
                f"| {case.family} | {case.size} | {name} | {fmt_ms(t)} | {ratio} "
                f"| {fmt_mb(peak)} | {rel:.2f} |"
            )
    lines += ["", "## Against the targets", ""]
    lines += targets(cases)
    return "\n".join(lines) + "\n"


def targets(cases: list[Case]) -> list[str]:
    goals_ce = {10: 1 / 4, 1000: 1 / 2, 32000: 1 / 3}
    goals_bce = {40: 1 / 3, 1: 2 / 3}
    out = [
        "| target | measured | met |",
        "|---|---|---|",
    ]

    def row(what: str, value: float, goal: float, fmt: str = "{:.2f}") -> None:
        ok = "yes" if float(fmt.format(value)) <= goal else "no"  # as printed
        out.append(f"| {what} (<= {fmt.format(goal)}) | {fmt.format(value)} | {ok} |")

    for case in cases:
        t = case.times
        c = int(case.size.split(" x ")[-1].split(" -> ")[-1])
        if case.family.startswith("CE"):
            if c in goals_ce:
                row(
                    f"CE {case.size}: time vs torch", t["wce"] / t["torch"], goals_ce[c]
                )
            if "torch.compile" in t:
                goal = 1.0 if c >= 1000 else 1.3
                row(f"CE {case.size}: time vs torch.compile",
                    t["wce"] / t["torch.compile"], goal)  # fmt: skip
            if c >= 1000 and case.floor_s:
                row(f"CE {case.size}: time vs machine floor", t["wce"] / case.floor_s,
                    1.5)  # fmt: skip
            p = case.peaks
            row(f"CE {case.size}: peak extra / logits", p["wce"] / case.logits_bytes,
                1.0)  # fmt: skip
            row(f"CE {case.size}: in-place peak extra / logits",
                p["wce in-place"] / case.logits_bytes, 0.05)  # fmt: skip
        elif case.family.startswith("BCE"):
            row(f"BCE {case.size}: time vs torch", t["wce"] / t["torch"], goals_bce[c])
            if "torch.compile" in t:
                row(f"BCE {case.size}: time vs torch.compile",
                    t["wce"] / t["torch.compile"], 1.3)  # fmt: skip
            row(f"BCE {case.size}: peak extra / logits",
                case.peaks["wce"] / case.logits_bytes, 1.0)  # fmt: skip
        elif c >= 128000:  # the targets are set at 128,000 classes
            row(f"linear {case.size}: time vs torch", t["wce"] / t["torch"], 1.0)
            row(f"linear {case.size}: peak extra vs torch",
                case.peaks["wce"] / case.peaks["torch"], 0.1, "{:.3f}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes only")
    p.add_argument("--runs", type=int, default=7, help="timed runs (median)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--no-linear", action="store_true", help="skip linear_cross_entropy")
    p.add_argument("--out", default=None, help="Markdown output (full run: docs/)")
    args = p.parse_args(argv)
    runs = max(7, args.runs) if not args.quick else max(3, min(args.runs, 7))
    out = args.out
    if out is None and not args.quick:
        out = str(Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md")
    torch.manual_seed(0)
    facts = machine_facts()
    for f in facts:
        print(f)
    exp_s = exp_seconds_per_element()
    print(f"exp throughput: {1 / exp_s / 1e9:.2f} G/s")
    compile_ = not args.no_compile
    if args.quick:
        ce, bce, lin = (
            [(4096, 10), (512, 1000), (64, 32000)],
            [(8192, 40), (100000, 1)],
            [(256, 256, 32000)],
        )
    else:
        ce = [(65536, 10), (8192, 1000), (2048, 32000)]
        bce = [(262144, 40), (4000000, 1)]
        lin = [(4096, 1024, 32000), (4096, 1024, 128000)]
    cases: list[Case] = []
    builders: list[Callable[[], Case]] = []
    builders += [functools.partial(ce_case, n, c, compile_, exp_s) for n, c in ce]
    builders += [functools.partial(bce_case, n, c, compile_) for n, c in bce]
    if not args.no_linear:
        builders += [functools.partial(linear_case, n, h, c) for n, h, c in lin]
    for build in builders:
        case = build()
        warmup = 1 if case.family.startswith("linear") else 2
        run_case(case, runs if not case.family.startswith("linear") else 7, warmup)
        cases.append(case)
        base = case.times.get("torch", 1.0)
        print(f"\n{case.family} {case.size}")
        for name, t in case.times.items():
            print(f"  {name:14s} {fmt_ms(t):>10s} ms  x{t / base:5.2f} vs torch  "
                  f"peak {fmt_mb(case.peaks[name]):>9s} MiB")  # fmt: skip
        if case.floor_s:
            print(f"  machine floor  {fmt_ms(case.floor_s):>10s} ms")
        del case.contenders
        gc.collect()
    facts.append(f"exp throughput: {1 / exp_s / 1e9:.2f} G exp/s (all threads)")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    facts.append(f"load average at end: {load}")
    text = report(cases, facts, runs)
    print("\n" + "\n".join(targets(cases)))
    if out:
        Path(out).write_text(text)
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
