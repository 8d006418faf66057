"""nncompile's tensor-level IR (installed as ``nncompile.ir``)."""

from . import ops  # noqa: F401  (registers every op)
from .dtypes import ALL_DTYPES, DType, bool_, dtype, float32, float64, int32, int64
from .errors import (
    AttributeError_,
    CompileError,
    DTypeError,
    ExecutionError,
    GraphError,
    NCError,
    OpAttributeError,
    SerializationError,
    ShapeError,
    TraceError,
)
from .graph import Graph, Node, Value
from .registry import AttrSpec, OpDef, all_ops, get_op, register_op
from .types import TensorType

__all__ = [
    "ALL_DTYPES",
    "AttrSpec",
    "AttributeError_",
    "DType",
    "DTypeError",
    "ExecutionError",
    "Graph",
    "GraphError",
    "NCError",
    "Node",
    "OpAttributeError",
    "OpDef",
    "SerializationError",
    "ShapeError",
    "TensorType",
    "TraceError",
    "Value",
    "all_ops",
    "bool_",
    "dtype",
    "float32",
    "float64",
    "get_op",
    "int32",
    "int64",
    "register_op",
]
