"""Ops with no inputs."""

from __future__ import annotations

from .. import dtypes as dt
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
