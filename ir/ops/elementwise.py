"""Elementwise ops: unary math, binary arithmetic with broadcasting, comparisons, where, cast."""

from __future__ import annotations

from .. import dtypes as dt
from ..registry import (
    AttrSpec,
    OpDef,
    broadcast_shapes,
    register_op,
    require_kind,
    require_same_dtype,
)
from ..types import TensorType
from .binary import BINARY
from .unary import UNARY

# op name -> dtype kinds it accepts (declared in unary.py)
UNARY_OPS = {name: u.kinds for name, u in UNARY.items()}

# groups of the binary ops declared in binary.py, by their dtype kinds
ARITHMETIC_OPS = tuple(n for n, b in BINARY.items() if b.kinds == "numeric" and not b.result_bool)
LOGICAL_OPS = tuple(n for n, b in BINARY.items() if b.kinds == "bool")
BITWISE_OPS = tuple(n for n, b in BINARY.items() if b.kinds == "int")  # two's complement
EQUALITY_OPS = tuple(n for n, b in BINARY.items() if b.result_bool and b.kinds == "any")
ORDER_OPS = tuple(n for n, b in BINARY.items() if b.result_bool and b.kinds == "numeric")
COMPARISON_OPS = EQUALITY_OPS + ORDER_OPS


def _unary(kinds: str):
    def infer(types, attrs):
        require_kind(types[0], kinds)
        return [types[0]]

    return infer


def _binary(kinds: str, result_bool: bool):
    def infer(types, attrs):
        d = require_same_dtype(types)
        require_kind(types[0], kinds)
        shape = broadcast_shapes(types[0].shape, types[1].shape)
        return [TensorType(shape, dt.bool_ if result_bool else d)]

    return infer


def _infer_pow(types, attrs):
    # ONNX Pow: the result keeps the base's dtype; the exponent may differ.
    require_kind(types[0], "numeric", "base")
    require_kind(types[1], "numeric", "exponent")
    return [TensorType(broadcast_shapes(types[0].shape, types[1].shape), types[0].dtype)]


def _infer_where(types, attrs):
    cond, x, y = types
    require_kind(cond, "bool", "condition")
    d = require_same_dtype([x, y])
    return [TensorType(broadcast_shapes(cond.shape, x.shape, y.shape), d)]


def _infer_cast(types, attrs):
    return [TensorType(types[0].shape, attrs["to"])]


for _name, _kinds in UNARY_OPS.items():
    register_op(OpDef(_name, _unary(_kinds), num_inputs=1, category="elementwise"))
for _b in BINARY.values():
    _infer = _infer_pow if _b.kinds is None else _binary(_b.kinds, _b.result_bool)
    register_op(OpDef(_b.name, _infer, num_inputs=2, category="elementwise"))
register_op(
    OpDef(
        "stop_gradient",
        _unary("any"),
        num_inputs=1,
        category="elementwise",
        doc="Identity whose output carries no gradient (e.g. softmax's max shift).",
    )
)
register_op(OpDef("where", _infer_where, num_inputs=3, category="elementwise"))
register_op(
    OpDef(
        "cast", _infer_cast, num_inputs=1, attrs={"to": AttrSpec("dtype")}, category="elementwise"
    )
)
