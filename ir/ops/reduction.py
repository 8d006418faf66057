"""Reductions over explicit axes.

Unlike ONNX, the IR always stores the axes explicitly: ``axes=()`` reduces nothing. The
front end turns ``axis=None`` into every axis, so there is no empty-means-all special case.
"""

from __future__ import annotations

from .. import dtypes as dt
from ..errors import ShapeError
from ..registry import AttrSpec, OpDef, normalize_axis, register_op, require_kind
from ..types import TensorType

REDUCE_OPS = {
    "reduce_sum": "numeric",
    "reduce_mean": "float",
    "reduce_max": "any",
    "reduce_min": "any",
}
ARG_OPS = ("argmax", "argmin")


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def canonical_axes(axes: tuple[int, ...], rank: int) -> tuple[int, ...]:
    norm = tuple(normalize_axis(a, rank) for a in axes)
    if len(set(norm)) != len(norm):
        raise ShapeError(f"repeated axis in {axes}")
    return tuple(sorted(norm))


def _reduce(kinds: str):
    def infer(types, attrs):
        (t,) = types
        require_kind(t, kinds)
        axes = canonical_axes(attrs["axes"], t.rank)
        return [TensorType(reduced_shape(t.shape, axes, attrs["keepdims"]), t.dtype)]

    return infer


def _infer_arg(types, attrs):
    (t,) = types
    require_kind(t, "numeric")
    axis = normalize_axis(attrs["axis"], t.rank)
    if t.shape[axis] == 0:
        raise ShapeError(f"cannot take the arg of an empty axis {axis} (shape {t.shape})")
    shape = reduced_shape(t.shape, (axis,), attrs["keepdims"])
    return [TensorType(shape, dt.int64)]


_REDUCE_ATTRS = {"axes": AttrSpec("ints"), "keepdims": AttrSpec("bool")}
for _name, _kinds in REDUCE_OPS.items():
    register_op(OpDef(_name, _reduce(_kinds), 1, dict(_REDUCE_ATTRS), category="reduction"))
for _name in ARG_OPS:
    register_op(
        OpDef(
            _name,
            _infer_arg,
            1,
            {"axis": AttrSpec("int"), "keepdims": AttrSpec("bool")},
            category="reduction",
            doc="Index of the first extreme value along one axis (int64).",
        )
    )
