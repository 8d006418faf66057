"""Trigonometric and hyperbolic ops and their inverses (float inputs only, as ONNX types
them), on nc's libm-backed unary ops."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nncompile as nc

from ..registry import NodeContext, converter
from .math import float_input

_TRIG: dict[str, Callable[[Any], Any]] = {
    "Sin": nc.sin,
    "Cos": nc.cos,
    "Tan": nc.tan,
    "Asin": nc.arcsin,
    "Acos": nc.arccos,
    "Atan": nc.arctan,
    "Sinh": nc.sinh,
    "Cosh": nc.cosh,
    "Asinh": nc.arcsinh,
    "Acosh": nc.arccosh,
    "Atanh": nc.arctanh,
}


@converter(*_TRIG, since=7)
def trig(ctx: NodeContext) -> list[Any]:
    return [_TRIG[ctx.op_type](float_input(ctx))]
