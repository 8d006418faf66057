"""Movement ops: they rearrange or select elements without arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

from .. import dtypes as dt
from ..errors import ShapeError
from ..registry import (
    AttrSpec,
    OpDef,
    broadcast_shapes,
    normalize_axis,
    register_op,
    require_kind,
    require_same_dtype,
)
from ..symbolic import Dim, SymbolicShapeError
from ..types import TensorType, check_shape


def _infer_reshape(types, attrs):
    (t,) = types
    shape = check_shape(attrs["shape"], "reshape target")
    if TensorType(shape, t.dtype).size != t.size:
        raise ShapeError(f"cannot reshape {t.shape} ({t.size} elements) to {shape}")
    return [TensorType(shape, t.dtype)]


def _infer_transpose(types, attrs):
    (t,) = types
    perm = attrs["perm"]
    if sorted(perm) != list(range(t.rank)):
        raise ShapeError(f"perm {perm} is not a permutation of the {t.rank} axes of {t.shape}")
    return [TensorType(tuple(t.shape[p] for p in perm), t.dtype)]


def _infer_expand(types, attrs):
    (t,) = types
    target = check_shape(attrs["shape"], "expand target")
    return [TensorType(broadcast_shapes(t.shape, target), t.dtype)]


@dataclass(frozen=True)
class WholeAxis:
    """An axis a slice leaves whole whose size is the symbolic batch size (a ``range``
    cannot hold one); ``axis_length`` and ``is_whole`` read both kinds."""

    stop: Dim
    start: int = 0
    step: int = 1


def axis_length(r: range | WholeAxis) -> int | Dim:
    return r.stop if isinstance(r, WholeAxis) else len(r)


def is_whole(r: range | WholeAxis, size: int | Dim) -> bool:
    return isinstance(r, WholeAxis) or r == range(size)


def slice_ranges(shape: tuple[int, ...], starts, ends, axes, steps) -> list[range]:
    """ONNX Slice semantics as one ``range`` per axis. Negative starts/ends count from the
    end once; then, for a positive step, both clamp to [0, dim]; for a negative step the
    start clamps to [0, dim - 1] and the end to [-1, dim - 1], so an end of -1 after
    clamping means 'through index 0'. (NumPy differs for a start below -dim with a
    negative step: it gives an empty slice, ONNX starts at 0.)"""
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        raise ShapeError("slice: starts, ends, axes and steps must have the same length")
    ranges = [WholeAxis(d) if type(d) is Dim else range(d) for d in shape]
    seen = set()
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        a = normalize_axis(axis, len(shape))
        if a in seen:
            raise ShapeError(f"slice: axis {axis} given twice")
        seen.add(a)
        if step == 0:
            raise ShapeError("slice: step must not be 0")
        dim = shape[a]
        if type(dim) is Dim:  # only the whole batch, or its first row, for every n >= 1
            if step == 1 and start == 0 and end >= 2**62:
                continue
            if step >= 1 and 0 <= start < end <= 1:
                ranges[a] = range(0, 1)
                continue
            raise SymbolicShapeError(
                f"slice: axis {a} of {shape} is the symbolic batch size; a dynamic-batch "
                "graph can take all of it or its first row, not "
                f"[{start}:{end}:{step}]"
            )
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if dim == 0:
            ranges[a] = range(0)
        elif step > 0:
            ranges[a] = range(min(max(start, 0), dim), min(max(end, 0), dim), step)
        else:
            ranges[a] = range(min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step)
    return ranges


def range_to_slice(r: range) -> slice:
    """The Python slice selecting exactly ``r`` (a stop of -1 must become None)."""
    if len(r) == 0:
        return slice(0, 0)
    return slice(r.start, r.stop if r.stop >= 0 else None, r.step)


def _infer_slice(types, attrs):
    (t,) = types
    ranges = slice_ranges(t.shape, attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"])
    return [TensorType(tuple(axis_length(r) for r in ranges), t.dtype)]


def _infer_pad(types, attrs):
    (t,) = types
    pads = attrs["pads"]
    if len(pads) != 2 * t.rank or any(p < 0 for p in pads):
        raise ShapeError(f"pad: pads must be 2*rank={2 * t.rank} non-negative ints, got {pads}")
    begin, end = pads[: t.rank], pads[t.rank :]
    for i, d in enumerate(t.shape):
        grow = begin[i] + end[i]
        if attrs["mode"] == "reflect" and grow and max(begin[i], end[i]) >= d:
            raise ShapeError(f"pad: reflect pads ({begin[i]}, {end[i]}) need a dim > pad, got {d}")
        if attrs["mode"] == "edge" and grow and d == 0:
            raise ShapeError(f"pad: edge mode cannot pad an empty axis {i}")
    shape = tuple(d + b + e for d, b, e in zip(t.shape, begin, end, strict=True))
    return [TensorType(shape, t.dtype)]


def _infer_concat(types, attrs):
    d = require_same_dtype(types)
    first = types[0]
    if first.rank == 0:
        raise ShapeError("concat: cannot concatenate 0-d tensors")
    axis = normalize_axis(attrs["axis"], first.rank)
    for t in types[1:]:
        if t.rank != first.rank or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first.shape, strict=True)) if i != axis
        ):
            shapes = ", ".join(str(x.shape) for x in types)
            raise ShapeError(f"concat: shapes {shapes} differ off axis {axis}")
    size = sum(t.shape[axis] for t in types)
    return [TensorType(first.shape[:axis] + (size,) + first.shape[axis + 1 :], d)]


def _infer_gather(types, attrs):
    data, idx = types
    require_kind(idx, "int", "indices")
    if data.rank == 0:
        raise ShapeError("gather: data must have rank >= 1")
    axis = normalize_axis(attrs["axis"], data.rank)
    return [TensorType(data.shape[:axis] + idx.shape + data.shape[axis + 1 :], data.dtype)]


def _infer_gather_elements(types, attrs):
    data, idx = types
    require_kind(idx, "int", "indices")
    if data.rank == 0 or idx.rank != data.rank:
        raise ShapeError(f"gather_elements: indices {idx.shape} must have data's rank {data.rank}")
    axis = normalize_axis(attrs["axis"], data.rank)
    for i, (di, ii) in enumerate(zip(data.shape, idx.shape, strict=True)):
        if i != axis and ii > di:
            raise ShapeError(
                f"gather_elements: indices {idx.shape} exceed data {data.shape} on axis {i}"
            )
    return [TensorType(idx.shape, data.dtype)]


def _infer_one_hot(types, attrs):
    (idx,) = types
    require_kind(idx, "int", "indices")
    depth = attrs["depth"]
    if depth < 0:
        raise ShapeError(f"one_hot: depth must be >= 0, got {depth}")
    axis = attrs["axis"]
    if not -(idx.rank + 1) <= axis <= idx.rank:
        raise ShapeError(f"one_hot: axis {axis} out of range for indices of rank {idx.rank}")
    axis %= idx.rank + 1
    return [TensorType(idx.shape[:axis] + (depth,) + idx.shape[axis:], attrs["dtype"])]


register_op(OpDef("reshape", _infer_reshape, 1, {"shape": AttrSpec("ints")}, "movement"))
register_op(OpDef("transpose", _infer_transpose, 1, {"perm": AttrSpec("ints")}, "movement"))
register_op(
    OpDef(
        "expand",
        _infer_expand,
        1,
        {"shape": AttrSpec("ints")},
        "movement",
        doc="ONNX Expand: broadcast the input and the shape against each other.",
    )
)
register_op(
    OpDef(
        "slice",
        _infer_slice,
        1,
        {
            "starts": AttrSpec("ints"),
            "ends": AttrSpec("ints"),
            "axes": AttrSpec("ints"),
            "steps": AttrSpec("ints"),
        },
        "movement",
    )
)
register_op(
    OpDef(
        "pad",
        _infer_pad,
        1,
        {
            "pads": AttrSpec("ints"),
            "mode": AttrSpec("str", "constant", ("constant", "reflect", "edge")),
            "value": AttrSpec("float", 0.0),
        },
        "movement",
        doc="pads = [begin_0, ..., begin_n, end_0, ..., end_n] as in ONNX.",
    )
)
register_op(OpDef("concat", _infer_concat, (1, None), {"axis": AttrSpec("int")}, "movement"))
register_op(OpDef("gather", _infer_gather, 2, {"axis": AttrSpec("int")}, "movement"))
register_op(
    OpDef(
        "gather_elements",
        _infer_gather_elements,
        2,
        {"axis": AttrSpec("int")},
        "movement",
        doc="take_along_axis: out[i] = data[i with i[axis] replaced by indices[i]].",
    )
)
register_op(
    OpDef(
        "one_hot",
        _infer_one_hot,
        1,
        {
            "depth": AttrSpec("int"),
            "axis": AttrSpec("int", -1),
            "dtype": AttrSpec("dtype", dt.float32),
        },
        "movement",
        doc="ONNX OneHot with values (0, 1); indices outside [-depth, depth) give all zeros.",
    )
)
