"""Helpers of the autodiff tests: data, and central finite differences in float64."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import nncompile as nc

F32, F64, I32, I64 = map(np.dtype, ("float32", "float64", "int32", "int64"))
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
H = 1e-6  # central-difference step
RTOL = 1e-6  # relative error (in the 2-norm) of the analytic gradient


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.asarray(rng(seed).standard_normal(shape))  # an array even for shape ()


def uniform(*shape: int, low: float, high: float, seed: int = 0) -> np.ndarray:
    return np.asarray(rng(seed).uniform(low, high, shape))


def nonzero(*shape: int, seed: int = 0) -> np.ndarray:
    r = rng(seed)
    return np.asarray(np.where(r.random(shape) < 0.5, -1, 1) * r.uniform(0.5, 2.0, shape))


# ---- finite differences -------------------------------------------------------------------


def weighted_loss(f: Callable[..., Any], out_shape: tuple[int, ...]) -> Callable[..., Any]:
    """sum(f(*args) * W) for fixed random W, so the cotangent of f's output is not all ones."""
    w = rng(12345).uniform(-1.5, 1.5, out_shape)

    def loss(*args):
        y = nc.asarray(f(*args))
        return nc.sum(y * w.astype(y.dtype))

    return loss


def numeric_grad(loss: Callable[..., Any], args: Sequence[Any], i: int, h: float = H):
    x = np.asarray(args[i], F64)
    out = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        vals = []
        for step in (h, -h):
            xs = x.copy()
            xs[idx] += step
            new = list(args)
            new[i] = xs
            vals.append(float(loss(*new).numpy()))
        out[idx] = (vals[0] - vals[1]) / (2 * h)
    return out


def assert_close_rel(got: np.ndarray, want: np.ndarray, rtol: float = RTOL) -> None:
    scale = max(np.linalg.norm(want), np.linalg.norm(got))
    err = np.linalg.norm(got - want)
    assert err <= rtol * scale or err < 1e-12, f"relative error {err / scale:.3g}\n{got}\n{want}"


def check_against_fd(f, args: Sequence[Any], wrt: Sequence[int] | None = None, rtol=RTOL):
    """The analytic gradient of sum(f(*args) * W) equals central differences, for each
    float argument in ``wrt`` (default: every float64 array argument)."""
    if wrt is None:
        wrt = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype == F64]
    assert wrt, "nothing to differentiate"
    out = nc.asarray(f(*args))
    loss = weighted_loss(f, out.shape)
    grads = nc.grad(loss, argnums=tuple(wrt))(*args)
    assert len(grads) == len(wrt)
    for i, g in zip(wrt, grads, strict=True):
        assert isinstance(g, nc.Tensor) and not g.is_traced
        g = g.numpy()
        assert g.shape == np.shape(args[i]) and g.dtype == np.asarray(args[i]).dtype
        assert_close_rel(g, numeric_grad(loss, args, i), rtol)
    return out
