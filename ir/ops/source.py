"""Ops with no inputs."""

from __future__ import annotations

from .. import dtypes as dt
from ..errors import ShapeError
from ..registry import AttrSpec, OpDef, register_op
from ..types import TensorType


def _infer_constant(types, attrs):
    v = attrs["value"]
    return [TensorType(tuple(int(d) for d in v.shape), dt.dtype(v.dtype))]


register_op(
    OpDef(
        "constant",
        _infer_constant,
        num_inputs=0,
        attrs={"value": AttrSpec("array")},
        category="source",
        doc="A literal array, stored in the graph.",
    )
)


def _infer_batch_size(types, attrs):
    if attrs["scale"] < 1 or attrs["offset"] < 0:
        raise ShapeError(
            f"batch_size: scale*n + offset needs scale >= 1 and offset >= 0, "
            f"got scale={attrs['scale']}, offset={attrs['offset']}"
        )
    return [TensorType((), attrs["dtype"])]


register_op(
    OpDef(
        "batch_size",
        _infer_batch_size,
        num_inputs=0,
        attrs={
            "scale": AttrSpec("int", 1),
            "offset": AttrSpec("int", 0),
            "dtype": AttrSpec("dtype", dt.int64),
        },
        category="source",
        doc="scale*n + offset for the run-time batch size n of a dynamic-batch graph "
        "(a mean over the batch divides by it).",
    )
)
