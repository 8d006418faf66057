"""Cotangents of many slices of one value become one concat, and a weight used by many
matmuls gets one stacked product; both compile to cheap kernels and stay correct."""

import numpy as np
import pytest

import nncompile as nc
from nncompile.lowering import lower_graph


def unrolled(x, w):
    """An RNN-like loop: every step reads one time slice of x and multiplies by w."""
    h = nc.zeros_like(x[:, 0, :] @ w)
    for t in range(x.shape[1]):
        h = nc.tanh(x[:, t, :] @ w + h)
    return (h * h).sum()


def args(seed=0, steps=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(3, steps, 4)), rng.normal(size=(4, 4)) * 0.5


def numeric_grad(f, x, w, which, eps=1e-6):
    target = [x, w][which]
    out = np.zeros_like(target)
    for i in np.ndindex(target.shape):
        old = target[i]
        target[i] = old + eps
        up = float(f(x, w))
        target[i] = old - eps
        down = float(f(x, w))
        target[i] = old
        out[i] = (up - down) / (2 * eps)
    return out


def test_gradients_match_finite_differences():
    x, w = args()
    gx, gw = nc.grad(unrolled, argnums=(0, 1))(x, w)
    np.testing.assert_allclose(
        np.asarray(gx), numeric_grad(unrolled, x, w, 0), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(
        np.asarray(gw), numeric_grad(unrolled, x, w, 1), rtol=1e-6, atol=1e-8
    )


def test_slice_cotangents_become_one_concat_and_products_one_matmul():
    x, w = args()
    g = nc.trace(nc.grad(unrolled, argnums=(0, 1)), x, w)
    ops = g.op_counts()
    assert ops.get("slice_backward", 0) == 0
    assert ops["concat"] >= 1
    concat = next(n for n in g.nodes if n.op == "concat" and len(n.inputs) == 6)
    assert concat.attrs["axis"] == 1
    # forward: 7 matmuls (one only shapes the initial state); backward: one per step
    # for the slices of x, and one stacked product for w instead of six
    assert ops["matmul"] == 7 + 6 + 1


def test_partial_and_repeated_slices():
    def f(x):
        # rows 1..3 read twice, row 0 never: a run that does not cover the axis
        return (x[1:2] * 2).sum() + (x[2:4] ** 2).sum() + (x[1:2] * 3).sum()

    x = np.random.default_rng(1).normal(size=(5, 3))
    (g,) = [np.asarray(nc.grad(f)(x))]
    expected = np.zeros_like(x)
    expected[1] = 5.0
    expected[2:4] = 2 * x[2:4]
    np.testing.assert_allclose(g, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_unrolled_gradient_matches_eager(dtype):
    x, w = (a.astype(dtype) for a in args(steps=9))
    eager = nc.grad(unrolled, argnums=(0, 1))(x, w)
    compiled = nc.compile(nc.grad(unrolled, argnums=(0, 1)))(x, w)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(a, np.asarray(b), rtol=tol, atol=tol)


def test_wide_concat_is_lowered_piece_by_piece():
    pieces = [np.full((2, 1, 8), i, np.float32) for i in range(10)]

    def f(*xs):
        y = nc.concatenate(list(xs), axis=1)
        return y * 2.0, y.sum(axis=(0, 1))

    graph = nc.optimize(nc.trace(f, *pieces))
    program = lower_graph(graph)
    kernel = next(k for k in program.kernels if "concat" in k.comment)
    text = program.text()
    assert "select" not in text.split(kernel.name, 1)[1].split("kernel ", 1)[0]
    # the reduction reads the stored concat instead of selecting among ten inputs
    assert all("concat" not in k.comment for k in program.kernels if "reduce" in k.comment)
    # ten pieces are dealt out to the parallel tasks: one parallel loop, not ten
    body = kernel.body
    assert sum(1 for s in body if getattr(s, "parallel", False)) <= 1
    out, total = nc.compile(f)(*pieces)
    np.testing.assert_array_equal(out, np.concatenate(pieces, axis=1) * 2)
    np.testing.assert_array_equal(total, np.concatenate(pieces, axis=1).sum(axis=(0, 1)))
