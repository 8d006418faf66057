"""Converters for ops that move or make data without arithmetic: Reshape, Transpose,
Flatten, Squeeze/Unsqueeze, Concat, Split, Expand, Tile, Pad, ConstantOfShape, Range,
EyeLike, Trilu, DepthToSpace/SpaceToDepth.

Shapes are static in nncompile, so every size-giving input (a Reshape's shape, Pad's
pads, Tile's repeats) must be known while converting; ONNX computes them from the graph
inputs only in models nncompile cannot run with static shapes."""

from __future__ import annotations

import math
from typing import Any, NoReturn

import numpy as np

import nncompile as nc

from ...errors import ShapeError
from ..registry import NodeContext, converter
from ..tensors import compute_array, numpy_dtype


def invalid(ctx: NodeContext, message: str) -> NoReturn:
    """A model ONNX itself rejects (shapes that do not fit, out-of-range axes or indices):
    bad input, a ShapeError naming the node, not a missing feature."""
    raise ShapeError(f"ONNX node {ctx.name!r} ({ctx.op_type}, opset {ctx.opset}): {message}")


def _ints(a: np.ndarray | list[int] | None) -> list[int]:
    return [] if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


def _axis(ctx: NodeContext, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < rank:
        invalid(ctx, f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def _axes_input_or_attr(ctx: NodeContext, since: int, index: int) -> list[int] | None:
    """Axes given as an attribute before opset ``since`` and as input ``index`` from it."""
    if ctx.opset < since:
        axes = ctx.attr("axes", None)
        return None if axes is None else list(axes)
    a = ctx.constant(index, "axes")
    return None if a is None else _ints(a)


@converter("Reshape", constant_inputs=(1,))
def reshape(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    if ctx.opset < 5:
        shape = list(ctx.attr("shape"))
    else:
        shape = _ints(ctx.constant(1, "shape"))
    allowzero = ctx.attr("allowzero", 0) if ctx.opset >= 14 else 0
    if not allowzero:  # 0 copies the input's dim at that position
        dims = np.shape(x)
        for i, d in enumerate(shape):
            if d == 0:
                if i >= len(dims):
                    invalid(ctx, f"shape {shape}: 0 at {i} has no input dim to copy")
                shape[i] = dims[i]
    if shape.count(-1) > 1:
        invalid(ctx, f"shape {shape} has more than one -1")
    return [nc.reshape(x, tuple(shape))]


@converter("Transpose")
def transpose(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    perm = ctx.attr("perm", None)
    return [nc.transpose(x, None if perm is None else tuple(perm))]


@converter("Flatten")
def flatten(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    shape = np.shape(x)
    axis = ctx.attr("axis", 1)
    if not -len(shape) <= axis <= len(shape):
        invalid(ctx, f"axis {axis} is out of range for rank {len(shape)}")
    axis = axis + len(shape) if axis < 0 else axis
    return [nc.reshape(x, (math.prod(shape[:axis]), math.prod(shape[axis:])))]


@converter("Squeeze", constant_inputs=(1,))
def squeeze(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    axes = _axes_input_or_attr(ctx, 13, 1)
    shape = np.shape(x)
    if axes is None:
        return [nc.reshape(x, tuple(d for d in shape if d != 1))]
    drop = {_axis(ctx, a, len(shape), "axes entry") for a in axes}
    if any(shape[a] != 1 for a in drop):
        invalid(ctx, f"axes {sorted(drop)} of shape {shape} are not all size 1")
    return [nc.reshape(x, tuple(d for i, d in enumerate(shape) if i not in drop))]


@converter("Unsqueeze", constant_inputs=(1,))
def unsqueeze(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    axes = _axes_input_or_attr(ctx, 13, 1)
    if axes is None:
        invalid(ctx, "axes are required")
    shape = list(np.shape(x))
    rank = len(shape) + len(axes)
    new = sorted(_axis(ctx, a, rank, "axes entry") for a in axes)
    if len(set(new)) != len(new):
        invalid(ctx, f"axes {axes} repeat an axis")
    for a in new:
        shape.insert(a, 1)
    return [nc.reshape(x, tuple(shape))]


@converter("Concat")
def concat(ctx: NodeContext) -> list[Any]:
    xs = [ctx.input(i) for i in range(ctx.num_inputs) if ctx.has_input(i)]
    # Concat-1's axis was optional with default 1; from opset 4 it is required
    axis = ctx.attr("axis", 1) if ctx.opset < 4 else ctx.attr("axis")
    axis = _axis(ctx, axis, len(np.shape(xs[0])))
    if all(isinstance(x, np.ndarray) for x in xs):
        return [np.concatenate(xs, axis)]
    return [nc.concatenate(xs, axis)]


@converter("Split", constant_inputs=(1,))
def split(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    shape = np.shape(x)
    axis = _axis(ctx, ctx.attr("axis", 0), len(shape))
    n, outputs = shape[axis], len(ctx.node.output)
    # Split-1 took the sizes as an attribute or as input 1; 2..12 as the attribute
    if ctx.opset < 13 and not (ctx.opset < 2 and ctx.has_input(1)):
        sizes = ctx.attr("split", None)
    else:
        sizes = ctx.constant(1, "split")
    num = ctx.attr("num_outputs", None) if ctx.opset >= 18 else None
    if sizes is not None and len(_ints(sizes)):
        sizes = _ints(sizes)
        if num is not None:
            invalid(ctx, "both the split input and num_outputs are given")
    elif num is not None:  # pieces of ceil(n / num), the last smaller
        size = -(-n // num)
        sizes = [min(size, max(n - i * size, 0)) for i in range(num)]
    else:
        if n % outputs:
            invalid(ctx, f"axis {axis} of size {n} does not split into {outputs} equal parts")
        sizes = [n // outputs] * outputs
    if len(sizes) != outputs or sum(sizes) != n or min(sizes) < 0:
        invalid(ctx, f"split sizes {sizes} do not cut size {n} into {outputs} outputs")
    return list(nc.split(x, sizes, axis))


@converter("Expand", constant_inputs=(1,))
def expand(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    want = tuple(_ints(ctx.constant(1, "shape")))
    try:
        shape = np.broadcast_shapes(np.shape(x), want)  # ONNX broadcasts both ways
    except ValueError:
        invalid(ctx, f"shape {list(want)} does not broadcast with input {np.shape(x)}")
    return [nc.broadcast_to(x, shape)]


@converter("Tile", constant_inputs=(1,))
def tile(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    if ctx.opset < 6:
        ctx.unsupported("Tile-1 (tiles and axis inputs) is not supported; Tile from opset 6")
    reps = _ints(ctx.constant(1, "repeats"))
    shape = np.shape(x)
    if len(reps) != len(shape) or min(reps, default=0) < 0:
        invalid(ctx, f"repeats {reps} must be {len(shape)} non-negative ints")
    # a new axis of size r before each dim, broadcast, merged: copies repeat whole
    spread = sum(((1, d) for d in shape), ())
    big = sum(((r, d) for r, d in zip(reps, shape, strict=True)), ())
    y = nc.broadcast_to(nc.reshape(x, spread), big)
    return [nc.reshape(y, tuple(r * d for r, d in zip(reps, shape, strict=True)))]


@converter("ConstantOfShape", constant_inputs=(0,))
def constant_of_shape(ctx: NodeContext) -> list[Any]:
    shape = _ints(ctx.constant(0, "shape"))
    value = ctx.attr("value", None)
    value = np.zeros(1, np.float32) if value is None else value
    if value.size != 1:
        invalid(ctx, f"value must hold one element, it has {value.size}")
    return [np.full(shape, value.reshape(()), dtype=value.dtype)]


@converter("Range", constant_inputs=(0, 1, 2))
def range_(ctx: NodeContext) -> list[Any]:
    start, limit, delta = (ctx.constant(i, n) for i, n in enumerate(("start", "limit", "delta")))
    dtype = start.dtype
    if delta.reshape(()) == 0:
        invalid(ctx, "delta is 0")
    count = max(math.ceil((limit.reshape(()) - start.reshape(())) / delta.reshape(())), 0)
    return [(start.reshape(()) + np.arange(count, dtype=dtype) * delta.reshape(())).astype(dtype)]


@converter("EyeLike")
def eye_like(ctx: NodeContext) -> list[Any]:
    """Depends only on the input's (static) shape: a known array."""
    shape = np.shape(ctx.input(0))
    if len(shape) != 2:
        invalid(ctx, f"input must be 2-D, got shape {shape}")
    code = ctx.attr("dtype", None)
    dtype = np.dtype(ctx.input(0).dtype) if code is None else numpy_dtype(code, ctx.name)
    eye = np.eye(shape[0], shape[1], k=ctx.attr("k", 0), dtype=dtype)
    return [compute_array(eye, f"ONNX node {ctx.name!r} (EyeLike)")]


@converter("Trilu", constant_inputs=(1,))
def trilu(ctx: NodeContext) -> list[Any]:
    """Keeps x[..., i, j] where j - i >= k (upper) or <= k (lower); k does not change the
    shape, so it may be computed in the graph."""
    x = ctx.input(0)
    shape = np.shape(x)
    if len(shape) < 2:
        invalid(ctx, f"input must be at least 2-D, got shape {shape}")
    k = ctx.optional_input(1)
    k = np.zeros((), np.int64) if k is None else nc.reshape(k, ())
    diagonal = np.arange(shape[-1])[None, :] - np.arange(shape[-2])[:, None]
    upper = ctx.attr("upper", 1)
    keep = nc.greater_equal(diagonal, k) if upper else nc.less_equal(diagonal, k)
    return [nc.where(keep, x, nc.zeros_like(x))]


@converter("DepthToSpace")
def depth_to_space(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    bs = ctx.attr("blocksize")
    mode = ctx.attr("mode", "DCR")
    b, c, h, w = _four_d(ctx, x)
    if c % (bs * bs):
        invalid(ctx, f"channels {c} are not a multiple of blocksize² {bs * bs}")
    if mode == "DCR":
        y = nc.reshape(x, (b, bs, bs, c // bs**2, h, w))
        y = nc.transpose(y, (0, 3, 4, 1, 5, 2))
    elif mode == "CRD":
        y = nc.reshape(x, (b, c // bs**2, bs, bs, h, w))
        y = nc.transpose(y, (0, 1, 4, 2, 5, 3))
    else:
        ctx.unsupported(f"mode {mode!r} (only DCR and CRD)")
    return [nc.reshape(y, (b, c // bs**2, h * bs, w * bs))]


@converter("SpaceToDepth")
def space_to_depth(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    bs = ctx.attr("blocksize")
    mode = ctx.attr("mode", "DCR")  # an attribute from opset 28; before, always DCR
    b, c, h, w = _four_d(ctx, x)
    if h % bs or w % bs:
        invalid(ctx, f"height {h} and width {w} must be multiples of blocksize {bs}")
    y = nc.reshape(x, (b, c, h // bs, bs, w // bs, bs))
    if mode == "DCR":
        y = nc.transpose(y, (0, 3, 5, 1, 2, 4))
    elif mode == "CRD":
        y = nc.transpose(y, (0, 1, 3, 5, 2, 4))
    else:
        ctx.unsupported(f"mode {mode!r} (only DCR and CRD)")
    return [nc.reshape(y, (b, c * bs * bs, h // bs, w // bs))]


def _four_d(ctx: NodeContext, x: Any) -> tuple[int, ...]:
    shape = np.shape(x)
    if len(shape) != 4:
        invalid(ctx, f"input must be 4-D (N, C, H, W), got shape {shape}")
    return tuple(int(d) for d in shape)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@converter("Pad", constant_inputs=(1, 2, 3))
def pad(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    rank = len(np.shape(x))
    mode = ctx.attr("mode", "constant")
    if ctx.opset < 11:
        pads = list(ctx.attr("paddings" if ctx.opset < 2 else "pads"))
        value, axes = ctx.attr("value", 0.0), list(range(rank))
    else:
        pads = _ints(ctx.constant(1, "pads"))
        v = ctx.optional_input(2)
        value = 0 if v is None or np.size(v) == 0 else v
        if isinstance(value, np.ndarray):
            value = value.reshape(-1)[0].item()
        a = ctx.constant(3, "axes")  # an input from opset 18
        axes = (
            list(range(rank))
            if a is None
            else [_axis(ctx, i, rank, "axes entry") for i in _ints(a)]
        )
    if mode not in _PAD_MODES:
        ctx.unsupported(f"mode {mode!r} (only {sorted(_PAD_MODES)})")
    if len(pads) != 2 * len(axes):
        invalid(ctx, f"pads {pads} must hold 2 numbers per padded axis ({len(axes)})")
    widths = [[0, 0] for _ in range(rank)]
    for k, a in enumerate(axes):
        widths[a] = [pads[k], pads[k + len(axes)]]
    # negative pads crop: slice them off first, then pad what is positive
    crop = tuple(slice(max(-b, 0), np.shape(x)[i] - max(-e, 0)) for i, (b, e) in enumerate(widths))
    if any(b < 0 or e < 0 for b, e in widths):
        x = nc.as_tensor(x)[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if not any(b or e for b, e in widths):
        return [nc.as_tensor(x)]
    if mode == "constant" and not isinstance(value, nc.Tensor):
        return [nc.pad(x, widths, "constant", value)]
    if mode == "constant":  # a value computed in the graph: pad with 0, then select it
        inside = np.pad(np.ones(np.shape(x), bool), widths)
        return [nc.where(inside, nc.pad(x, widths), nc.reshape(value, ()))]
    if any(np.shape(x)[i] == 0 for i, (b, e) in enumerate(widths) if b or e):
        ctx.unsupported(f"mode {mode!r} pads an empty axis of shape {np.shape(x)}")
    return [nc.pad(x, widths, _PAD_MODES[mode])]
