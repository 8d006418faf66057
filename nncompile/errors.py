"""nncompile's exception types (defined in the IR package, the lowest layer)."""

from .ir.errors import (
    AttributeError_,
    CompileError,
    ConfigError,
    DataError,
    DistributedError,
    DTypeError,
    ExecutionError,
    GraphError,
    MissingDependencyError,
    NCError,
    OpAttributeError,
    SerializationError,
    ShapeError,
    TraceError,
)

__all__ = [
    "AttributeError_",
    "CompileError",
    "ConfigError",
    "DataError",
    "DistributedError",
    "DTypeError",
    "ExecutionError",
    "GraphError",
    "MissingDependencyError",
    "NCError",
    "OpAttributeError",
    "SerializationError",
    "ShapeError",
    "TraceError",
]
