"""Parameter initializers with a seeded generator (NumPy arrays; parameters live outside
graphs and enter them as inputs)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Rng = np.random.Generator | int | None


def _rng(rng: Rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def fans(shape: Sequence[int], layout: str = "out_in") -> tuple[int, int]:
    """(fan_in, fan_out) of a weight. ``layout`` is "out_in" (PyTorch: (out, in, *kernel))
    or "in_out" (Keras dense kernels: (in, out))."""
    if len(shape) < 2:
        n = int(shape[0]) if shape else 1
        return n, n
    receptive = math.prod(shape[2:])
    a, b = int(shape[0]) * receptive, int(shape[1]) * receptive
    return (b, a) if layout == "out_in" else (a, b)


def glorot_uniform(
    shape: Sequence[int], rng: Rng = None, layout: str = "out_in", dtype=np.float32
) -> np.ndarray:
    """Xavier/Glorot uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape, layout)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return _rng(rng).uniform(-limit, limit, tuple(shape)).astype(dtype)


def glorot_normal(
    shape: Sequence[int], rng: Rng = None, layout: str = "out_in", dtype=np.float32
) -> np.ndarray:
    fan_in, fan_out = fans(shape, layout)
    return (_rng(rng).standard_normal(tuple(shape)) * math.sqrt(2.0 / (fan_in + fan_out))).astype(
        dtype
    )


def he_uniform(
    shape: Sequence[int], rng: Rng = None, layout: str = "out_in", dtype=np.float32
) -> np.ndarray:
    """Kaiming/He uniform for ReLU: U(-a, a) with a = sqrt(6 / fan_in)."""
    fan_in, _ = fans(shape, layout)
    limit = math.sqrt(6.0 / fan_in)
    return _rng(rng).uniform(-limit, limit, tuple(shape)).astype(dtype)


def he_normal(
    shape: Sequence[int], rng: Rng = None, layout: str = "out_in", dtype=np.float32
) -> np.ndarray:
    """Kaiming/He normal for ReLU: N(0, 2 / fan_in)."""
    fan_in, _ = fans(shape, layout)
    return (_rng(rng).standard_normal(tuple(shape)) * math.sqrt(2.0 / fan_in)).astype(dtype)


def orthogonal(
    shape: Sequence[int], rng: Rng = None, layout: str = "out_in", dtype=np.float32
) -> np.ndarray:
    """Orthogonal rows/columns (Keras' default for recurrent kernels); ``layout`` unused."""
    rows, cols = int(shape[0]), int(math.prod(shape[1:]))
    a = _rng(rng).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return q[:rows, :cols].reshape(tuple(shape)).astype(dtype)


def zeros(
    shape: Sequence[int], rng: Rng = None, layout: str = "out_in", dtype=np.float32
) -> np.ndarray:
    """(``layout`` is accepted, as by every initializer, and unused: no fans.)"""
    return np.zeros(tuple(shape), dtype)


def ones(
    shape: Sequence[int], rng: Rng = None, layout: str = "out_in", dtype=np.float32
) -> np.ndarray:
    """(``layout`` is accepted, as by every initializer, and unused: no fans.)"""
    return np.ones(tuple(shape), dtype)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "orthogonal": orthogonal,
    "zeros": zeros,
    "ones": ones,
}


def get(name: str):
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown initializer {name!r}; known: {sorted(INITIALIZERS)}") from None
