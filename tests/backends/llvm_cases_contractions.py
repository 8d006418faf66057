"""LLVM op cases for contractions (matmul, convolution, pooling) and the gradient
primitives (transposed convolution, pooling gradients, scatter-adds, random numbers),
registered in llvm_cases.CASES and run by test_llvm_ops.py (and tests/gpu)."""

from __future__ import annotations

import numpy as np

import nncompile as nc
from nncompile.dispatch import bind

from . import llvm_support as S
from .llvm_cases import case

F32, F64, I32, I64, BOOL = S.F32, S.F64, S.I32, S.I64, S.BOOL
acc, data, rng_for = S.acc, S.data, S.rng_for


# ---- contractions -----------------------------------------------------------------------

MATMUL_SHAPES = [
    ((17, 33), (33, 3)),
    ((33,), (33, 17)),
    ((5, 33), (33,)),
    ((17,), (17,)),
    ((2, 1, 3, 17), (4, 17, 5)),
    ((1, 1), (1, 1)),
    ((3, 0), (0, 4)),  # K = 0: zeros
    ((0, 3), (3, 4)),
    ((16, 16), (16, 48)),
    ((65, 40), (40, 67)),
]


@case("matmul", "float32", "float64", "int32", "int64")
def _matmul(dtype):
    rng = rng_for("matmul", dtype)
    pairs = [(data(rng, a, dtype, -5, 5), data(rng, b, dtype, -5, 5)) for a, b in MATMUL_SHAPES]
    tol = {f"matmul/{i}": acc(dtype, max(a[-1], 1), 10.0) for i, (a, _) in enumerate(MATMUL_SHAPES)}

    def fn(pairs):
        out = {f"matmul/{i}": a @ b for i, (a, b) in enumerate(pairs)}
        a, b = pairs[0]
        out["matmul/transposed"] = nc.transpose(b) @ nc.transpose(a)
        tol["matmul/transposed"] = acc(dtype, 3, 10.0)
        return out

    return fn, (pairs,), tol


CONVS = [
    # x shape, w shape, stride, padding, dilation, groups
    ((2, 3, 17, 13), (5, 3, 3, 3), 1, 0, 1, 1),
    ((1, 4, 16, 16), (6, 2, 3, 3), 2, 1, 1, 2),
    ((2, 3, 9, 11), (4, 3, 2, 3), (2, 1), (0, 2), (2, 1), 1),
    ((1, 4, 8, 8), (4, 1, 3, 3), 1, "same", 2, 4),  # depthwise, dilated, same
    ((3, 1, 5, 5), (2, 1, 5, 5), 1, 0, 1, 1),  # window == input
    ((1, 2, 1, 7), (3, 2, 1, 1), 3, 0, 1, 1),  # 1x1 kernel, stride 3
]


@case("conv2d", "float32", "float64")
def _conv2d(dtype):
    rng = rng_for("conv2d", dtype)
    xs = [data(rng, c[0], dtype) for c in CONVS]
    ws = [data(rng, c[1], dtype) for c in CONVS]
    bias = data(rng, (5,), dtype)
    tol = {f"conv/{i}": acc(dtype, int(np.prod(c[1][1:])), 9.0) for i, c in enumerate(CONVS)}
    tol["conv/bias_relu"] = acc(dtype, 27, 9.0)

    def fn(xs, ws, bias):
        out = {}
        for i, (x, w, c) in enumerate(zip(xs, ws, CONVS, strict=True)):
            out[f"conv/{i}"] = nc.conv2d(x, w, None, c[2], c[3], c[4], c[5])
        out["conv/bias_relu"] = nc.relu(nc.conv2d(xs[0], ws[0], bias))
        return out

    return fn, (xs, ws, bias), tol


POOLS = [
    # x shape, kernel, stride, pads (h0, w0, h1, w1), dilation
    ((2, 3, 17, 13), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1)),
    ((1, 2, 9, 9), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ((1, 2, 11, 10), (3, 2), (2, 3), (1, 0, 2, 1), (2, 1)),
    ((2, 1, 7, 7), (3, 3), (2, 2), (1, 2, 1, 0), (2, 2)),
    ((1, 1, 1, 5), (1, 5), (1, 1), (0, 0, 0, 0), (1, 1)),
]


@case("pool", "float32", "float64")
def _pool(dtype):
    rng = rng_for("pool", dtype)
    xs = [data(rng, p[0], dtype) for p in POOLS]
    ties = data(rng, (1, 2, 9, 9), I64, -1, 1).astype(dtype)
    xs[1] = ties

    def fn(xs):
        out = {}
        for i, (x, (_, k, s, p, d)) in enumerate(zip(xs, POOLS, strict=True)):
            attrs = {"kernel": k, "strides": s, "pads": p, "dilations": d}
            out[f"max/{i}"] = bind("max_pool2d", x, **attrs)
            for cip in (False, True):
                out[f"avg/{i}_{cip}"] = bind("avg_pool2d", x, count_include_pad=cip, **attrs)
        out["max/torch_api"] = nc.max_pool2d(xs[0], 3, 2, 1)
        out["avg/torch_api"] = nc.avg_pool2d(xs[0], 3, 2, 1)
        return out

    return fn, (xs,), {"max": "exact", "*": "arith"}


# ---- gradient primitives ------------------------------------------------------------------


@case("conv-backward", "float32", "float64")
def _conv_backward(dtype):
    rng = rng_for("conv-backward", dtype)
    gs, ws, xs, attrs = [], [], [], []
    for xshape, wshape, stride, padding, dilation, groups in CONVS:
        if padding == "same":
            continue
        stride = stride if isinstance(stride, tuple) else (stride, stride)
        padding = padding if isinstance(padding, tuple) else (padding, padding)
        dilation = dilation if isinstance(dilation, tuple) else (dilation, dilation)
        a = {"strides": stride, "pads": padding * 2, "dilations": dilation, "groups": groups}
        x, w = data(rng, xshape, dtype), data(rng, wshape, dtype)
        y = nc.run(nc.trace(lambda x, w, a=a: bind("conv2d", x, w, **a), x, w), x, w)
        xs.append(x), ws.append(w), attrs.append(a)
        gs.append(data(rng, y.shape, dtype))

    def fn(xs, ws, gs):
        out = {}
        for i, (x, w, g, a) in enumerate(zip(xs, ws, gs, attrs, strict=True)):
            out[f"dx/{i}"] = bind("conv2d_backward_input", g, w, input_hw=x.shape[2:], **a)
            out[f"dw/{i}"] = bind("conv2d_backward_weight", x, g, kernel=w.shape[2:], **a)
        return out

    return fn, (xs, ws, gs), (acc(dtype, 200, 9.0))


@case("pool-backward", "float32", "float64")
def _pool_backward(dtype):
    rng = rng_for("pool-backward", dtype)
    xs, gs = [], []
    for shape, k, s, p, d in POOLS:
        x = data(rng, shape, I64, -1, 1).astype(dtype)  # ties: the first maximum wins
        attrs = {"kernel": k, "strides": s, "pads": p, "dilations": d}
        y = nc.run(nc.trace(lambda x, a=attrs: bind("max_pool2d", x, **a), x), x)
        xs.append(x), gs.append(data(rng, y.shape, dtype))

    def fn(xs, gs):
        out = {}
        for i, (x, g, (_, k, s, p, d)) in enumerate(zip(xs, gs, POOLS, strict=True)):
            attrs = {"kernel": k, "strides": s, "pads": p, "dilations": d}
            out[f"max/{i}"] = bind("max_pool2d_backward", x, g, **attrs)
            for cip in (False, True):
                out[f"avg/{i}_{cip}"] = bind(
                    "avg_pool2d_backward", g, input_hw=x.shape[2:], count_include_pad=cip, **attrs
                )
        return out

    return fn, (xs, gs), acc(dtype, 9, 3.0)


@case("scatter", "float32", "float64")
def _scatter(dtype):
    rng = rng_for("scatter", dtype)
    idx = rng.integers(-5, 5, (2, 7))  # duplicates and negative indices
    g1 = data(rng, (3, 2, 7, 4), dtype)
    eidx = rng.integers(-17, 17, (4, 6, 3)).astype(np.int32)
    g2 = data(rng, (4, 6, 3), dtype)
    eidx1 = rng.integers(-3, 3, (4, 1)).astype(np.int64)  # extent 1 on the axis
    g3 = data(rng, (4, 1), dtype)
    gs = data(rng, (2, 3, 4), dtype)

    def fn(idx, g1, eidx, g2, eidx1, g3, gs):
        return {
            "scatter_add/axis1": bind("scatter_add", g1, idx, axis=1, shape=(3, 5, 4)),
            "scatter_add/axis0": bind(
                "scatter_add", g2, nc.as_tensor(np.array([1, -1, 0, 1])), axis=0, shape=(3, 6, 3)
            ),
            "scatter_elements/axis1": bind(
                "scatter_elements_add", g2, eidx, axis=1, shape=(5, 17, 4)
            ),
            "scatter_elements/extent1": bind(
                "scatter_elements_add", g3, eidx1, axis=1, shape=(6, 3)
            ),
            "slice_backward/neg_step": bind(
                "slice_backward",
                gs,
                shape=(5, 7, 9),
                starts=(4, 1, -2),
                ends=(0, 7, -100),
                axes=(0, 1, 2),
                steps=(-2, 2, -2),
            ),
            "slice_backward/axis1": bind(
                "slice_backward",
                gs,
                shape=(2, 9, 4),
                starts=(2,),
                ends=(8,),
                axes=(1,),
                steps=(2,),
            ),
        }

    return fn, (idx, g1, eidx, g2, eidx1, g3, gs), acc(dtype, 4, 3.0)


@case("random_uniform")
def _random_uniform():
    keys = [np.int64(0), np.int64(-1), np.int64(2**62 + 12345), np.int32(7)]

    def fn(keys):
        out = {}
        for i, k in enumerate(keys):
            out[f"f32/{i}"] = bind("random_uniform", k, shape=(17, 33), dtype=nc.float32)
            out[f"f64/{i}"] = bind("random_uniform", k, shape=(3, 1, 5), dtype=nc.float64)
        out["scalar"] = bind("random_uniform", keys[0], shape=(), dtype=nc.float32)
        out["empty"] = bind("random_uniform", keys[0], shape=(0, 3), dtype=nc.float32)
        out["dropout_mask"] = bind("random_uniform", keys[1], shape=(4, 5)) < 0.5
        return out

    return fn, ([np.asarray(k) for k in keys],), "exact"  # bit-exact
