"""Shared helpers of the test_llvm_* files (not a test module itself).

``check(fn, *args, tol=...)`` traces ``fn``, runs the traced graph on the NumPy reference
(``nc.run``), compiles ``fn`` for the LLVM backend, runs it, and compares every output
leaf: same dtype, same shape, values within the leaf's tolerance. Outputs are usually a
dict ``{name: array}`` so a failure names the op; ``tol`` maps a name (or its prefix
before ``/``) to a tolerance class or an explicit ``(rtol, atol)`` pair.

Tolerance classes:
- ``exact``: movement, integer and bool results, comparisons (NaN matches NaN).
- ``arith``: one IEEE operation per element (+ - * /), possibly contracted into an FMA.
- ``math``: libm / libmvec transcendental functions (exp, log, tanh, erf, pow, sigmoid).
- ``acc(dtype, k, scale)``: sums of ``k`` terms of magnitude ``scale`` (reductions, matmul,
  conv), whose order legitimately differs.

The test run uses --import-mode=importlib, so test files load this module by path.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

import nncompile as nc
from nncompile import pytree
from nncompile.tracing import is_array_leaf

F32, F64, I32, I64, BOOL = map(np.dtype, ("float32", "float64", "int32", "int64", "bool"))
FLOATS = (F32, F64)
INTS = (I32, I64)

_CLASSES = {
    "exact": {F32: (0.0, 0.0), F64: (0.0, 0.0)},
    "arith": {F32: (1e-5, 1e-6), F64: (1e-12, 1e-14)},
    "math": {F32: (1e-5, 1e-6), F64: (1e-10, 1e-12)},
}

Tol = str | tuple[float, float]


def acc(dtype: Any, k: int, scale: float = 1.0) -> tuple[float, float]:
    """Tolerance for sums of ``k`` terms of typical magnitude ``scale``."""
    root = math.sqrt(max(k, 1))
    if np.dtype(dtype) == F32:
        return (1e-4, 1e-5 * root * scale)
    return (1e-10, 1e-12 * root * scale)


def rtol_atol(tol: Tol, dtype: np.dtype) -> tuple[float, float]:
    if isinstance(tol, tuple):
        return tol
    if dtype.kind != "f":
        return (0.0, 0.0)
    return _CLASSES[tol][dtype]


def assert_close(got: Any, want: Any, tol: Tol = "exact", what: str = "") -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    rtol, atol = rtol_atol(tol, want.dtype)
    if want.dtype.kind != "f" or (rtol == 0 and atol == 0):
        np.testing.assert_array_equal(got, want, err_msg=what, strict=True)
        return
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def leaves_with_names(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, Mapping):
        out = []
        for k in tree:
            out += leaves_with_names(tree[k], f"{prefix}{k}" if not prefix else f"{prefix}.{k}")
        return out
    if isinstance(tree, (tuple, list)):
        out = []
        for i, v in enumerate(tree):
            out += leaves_with_names(v, f"{prefix}[{i}]")
        return out
    return [(prefix or "out", tree)]


def tol_for(name: str, tol: Tol | Mapping[str, Tol] | Callable[[str], Tol]) -> Tol:
    if isinstance(tol, (str, tuple)):
        return tol
    if callable(tol):
        return tol(name)
    for key in (name, name.split("/")[0], name.split(".")[0]):
        if key in tol:
            return tol[key]
    return tol.get("*", "exact")


def reference(fn: Callable, *args: Any) -> Any:
    return nc.run(nc.trace(fn, *args), *args)


def check(
    fn: Callable,
    *args: Any,
    tol: Tol | Mapping[str, Tol] | Callable[[str], Tol] = "exact",
    threads: int | None = None,
    compiled: Any = None,
) -> Any:
    """Compile ``fn`` (or use ``compiled``), run it on ``args`` and compare with the
    reference; returns the compiled outputs."""
    cf = compiled if compiled is not None else nc.compile(fn, backend="llvm", threads=threads)
    got = cf(*args)
    # The reference runs second: its freed temporaries must not be recycled into the
    # compiled outputs, where they could hide elements that the compiled code never wrote.
    want = reference(fn, *args)
    want_leaves, got_leaves = leaves_with_names(want), leaves_with_names(got)
    assert [n for n, _ in got_leaves] == [n for n, _ in want_leaves]
    failures = []
    for (name, w), (_, g) in zip(want_leaves, got_leaves, strict=True):
        try:
            assert_close(g, w, tol_for(name, tol), name)
        except AssertionError as e:
            failures.append(f"--- {name}\n{str(e)[:1500]}")
    assert not failures, f"{len(failures)} outputs differ:\n" + "\n".join(failures)
    return got


def flat_arrays(args: tuple) -> list[np.ndarray]:
    arrays, _, _ = pytree.flatten(args, is_array_leaf)
    return [np.asarray(a) for a in arrays]


def traced_ops(fn: Callable, *args: Any) -> set[str]:
    return {n.op for n in nc.trace(fn, *args).nodes}


# ---- data ---------------------------------------------------------------------------------


def data(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, low=-3.0, high=3.0):
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return rng.random(shape) < 0.5
    if dtype.kind == "i":
        return rng.integers(int(low), int(high), size=shape, endpoint=True).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)


def graph_sizes():
    """benchmarks/graph_sizes.py (its mlp() / cnn() / lstm() are the benchmark models),
    loaded by path: benchmarks/ is not a package."""
    from ..conftest import graph_sizes as load  # imported late: tests/gpu loads this file too

    return load()


def rng_for(*parts) -> np.random.Generator:
    """A generator seeded by a stable hash of ``parts`` (a case's name and parameters)."""
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def check_matmul_against_float64(
    m: int, k: int, n: int, dtype: Any, transposed: str, threads: int, seed: int
) -> None:
    """A compiled (m x k) @ (k x n) against float64 NumPy, with A or B given transposed
    ("a", "b") or neither (""), on ``threads`` threads."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (k, n)).astype(dtype)
    if transposed == "a":
        fn, args = (lambda at, b: nc.transpose(at) @ b), (np.ascontiguousarray(a.T), b)
    elif transposed == "b":
        fn, args = (lambda a, bt: a @ nc.transpose(bt)), (a, np.ascontiguousarray(b.T))
    else:
        fn, args = (lambda a, b: a @ b), (a, b)
    got = nc.compile(fn, threads=threads)(*args)
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * k**0.5)
