"""Primitive ops, forward and backward (nc.grad vs torch autograd), table-driven.

Each case is (nncompile fn, torch fn, input builders, differentiable argnums). The loss is
sum(out * cotangent) with a fixed random cotangent, in float64 (rtol 1e-8) and float32
(rtol 1e-4)."""

import numpy as np
import pytest

import nncompile as nc

from .torch_support import check

torch = pytest.importorskip("torch")

F = torch.nn.functional


R = np.random.default_rng(7)


def n(*shape):
    return R.standard_normal(shape)


def pos(*shape):
    return R.uniform(0.5, 2.0, shape)


def distinct(*shape):
    """Values far from ties (max/min/relu/abs gradients are unambiguous)."""
    size = int(np.prod(shape))
    return (R.permutation(size) - size / 2 + 0.5).reshape(shape) / size * 4


IDX = R.integers(0, 5, (3, 4))
IDX_NEG = np.array([[-1, 0], [2, -5]])
ALONG = R.integers(0, 4, (3, 2, 5))

OPS = {
    # elementwise unary
    "negative": (nc.negative, torch.neg, [n(3, 4)]),
    "abs": (nc.abs, torch.abs, [distinct(3, 4)]),
    "relu": (nc.relu, torch.relu, [distinct(3, 4)]),
    "exp": (nc.exp, torch.exp, [n(3, 4)]),
    "log": (nc.log, torch.log, [pos(3, 4)]),
    "sqrt": (nc.sqrt, torch.sqrt, [pos(3, 4)]),
    "reciprocal": (nc.reciprocal, torch.reciprocal, [pos(3, 4)]),
    "tanh": (nc.tanh, torch.tanh, [n(3, 4)]),
    "sigmoid": (nc.sigmoid, torch.sigmoid, [n(3, 4) * 4]),
    "erf": (nc.erf, torch.erf, [n(3, 4)]),
    "hardswish": (nc.hardswish, F.hardswish, [distinct(3, 4) * 2.5]),  # all 3 pieces
    "square": (nc.square, torch.square, [n(3, 4)]),
    "sign": (nc.sign, torch.sign, [distinct(3, 4)]),
    # elementwise binary, with broadcasting
    "add": (nc.add, torch.add, [n(3, 4), n(4)]),
    "subtract": (nc.subtract, torch.sub, [n(3, 1), n(1, 4)]),
    "multiply": (nc.multiply, torch.mul, [n(2, 3, 4), n(3, 1)]),
    "divide": (nc.divide, torch.div, [n(3, 4), pos(3, 4)]),
    "power": (nc.power, torch.pow, [pos(3, 4), n(3, 4)]),
    "power_int_exp": (lambda a: nc.power(a, 3.0), lambda a: torch.pow(a, 3.0), [n(3, 4)]),
    "maximum": (nc.maximum, torch.maximum, [distinct(3, 4), distinct(3, 4) + 0.01]),
    "minimum": (nc.minimum, torch.minimum, [distinct(3, 4), distinct(3, 4) + 0.01]),
    "clip": (lambda a: nc.clip(a, -0.45, 0.75), lambda a: a.clamp(-0.45, 0.75), [distinct(4, 5)]),
    "where": (
        lambda a, b: nc.where(a > 0, a, b),
        lambda a, b: torch.where(a > 0, a, b),
        [distinct(3, 4), n(4)],
    ),
    # reductions
    "sum_all": (nc.sum, torch.sum, [n(3, 4)]),
    "sum_axis": (lambda a: nc.sum(a, 1), lambda a: a.sum(1), [n(2, 3, 4)]),
    "sum_axes_keep": (
        lambda a: nc.sum(a, (0, 2), keepdims=True),
        lambda a: a.sum((0, 2), keepdim=True),
        [n(2, 3, 4)],
    ),
    "mean_all": (nc.mean, torch.mean, [n(3, 4)]),
    "mean_axis": (lambda a: nc.mean(a, -1), lambda a: a.mean(-1), [n(2, 3, 4)]),
    "max_all": (nc.max, torch.amax, [distinct(3, 4)]),
    "max_axis": (lambda a: nc.max(a, 1), lambda a: a.amax(1), [distinct(2, 3, 4)]),
    "min_axis_keep": (
        lambda a: nc.min(a, 0, keepdims=True),
        lambda a: a.amin(0, keepdim=True),
        [distinct(3, 4)],
    ),
    # linear algebra
    "matmul": (nc.matmul, torch.matmul, [n(3, 4), n(4, 5)]),
    "matmul_batched": (nc.matmul, torch.matmul, [n(2, 3, 4), n(2, 4, 5)]),
    "matmul_bcast": (nc.matmul, torch.matmul, [n(2, 1, 3, 4), n(3, 4, 2)]),
    "matmul_vec": (nc.matmul, torch.matmul, [n(3, 4), n(4)]),
    # shape ops
    "transpose": (
        lambda a: nc.transpose(a, (2, 0, 1)),
        lambda a: a.permute(2, 0, 1),
        [n(2, 3, 4)],
    ),
    "reshape": (lambda a: nc.reshape(a, (4, -1)), lambda a: a.reshape(4, -1), [n(2, 3, 4)]),
    "broadcast_to": (
        lambda a: nc.broadcast_to(a, (2, 3, 4)),
        lambda a: a.expand(2, 3, 4),
        [n(3, 1)],
    ),
    "expand_dims": (lambda a: nc.expand_dims(a, 1), lambda a: a.unsqueeze(1), [n(3, 4)]),
    "squeeze": (lambda a: nc.squeeze(a, 1), lambda a: a.squeeze(1), [n(3, 1, 4)]),
    "concatenate": (
        lambda a, b: nc.concatenate([a, b, a], axis=1),
        lambda a, b: torch.cat([a, b, a], 1),
        [n(2, 3), n(2, 5)],
    ),
    "stack": (
        lambda a, b: nc.stack([a, b], axis=-1),
        lambda a, b: torch.stack([a, b], -1),
        [n(2, 3), n(2, 3)],
    ),
    "pad_constant": (
        lambda a: nc.pad(a, ((1, 2), (0, 3)), constant_values=1.5),
        lambda a: F.pad(a, (0, 3, 1, 2), value=1.5),
        [n(3, 4)],
    ),
    "pad_reflect": (
        lambda a: nc.pad(a, ((0, 0), (0, 0), (1, 2), (2, 1)), mode="reflect"),
        lambda a: F.pad(a, (2, 1, 1, 2), mode="reflect"),
        [n(1, 2, 4, 5)],
    ),
    "pad_edge": (
        lambda a: nc.pad(a, ((0, 0), (0, 0), (2, 0), (1, 3)), mode="edge"),
        lambda a: F.pad(a, (1, 3, 2, 0), mode="replicate"),
        [n(1, 2, 4, 5)],
    ),
    # indexing
    "slice": (lambda a: a[1:3, ::2], lambda a: a[1:3, ::2], [n(4, 5)]),
    "slice_int_ellipsis": (lambda a: a[..., 1, 1:], lambda a: a[..., 1, 1:], [n(2, 3, 4)]),
    "slice_newaxis": (lambda a: a[:, None, -2:], lambda a: a[:, None, -2:], [n(3, 4)]),
    "take_axis0_repeats": (
        lambda a, i: nc.take(a, i, axis=0),
        lambda a, i: a[i],
        [n(5, 3), IDX],
    ),
    "take_axis1": (
        lambda a, i: nc.take(a, i, axis=1),
        lambda a, i: torch.index_select(a, 1, i.reshape(-1)).reshape(2, 3, 4),
        [n(2, 5), IDX],
    ),
    "take_negative": (
        lambda a, i: nc.take(a, i, axis=0),
        lambda a, i: a[torch.where(i < 0, i + 5, i)],
        [n(5, 3), IDX_NEG],
    ),
    "take_along_axis": (
        lambda a, i: nc.take_along_axis(a, i, axis=1),
        lambda a, i: torch.take_along_dim(a, i, dim=1),
        [n(3, 4, 5), ALONG],
    ),
    # trigonometric and hyperbolic (last, so the data drawn for the rows above is unchanged)
    "sin": (nc.sin, torch.sin, [n(3, 4)]),
    "cos": (nc.cos, torch.cos, [n(3, 4)]),
    "tan": (nc.tan, torch.tan, [n(3, 4) * 0.4]),
    "arcsin": (nc.arcsin, torch.asin, [n(3, 4) * 0.3]),
    "arccos": (nc.arccos, torch.acos, [n(3, 4) * 0.3]),
    "arctan": (nc.arctan, torch.atan, [n(3, 4)]),
    "sinh": (nc.sinh, torch.sinh, [n(3, 4)]),
    "cosh": (nc.cosh, torch.cosh, [n(3, 4)]),
    "arcsinh": (nc.arcsinh, torch.asinh, [n(3, 4)]),
    "arccosh": (nc.arccosh, torch.acosh, [pos(3, 4) + 1.1]),
    "arctanh": (nc.arctanh, torch.atanh, [n(3, 4) * 0.3]),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(OPS))
def test_op_forward_backward_matches_torch(name, dtype):
    ours, theirs, args = OPS[name]
    argnums = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]
    check(ours, theirs, args, argnums, dtype)


@pytest.mark.parametrize("name", ["log", "divide", "matmul", "sum_all", "take_along_axis"])
def test_op_gradient_traced_equals_eager(name):
    ours, _, args = OPS[name]
    argnums = tuple(i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f")

    def loss(*a):
        return nc.sum(ours(*a) * ours(*a))

    eager = nc.grad(loss, argnums=argnums)(*args)
    traced = nc.run(nc.trace(nc.grad(loss, argnums=argnums), *args), *args)
    for e, t in zip(eager, traced, strict=True):
        np.testing.assert_array_equal(np.asarray(e), t)


CONV_CASES = [
    ((2, 3, 7, 7), (4, 3, 3, 3), {}),
    ((2, 3, 7, 8), (4, 3, 3, 2), {"stride": 2, "padding": 1}),
    ((1, 3, 7, 7), (4, 3, 3, 3), {"stride": (2, 1), "padding": (1, 2)}),
    ((1, 2, 9, 8), (3, 2, 3, 2), {"dilation": (2, 3), "stride": 2, "padding": 1}),
    ((1, 4, 6, 6), (6, 2, 3, 3), {"groups": 2, "padding": 1}),
    ((2, 6, 5, 5), (6, 1, 3, 3), {"groups": 6, "dilation": 2, "padding": 2}),
    ((1, 3, 6, 7), (2, 3, 4, 2), {"padding": "same"}),
    ((1, 3, 6, 7), (2, 3, 3, 3), {"padding": "valid"}),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("xs, ws, kw", CONV_CASES)
def test_conv2d_forward_backward(xs, ws, kw, dtype):
    args = [n(*xs), n(*ws), n(ws[0])]
    check(
        lambda x, w, b: nc.conv2d(x, w, b, **kw),
        lambda x, w, b: F.conv2d(x, w, b, **kw),
        args,
        [0, 1, 2],
        dtype,
    )


POOL_CASES = [
    (2, {}),
    (3, {"stride": 1}),
    ((3, 2), {"stride": (2, 1)}),
    (3, {"stride": 2, "padding": 1}),
    ((2, 3), {"padding": (1, 1)}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("k, kw", POOL_CASES + [(3, {"dilation": 2, "padding": 1})])
def test_max_pool2d_forward_backward(k, kw, dtype):
    check(
        lambda x: nc.max_pool2d(x, k, **kw),
        lambda x: F.max_pool2d(x, k, **kw),
        [distinct(2, 3, 9, 8)],
        [0],
        dtype,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("include", [True, False], ids=["incl_pad", "excl_pad"])
@pytest.mark.parametrize("k, kw", POOL_CASES)
def test_avg_pool2d_forward_backward(k, kw, include, dtype):
    check(
        lambda x: nc.avg_pool2d(x, k, count_include_pad=include, **kw),
        lambda x: F.avg_pool2d(x, k, count_include_pad=include, **kw),
        [n(2, 3, 9, 8)],
        [0],
        dtype,
    )
