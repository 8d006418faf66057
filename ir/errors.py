"""The project's exception types.

Every error a user can trigger is one of these, so callers can catch ``NCError`` and
tests can tell a shape problem from a dtype problem from a broken graph.
"""

from __future__ import annotations


class NCError(Exception):
    """Base class of every nncompile error."""


class ShapeError(NCError, ValueError):
    """Operand shapes (or shape-like attributes) are incompatible with an op."""


class DTypeError(NCError, TypeError):
    """Operand dtypes are not accepted by an op, or a dtype is unsupported."""


class AttributeError_(NCError, ValueError):
    """An op attribute is missing, unknown, or of the wrong kind."""


class GraphError(NCError, ValueError):
    """A graph breaks an invariant: unknown op, wrong arity, cycle, dangling value, ..."""


class SerializationError(GraphError):
    """A serialized graph (JSON) is malformed."""


class TraceError(NCError, RuntimeError):
    """An operation is impossible while tracing (e.g. reading a traced value's data)."""


class CompileError(NCError, RuntimeError):
    """A graph could not be compiled: a missing toolchain, device or feature."""


class ConfigError(NCError, ValueError):
    """A model, layer, optimizer or training argument is invalid (unknown name, bad value)."""


class DataError(NCError, ValueError):
    """A data file or dataset is malformed: wrong magic number, truncated, mismatched sizes."""


class MissingDependencyError(NCError, ImportError):
    """An optional dependency a feature needs is not installed; the message says which."""


class ExecutionError(NCError, RuntimeError):
    """A graph failed while running: wrong inputs, or a data-dependent error such as an
    out-of-range gather index."""


class DistributedError(NCError, RuntimeError):
    """A data-parallel job cannot go on: a rank failed, ranks disagree on the model, or
    ranks did not meet at a collective within the timeout."""


# Public name without the trailing underscore would shadow the builtin inside modules
# that star-import; keep the underscore internally and export a clear alias.
OpAttributeError = AttributeError_
