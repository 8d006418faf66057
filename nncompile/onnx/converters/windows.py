"""Shared window arithmetic of Conv, ConvTranspose and the pools: ONNX's kernel_shape,
strides, dilations, pads and auto_pad attributes as per-axis lists, and 1-D windows run
as 2-D ones of height 1 (nncompile's window ops are 2-D)."""

from __future__ import annotations

from typing import Any

import nncompile as nc

from ..registry import NodeContext


def spatial_rank(ctx: NodeContext, x: Any, op: str) -> int:
    """1 or 2 spatial axes; 3-D windows are unsupported (nncompile has no 3-D kernels)."""
    rank = len(x.shape) - 2
    if rank not in (1, 2):
        ctx.unsupported(f"{rank}-D {op} is not supported (only 1-D and 2-D)")
    return rank


def ints(ctx: NodeContext, name: str, rank: int, default: int) -> list[int]:
    value = ctx.attr(name, None)
    if not value:
        return [default] * rank
    if len(value) != rank:
        ctx.unsupported(f"attribute {name}={value} needs {rank} values")
    return [int(v) for v in value]


def window_pads(
    ctx: NodeContext,
    sizes: list[int],
    kernel: list[int],
    strides: list[int],
    dilations: list[int],
) -> tuple[list[int], list[int]]:
    """(begin, end) pads from ``auto_pad`` and ``pads``. SAME_* keep ceil(size / stride)
    outputs; the odd pad goes at the end (UPPER) or the beginning (LOWER)."""
    rank = len(sizes)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    pads = ctx.attr("pads", None)
    if auto_pad in ("NOTSET", ""):
        if not pads:
            return [0] * rank, [0] * rank
        if len(pads) != 2 * rank:
            ctx.unsupported(f"attribute pads={pads} needs {2 * rank} values")
        return [int(p) for p in pads[:rank]], [int(p) for p in pads[rank:]]
    if auto_pad == "VALID":
        return [0] * rank, [0] * rank
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        ctx.unsupported(f"attribute auto_pad={auto_pad!r} is not supported")
    begin, end = [], []
    for n, k, s, d in zip(sizes, kernel, strides, dilations, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
        small = total // 2
        first = small if auto_pad == "SAME_UPPER" else total - small
        begin.append(first)
        end.append(total - first)
    return begin, end


def as_2d(x: Any, rank: int) -> Any:
    """(N, C, W) -> (N, C, 1, W): a 1-D window op runs as a 2-D one."""
    return nc.expand_dims(x, 2) if rank == 1 else x


def from_2d(y: Any, rank: int) -> Any:
    return nc.squeeze(y, 2) if rank == 1 else y


def pair(values: list[int], rank: int, fill: int) -> tuple[int, int]:
    """Per-axis values of a 1-D or 2-D window as the 2-D (height, width) pair."""
    return (fill, values[0]) if rank == 1 else (values[0], values[1])


def pads4(begin: list[int], end: list[int], rank: int) -> tuple[int, int, int, int]:
    """nncompile's 2-D pads (top, left, bottom, right)."""
    if rank == 1:
        return (0, begin[0], 0, end[0])
    return (begin[0], begin[1], end[0], end[1])
