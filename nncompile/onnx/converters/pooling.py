"""MaxPool, AveragePool (1-D and 2-D) and the global pools. ceil_mode is extra end
padding that no window counts: -inf for max, left out of the average's divisor."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ...dispatch import bind
from ..registry import NodeContext, converter
from .windows import as_2d, from_2d, ints, pads4, pair, spatial_rank, window_pads


def _window_args(ctx: NodeContext, x: Any, op: str):
    rank = spatial_rank(ctx, x, op)
    kernel = ints(ctx, "kernel_shape", rank, 0)
    if 0 in kernel:
        ctx.unsupported("attribute kernel_shape is required")
    strides = ints(ctx, "strides", rank, 1)
    dilations = ints(ctx, "dilations", rank, 1)
    sizes = list(x.shape[2:])
    if ctx.attr("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER") and max(dilations) > 1:
        # the spec pads for the dilated window; ONNX Runtime and ONNX's reference pad
        # for the undilated one (and disagree on output sizes): no answer to match
        ctx.unsupported(f"auto_pad={ctx.attr('auto_pad')!r} with dilations={dilations}")
    begin, declared = window_pads(ctx, sizes, kernel, strides, dilations)
    end = declared
    if ctx.attr("ceil_mode", 0):
        end = _ceil_pads(sizes, kernel, strides, dilations, begin, declared)
    return rank, kernel, strides, dilations, begin, end, declared


def _ceil_pads(sizes, kernel, strides, dilations, begin, end) -> list[int]:
    """End pads that make floor division give ceil_mode's output size; a last window
    that would start in the end padding is dropped (as ONNX and PyTorch do)."""
    grown = []
    for n, k, s, d, b0, e0 in zip(sizes, kernel, strides, dilations, begin, end, strict=True):
        span = n + b0 + e0 - (d * (k - 1) + 1)
        out = -(-span // s) + 1
        if (out - 1) * s >= n + b0:
            out -= 1
        grown.append(max(e0, (out - 1) * s + d * (k - 1) + 1 - n - b0))
    return grown


@converter("MaxPool")
def max_pool(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    rank, kernel, strides, dilations, begin, end, _ = _window_args(ctx, x, "MaxPool")
    ctx.attr("storage_order", 0)  # only orders the Indices output, which is unsupported
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        ctx.unsupported("output 1 (Indices) is not supported")
    if np.dtype(x.dtype).kind != "f":
        ctx.unsupported(f"MaxPool of {x.dtype} (nncompile pools floats)")
    k, p = pair(kernel, rank, 1), pads4(begin, end, rank)
    x2 = nc.as_tensor(as_2d(x, rank))
    if not _pads_fit(k, p):  # pad explicitly with -inf, which no window's max picks
        x2, p = nc.pad(x2, _widths(p), constant_values=-np.inf), (0, 0, 0, 0)
    y = bind(
        "max_pool2d",
        x2,
        kernel=k,
        strides=pair(strides, rank, 1),
        pads=p,
        dilations=pair(dilations, rank, 1),
        layout="NCHW",
    )
    return [from_2d(y, rank)]


def _pads_fit(kernel: tuple[int, int], pads: tuple[int, int, int, int]) -> bool:
    """nncompile's pools take pads smaller than the kernel (ceil_mode or dilations can
    ask for more)."""
    return max(pads[0], pads[2]) < kernel[0] and max(pads[1], pads[3]) < kernel[1]


def _widths(pads: tuple[int, int, int, int]) -> list[tuple[int, int]]:
    return [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])]


@converter("AveragePool")
def average_pool(ctx: NodeContext) -> list[Any]:
    """count_include_pad counts the pads attribute's zeros, never ceil_mode's extra end."""
    x = ctx.input(0)
    rank, kernel, strides, dilations, begin, end, declared = _window_args(ctx, x, "AveragePool")
    x2 = nc.as_tensor(as_2d(x, rank))
    counted = np.ones((1, 1) + tuple(x2.shape[2:]), np.dtype(x.dtype))
    if ctx.attr("count_include_pad", 0):
        # zero-pad the declared pads as data, so only ceil_mode's extra pad is excluded
        p = pads4(begin, declared, rank)
        x2, counted = nc.pad(x2, _widths(p)), np.pad(counted, _widths(p), constant_values=1)
        begin = [0] * rank
        end = [e - d for e, d in zip(end, declared, strict=True)]
    k, p = pair(kernel, rank, 1), pads4(begin, end, rank)

    def pool(v: Any, pads: tuple[int, int, int, int]) -> Any:
        return bind(
            "avg_pool2d",
            nc.as_tensor(v),
            kernel=k,
            strides=pair(strides, rank, 1),
            pads=pads,
            dilations=pair(dilations, rank, 1),
            count_include_pad=False,
            layout="NCHW",
        )

    if _pads_fit(k, p):
        return [from_2d(pool(x2, p), rank)]
    # sum over count of the counted elements, with every pad explicit zeros
    widths = _widths(p)
    y = pool(nc.pad(x2, widths), (0, 0, 0, 0)) / pool(np.pad(counted, widths), (0, 0, 0, 0))
    return [from_2d(y, rank)]


def _global(ctx: NodeContext, reduce: Any) -> list[Any]:
    x = ctx.input(0)
    if len(x.shape) < 3:
        ctx.unsupported(f"input of rank {len(x.shape)} (needs N, C and spatial axes)")
    axes = tuple(range(2, len(x.shape)))
    return [reduce(x, axis=axes, keepdims=True)]


@converter("GlobalAveragePool")
def global_average_pool(ctx: NodeContext) -> list[Any]:
    return _global(ctx, nc.mean)


@converter("GlobalMaxPool")
def global_max_pool(ctx: NodeContext) -> list[Any]:
    return _global(ctx, nc.max)
