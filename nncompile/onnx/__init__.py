"""ONNX import: run, compile, differentiate and fine-tune models from ``.onnx`` files.

    f = nc.onnx.load("model.onnx")        # or bytes, or an onnx.ModelProto
    y = f(x)                               # eager; graph inputs in order or by name
    fast = nc.compile(f, backend="llvm")   # the same function compiled
    grads = nc.grad(lambda p: loss(f.apply(p, x)))(f.params)
    nc.onnx.save(f, new_params, "tuned.onnx")

Needs the optional ``onnx`` package (``pip install 'nncompile[onnx]'``); nothing else in
nncompile imports it.
"""

from __future__ import annotations

from typing import Any

from . import converters  # noqa: F401  (registers every converter)
from .check import CheckReport, NodeCheck, check
from .errors import UnsupportedError
from .export import save
from .function import InputSpec, OnnxFunction
from .narrow import to_containers, to_onnx_dtypes


def load(source: Any) -> OnnxFunction:
    """An ONNX model (a path, bytes or onnx.ModelProto) as an nc function."""
    return OnnxFunction(source)


__all__ = [
    "CheckReport",
    "InputSpec",
    "NodeCheck",
    "OnnxFunction",
    "UnsupportedError",
    "check",
    "load",
    "save",
    "to_containers",
    "to_onnx_dtypes",
]
