"""Converters the importer itself relies on: constants, identity, shapes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...ir.symbolic import SymbolicShapeError, is_symbolic
from ..registry import NodeContext, converter


@converter("Constant")
def constant(ctx: NodeContext) -> list[Any]:
    for key in ("value_string", "value_strings", "sparse_value"):
        if ctx.has_attr(key):
            ctx.attr(key)
            kind = "sparse tensors" if key == "sparse_value" else "string tensors"
            ctx.unsupported(f"attribute {key}: nncompile does not compute on {kind}")
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if ctx.has_attr(key):
            v = ctx.attr(key)
            dtype = np.float32 if "float" in key else (np.int64 if "int" in key else None)
            return [np.asarray(v, dtype=dtype)]
    ctx.unsupported("needs a value attribute nncompile reads (value, value_float(s), value_int(s))")
    return []


@converter("Identity")
def identity(ctx: NodeContext) -> list[Any]:
    return [ctx.input(0)]


@converter("Shape")
def shape(ctx: NodeContext) -> list[Any]:
    """Shapes are static: a known int64 array, so what the exporters compute from it folds."""
    shape = np.shape(ctx.input(0))
    if is_symbolic(shape):
        raise SymbolicShapeError(
            f"ONNX node {ctx.name!r} (Shape) reads a shape holding the symbolic batch size "
            f"({', '.join(map(str, shape))}): the importer folds shape arithmetic into "
            "constants, which n cannot be; compile this model without dynamic_batch"
        )
    dims = np.asarray(shape, np.int64)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    return [dims[start:end]]


@converter("Size")
def size(ctx: NodeContext) -> list[Any]:
    return [np.asarray(int(np.prod(np.shape(ctx.input(0)))), np.int64)]
