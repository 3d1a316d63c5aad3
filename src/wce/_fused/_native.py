"""ctypes bindings of the compiled kernels in ``_kernels.c``.

The extension is built when wce is installed from source (a C compiler is needed;
the build is optional, and without it every fused loss runs the pure-PyTorch
chunked path). :func:`library` returns the loaded library or ``None``; set the
environment variable ``WCE_NO_NATIVE=1`` to ignore it. ctypes releases the GIL
for the call; the kernel splits rows over ``torch.get_num_threads()`` threads.

A fresh gradient buffer of 4 MiB or more is advised for transparent huge pages
before the kernel writes it (Linux; ``WCE_NO_HUGEPAGES=1`` or
:func:`use_hugepages` turns that off, and the pages are then mapped 4 KiB at a
time, all of a thread's part in one call).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
from typing import Any

import torch

_p = ctypes.c_void_p
_i64 = ctypes.c_int64
_i32 = ctypes.c_int32
_f64 = ctypes.c_double


class SoftmaxArgs(ctypes.Structure):
    _fields_ = [
        ("rows", _i64),
        ("classes", _i64),
        ("x", _p),
        ("grad", _p),
        ("out", _p),
        ("labels", _p),
        ("label_weight", _p),
        ("pred_weight", _p),
        ("cost", _p),
        ("sample_weight", _p),
        ("upstream", _p),
        ("bad", _p),
        ("bad_capacity", _i64),
        ("ignore_index", _i64),
        ("has_ignore", _i32),
        ("den_kind", _i32),
        ("nthreads", _i32),
        ("pad_", _i32),
        ("eps", _f64),
        ("gamma", _f64),
        ("scale", _f64),
        ("num", _f64),
        ("den", _f64),
        ("nbad", _i64),
    ]


class SigmoidArgs(ctypes.Structure):
    _fields_ = [
        ("rows", _i64),
        ("cols", _i64),
        ("z", _p),
        ("t", _p),
        ("grad", _p),
        ("out", _p),
        ("pos_weight", _p),
        ("col_weight", _p),
        ("row_weight", _p),
        ("elem_weight", _p),
        ("ignore_value", _f64),
        ("has_ignore", _i32),
        ("den_kind", _i32),
        ("nthreads", _i32),
        ("focal", _i32),
        ("eps", _f64),
        ("scale", _f64),
        ("gamma", _f64),
        ("alpha", _f64),
        ("num", _f64),
        ("den", _f64),
    ]


#: Denominators the kernels can accumulate alongside the loss.
DEN_NONE, DEN_COUNT, DEN_WEIGHT = 0, 1, 2

#: Row ids of non-finite softmax rows the kernel reports directly; more are
#: found again by a scan of the logits.
BAD_CAPACITY = 1024


@functools.cache
def library() -> Any:
    """The compiled kernels, or ``None`` when they were not built (or disabled)."""
    if os.environ.get("WCE_NO_NATIVE", "") not in ("", "0"):
        return None
    spec = importlib.util.find_spec("wce._fused._kernels")
    if spec is None or not spec.origin:
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    for name, args in (("wce_softmax", SoftmaxArgs), ("wce_sigmoid", SigmoidArgs)):
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.POINTER(args), ctypes.c_int]
        fn.restype = ctypes.c_int
        size = getattr(lib, f"{name}_args_size")
        size.restype = ctypes.c_int64
        if size() != ctypes.sizeof(args):  # a stale build of another layout
            return None
    lib.wce_softmax_den.argtypes = [ctypes.POINTER(SoftmaxArgs), ctypes.c_int]
    lib.wce_softmax_den.restype = ctypes.c_double
    lib.wce_count_bad_labels.argtypes = [ctypes.POINTER(SoftmaxArgs)]
    lib.wce_count_bad_labels.restype = ctypes.c_int64
    lib.wce_use_openmp.argtypes = [_p, _p, _p]
    lib.wce_use_openmp.restype = None
    lib.wce_uses_openmp.restype = ctypes.c_int
    omp = _torch_openmp()
    if omp is not None:
        lib.wce_use_openmp(*omp)
    lib.wce_use_hugepages.argtypes = [ctypes.c_int]
    lib.wce_use_hugepages.restype = None
    lib.wce_use_hugepages(os.environ.get("WCE_NO_HUGEPAGES", "") in ("", "0"))
    return lib


def _torch_openmp() -> tuple[int, int, int] | None:
    """Entry points of the OpenMP runtime PyTorch loaded, if it runs on one.

    PyTorch's CPU kernels run on an OpenMP team whose idle workers spin for a
    while after each parallel region; the kernels here join that team rather
    than start threads of their own that would compete with it for the cores.
    """
    if "OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if ".so" in line}
    except OSError:
        return None
    names = ("libgomp", "libiomp5", "libomp")
    found = sorted(
        (os.sep + "torch" + os.sep not in p, p)
        for p in paths
        if os.path.basename(p).startswith(names)
    )
    for _, path in found:
        try:
            rt = ctypes.CDLL(path)
            entry = [
                ctypes.cast(getattr(rt, name), ctypes.c_void_p).value
                for name in (
                    "GOMP_parallel",
                    "omp_get_thread_num",
                    "omp_get_num_threads",
                )
            ]
        except (OSError, AttributeError):
            continue
        a, b, c = entry
        if a and b and c:
            return a, b, c
    return None


def use_hugepages(on: bool) -> None:
    """Advise fresh gradient buffers for transparent huge pages (the default) or not."""
    lib = library()
    if lib is not None:
        lib.wce_use_hugepages(bool(on))


def uses_openmp() -> bool:
    """Whether the kernels run on PyTorch's OpenMP threads (else pthreads)."""
    lib = library()
    return lib is not None and bool(lib.wce_uses_openmp())


def supports(*tensors: torch.Tensor | None) -> bool:
    """Whether the kernels can take these tensors as they are."""
    if library() is None:
        return False
    dtype = None
    for t in tensors:
        if t is None:
            continue
        if t.device.type != "cpu" or not t.is_contiguous():
            return False
        if t.dtype not in (torch.float32, torch.float64):
            return False
        if dtype is None:
            dtype = t.dtype
        elif t.dtype != dtype:
            return False
    return True


def ptr(t: torch.Tensor | None, offset: int = 0) -> int | None:
    """Address of element ``offset`` of a contiguous CPU tensor (``None``: NULL)."""
    if t is None:
        return None
    return t.data_ptr() + offset * t.element_size()


def dtype_code(dtype: torch.dtype) -> int:
    return 1 if dtype == torch.float64 else 0


def softmax(args: SoftmaxArgs, dtype: torch.dtype) -> None:
    args.nthreads = torch.get_num_threads()
    library().wce_softmax(ctypes.byref(args), dtype_code(dtype))


def sigmoid(args: SigmoidArgs, dtype: torch.dtype) -> None:
    args.nthreads = torch.get_num_threads()
    library().wce_sigmoid(ctypes.byref(args), dtype_code(dtype))


def softmax_den(args: SoftmaxArgs, dtype: torch.dtype) -> float:
    """The static denominator of a softmax batch (``args.den_kind``)."""
    return float(library().wce_softmax_den(ctypes.byref(args), dtype_code(dtype)))


def count_bad_labels(args: SoftmaxArgs) -> int:
    """Labels that are neither a class id nor ``ignore_index``."""
    return int(library().wce_count_bad_labels(ctypes.byref(args)))
