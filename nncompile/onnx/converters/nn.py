"""Matrix products and convolutions: Gemm, MatMul, Conv, ConvTranspose (1-D and 2-D)."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ...dispatch import bind
from ..registry import NodeContext, converter
from .windows import as_2d, from_2d, ints, pads4, pair, spatial_rank, window_pads


def _dtype(v: Any) -> np.dtype:
    return np.dtype(getattr(v, "dtype", None) or np.asarray(v).dtype)


def _same_dtype(ctx: NodeContext, *values: Any) -> None:
    """ONNX takes one dtype T for these inputs; nc would promote a mix silently."""
    dtypes = {str(_dtype(v)) for v in values if v is not None}
    if len(dtypes) > 1:
        ctx.unsupported(f"inputs of different dtypes {sorted(dtypes)}")


@converter("Gemm")
def gemm(ctx: NodeContext) -> list[Any]:
    """alpha * A' @ B' + beta * C, with A' = A.T when transA (the same for B); C
    broadcasts to (M, N)."""
    a, b, c = ctx.input(0), ctx.input(1), ctx.optional_input(2)
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    trans_a, trans_b = ctx.attr("transA", 0), ctx.attr("transB", 0)
    if ctx.opset < 7:
        ctx.attr("broadcast", 0)  # C broadcasts either way in the cases nncompile runs
    _same_dtype(ctx, a, b, c)
    dtype = _dtype(a)
    if dtype.kind != "f" and (alpha != 1.0 or (c is not None and beta != 1.0)):
        ctx.unsupported(f"integer Gemm with alpha={alpha}, beta={beta} (only 1.0)")
    a = nc.transpose(a) if trans_a else a
    b = nc.transpose(b) if trans_b else b
    y = nc.matmul(a, b)
    if alpha != 1.0:
        y = y * np.asarray(alpha, dtype)
    if c is not None:
        y = y + (c * np.asarray(beta, dtype) if beta != 1.0 else c)
    return [y]


@converter("MatMul")
def matmul(ctx: NodeContext) -> list[Any]:
    """numpy.matmul: batched N-D with broadcasting, 1-D operands promoted and dropped."""
    a, b = ctx.input(0), ctx.input(1)
    _same_dtype(ctx, a, b)
    return [nc.matmul(a, b)]


def _bias(y: Any, b: Any, rank: int) -> Any:
    return y if b is None else y + nc.reshape(b, (-1,) + (1,) * rank)


def _conv_attrs(ctx: NodeContext, x: Any, w: Any, b: Any) -> tuple[int, list, list, list]:
    """What Conv and ConvTranspose read alike: spatial rank, kernel (W's, which a
    kernel_shape attribute must repeat), strides and dilations."""
    rank = spatial_rank(ctx, x, ctx.op_type)
    _same_dtype(ctx, x, w, b)
    kernel = list(w.shape[2:])
    if ints(ctx, "kernel_shape", rank, 0) not in (kernel, [0] * rank):
        ctx.unsupported(f"kernel_shape {ctx.attr('kernel_shape')} differs from W's {kernel}")
    return rank, kernel, ints(ctx, "strides", rank, 1), ints(ctx, "dilations", rank, 1)


@converter("Conv")
def conv(ctx: NodeContext) -> list[Any]:
    x, w, b = ctx.input(0), ctx.input(1), ctx.optional_input(2)
    rank, kernel, strides, dilations = _conv_attrs(ctx, x, w, b)
    group = ctx.attr("group", 1)
    begin, end = window_pads(ctx, list(x.shape[2:]), kernel, strides, dilations)
    if min(begin + end) < 0:
        ctx.unsupported(f"negative pads {begin + end}")
    y = bind(
        "conv2d",
        nc.as_tensor(as_2d(x, rank)),
        nc.as_tensor(as_2d(w, rank)),
        strides=pair(strides, rank, 1),
        pads=pads4(begin, end, rank),
        dilations=pair(dilations, rank, 1),
        groups=int(group),
        layout="NCHW",
    )
    return [_bias(from_2d(y, rank), b, rank)]


@converter("ConvTranspose")
def conv_transpose(ctx: NodeContext) -> list[Any]:
    """The full transposed convolution (no padding), then cropped to the pads (or grown
    with zeros where output_padding / output_shape reach past it), then the bias."""
    x, w, b = ctx.input(0), ctx.input(1), ctx.optional_input(2)
    rank, kernel, strides, dilations = _conv_attrs(ctx, x, w, b)
    out_pad = ints(ctx, "output_padding", rank, 0)
    group = ctx.attr("group", 1)
    sizes = list(x.shape[2:])
    axes = zip(sizes, kernel, strides, dilations, strict=True)
    full = [s * (n - 1) + d * (k - 1) + 1 for n, k, s, d in axes]
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    output_shape = ctx.attr("output_shape", None)
    pads = ctx.attr("pads", None)
    if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # ONNX: pads are derived from the output shape (the input size times the stride
        # for SAME_*); the odd one goes at the end unless SAME_UPPER says the beginning
        if output_shape and len(output_shape) not in (rank, rank + 2):
            ctx.unsupported(f"attribute output_shape={output_shape} needs {rank} values")
        outs = [int(v) for v in output_shape[-rank:]] if output_shape else None
        outs = outs or [n * s for n, s in zip(sizes, strides, strict=True)]
        begin = []
        for f, p, o in zip(full, out_pad, outs, strict=True):
            total = f + p - o
            first = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            # an output_shape beyond the full result grows it at the end (as ONNX
            # Runtime does; the formula would put a zero row first when total < -1)
            begin.append(max(first, 0) if output_shape else first)
    elif auto_pad in ("NOTSET", "", "VALID"):
        if pads and auto_pad != "VALID":
            if len(pads) != 2 * rank:
                ctx.unsupported(f"attribute pads={pads} needs {2 * rank} values")
            begin, end = [int(p) for p in pads[:rank]], [int(p) for p in pads[rank:]]
        else:
            begin = end = [0] * rank
        outs = [f + p - b0 - e0 for f, p, b0, e0 in zip(full, out_pad, begin, end, strict=True)]
    else:
        ctx.unsupported(f"attribute auto_pad={auto_pad!r} is not supported")
    y = nc.conv_transpose2d(
        as_2d(x, rank),
        as_2d(w, rank),
        stride=pair(strides, rank, 1),
        groups=int(group),
        dilation=pair(dilations, rank, 1),
    )
    y = _window(from_2d(y, rank), begin, outs)
    return [_bias(y, b, rank)]


def _window(y: Any, begin: list[int], outs: list[int]) -> Any:
    """y's spatial region [begin, begin + out) per axis, zeros outside y."""
    widths = [(0, 0), (0, 0)]
    index: list[Any] = [slice(None), slice(None)]
    for axis, (b0, o) in enumerate(zip(begin, outs, strict=True)):
        n = y.shape[2 + axis]
        before, after = max(-b0, 0), max(b0 + o - n, 0)
        widths.append((before, after))
        start = b0 + before
        index.append(slice(start, start + o))
    if any(w != (0, 0) for w in widths):
        y = nc.pad(y, widths)
    return y[tuple(index)]
