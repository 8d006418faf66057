"""layout='NHWC' for the conv and pooling ops: the reference equals the NCHW op on
transposed data, gradients match the transposed NCHW gradients and finite differences,
and compiled NHWC code matches the reference."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from ir.ops.nn import LAYOUT_OPS
from nncompile.dispatch import bind

from .llvm_support import acc, check

TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)

CONVS = [  # (x NCHW shape, w shape, attrs)
    ((2, 3, 7, 6), (4, 3, 3, 3), {"pads": (1, 0, 1, 2), "strides": (2, 1)}),
    ((2, 4, 9, 8), (6, 2, 3, 3), {"groups": 2, "dilations": (2, 1)}),
    ((2, 8, 9, 9), (5, 8, 3, 3), {"pads": (1, 1, 1, 1)}),  # K = 72: the GEMM path
    ((1, 3, 5, 5), (6, 1, 2, 2), {"groups": 3, "strides": (2, 2)}),
    # direct convolutions computing 4 and 2 output columns a step (the widths 8 and 6)
    ((2, 1, 10, 10), (8, 1, 3, 3), {}),
    ((1, 2, 5, 12), (3, 2, 3, 3), {"strides": (1, 2), "pads": (1, 1, 1, 1)}),
]
POOLS = [  # (x NCHW shape, attrs)
    ((2, 5, 8, 9), {"kernel": (2, 2), "strides": (2, 2)}),
    ((1, 3, 5, 5), {"kernel": (3, 3), "pads": (1, 1, 1, 1)}),
    ((1, 2, 5, 7), {"kernel": (2, 3), "strides": (1, 2), "pads": (1, 2, 0, 1)}),
    ((1, 2, 5, 6), {"kernel": (2, 2), "dilations": (2, 1), "strides": (1, 2)}),
]


def randn(shape, seed: int, dtype=np.float64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(TO_NHWC))


def op(name: str, *args, **attrs) -> np.ndarray:
    return bind(name, *map(nc.asarray, args), **attrs).numpy()


def layout_cases():
    """(op, NCHW args, attrs, which args and outputs are activations) for every LAYOUT_OP."""
    for i, (sx, sw, attrs) in enumerate(CONVS):
        x, w = randn(sx, i), randn(sw, 100 + i)
        y = op("conv2d", x, w, **attrs)
        g = randn(y.shape, 200 + i)
        yield "conv2d", (x, w), attrs
        yield "conv2d_backward_input", (g, w), {**attrs, "input_hw": sx[2:]}
        yield "conv2d_backward_weight", (x, g), {**attrs, "kernel": sw[2:]}
    for i, (sx, attrs) in enumerate(POOLS):
        x = randn(sx, 300 + i)
        y = op("max_pool2d", x, **attrs)
        g = randn(y.shape, 400 + i)
        yield "max_pool2d", (x,), attrs
        yield "max_pool2d_backward", (x, g), attrs
        for cip in (False, True):
            yield "avg_pool2d", (x,), {**attrs, "count_include_pad": cip}
            yield (
                "avg_pool2d_backward",
                (g,),
                {**attrs, "count_include_pad": cip, "input_hw": sx[2:]},
            )


CASES = list(layout_cases())


def test_every_layout_op_has_a_case() -> None:
    assert {name for name, _, _ in CASES} == set(LAYOUT_OPS)


@pytest.mark.parametrize("name,args,attrs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_nhwc_reference_is_transposed_nchw(name, args, attrs) -> None:
    activations, weight_outputs = LAYOUT_OPS[name]
    want = op(name, *args, **attrs)
    if 0 not in weight_outputs:
        want = nhwc(want)
    moved = [nhwc(a) if i in activations else a for i, a in enumerate(args)]
    got = op(name, *moved, layout="NHWC", **attrs)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def conv_loss(layout: str, attrs: dict):
    def loss(x, w):
        y = bind("conv2d", nc.asarray(x), nc.asarray(w), layout=layout, **attrs)
        return nc.sum(nc.tanh(y) ** 2)

    return loss


def pool_loss(layout: str, attrs: dict):
    def loss(x):
        x = nc.asarray(x)
        m = bind("max_pool2d", x, layout=layout, **attrs)
        a = bind("avg_pool2d", x, layout=layout, **attrs)
        return nc.sum(m**2) + nc.sum(nc.tanh(a))

    return loss


@pytest.mark.parametrize("sx,sw,attrs", CONVS)
def test_nhwc_conv_gradients_are_transposed_nchw_gradients(sx, sw, attrs) -> None:
    x, w = randn(sx, 1), randn(sw, 2)
    gx, gw = nc.grad(conv_loss("NCHW", attrs), argnums=(0, 1))(x, w)
    hx, hw = nc.grad(conv_loss("NHWC", attrs), argnums=(0, 1))(nhwc(x), w)
    np.testing.assert_allclose(hx.numpy(), nhwc(gx.numpy()), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hw.numpy(), gw.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sx,attrs", POOLS)
def test_nhwc_pool_gradients_are_transposed_nchw_gradients(sx, attrs) -> None:
    x = randn(sx, 3)
    g = nc.grad(pool_loss("NCHW", attrs))(x).numpy()
    h = nc.grad(pool_loss("NHWC", attrs))(nhwc(x)).numpy()
    np.testing.assert_allclose(h, nhwc(g), rtol=1e-10, atol=1e-12)


def numeric_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        out[idx] = (float(f(up).numpy()) - float(f(down).numpy())) / (2 * h)
    return out


def test_nhwc_gradients_match_finite_differences() -> None:
    sx, sw, attrs = CONVS[0]
    x, w = nhwc(randn(sx, 5)), randn(sw, 6)
    loss = conv_loss("NHWC", attrs)
    gx, gw = nc.grad(loss, argnums=(0, 1))(x, w)
    np.testing.assert_allclose(
        gx.numpy(), numeric_grad(lambda a: loss(a, w), x), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        gw.numpy(), numeric_grad(lambda b: loss(x, b), w), rtol=1e-6, atol=1e-7
    )
    sx, attrs = POOLS[2]
    x = nhwc(randn(sx, 7))
    ploss = pool_loss("NHWC", attrs)
    np.testing.assert_allclose(
        ploss_grad := nc.grad(ploss)(x).numpy(), numeric_grad(ploss, x), rtol=1e-6
    )
    assert np.any(ploss_grad != 0)


@pytest.mark.parametrize("sx,sw,attrs", CONVS)
def test_compiled_nhwc_conv_and_gradients_match_reference(sx, sw, attrs) -> None:
    x, w = nhwc(randn(sx, 8, np.float32)), randn(sw, 9, np.float32)
    loss = conv_loss("NHWC", attrs)

    def value_and_grads(x, w):
        return loss(x, w), nc.grad(loss, argnums=(0, 1))(x, w)

    k = sw[1] * sw[2] * sw[3]
    check(value_and_grads, x, w, tol=acc(np.float32, k * 32, scale=10.0))


@pytest.mark.parametrize("sx,attrs", POOLS)
def test_compiled_nhwc_pools_and_gradients_match_reference(sx, attrs) -> None:
    x = nhwc(randn(sx, 10, np.float32))
    loss = pool_loss("NHWC", attrs)

    def value_and_grad(x):
        return loss(x), nc.grad(loss)(x)

    check(value_and_grad, x, tol=acc(np.float32, 64, scale=10.0))
