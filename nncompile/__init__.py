"""nncompile: trace Python models into a static graph IR, differentiate, optimize, and
lower them to native code. Eager execution on NumPy is the semantic reference.

    import nncompile as nc
    y = nc.relu(x @ w).sum()          # eager, on NumPy arrays
    g = nc.trace(f, x, w)             # an nncompile.ir.Graph
    nc.run(g, x, w)                   # the reference interpreter, == eager
"""

from . import _installed  # noqa: I001  (first: a clear error for a checkout not installed)
from . import ir  # noqa: I001  (ir first: it registers the ops)
from .ir.dtypes import bool_, float32, float64, int32, int64
from .errors import (
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
from .tensor import Tensor, as_tensor
from .ops import (
    abs,
    add,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctanh,
    argmax,
    argmin,
    astype,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    broadcast_to,
    clip,
    concatenate,
    cos,
    cosh,
    divide,
    equal,
    erf,
    exp,
    expand_dims,
    greater,
    greater_equal,
    hardswish,
    less,
    less_equal,
    log,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    negative,
    not_equal,
    one_hot,
    ones_like,
    pad,
    power,
    reciprocal,
    relu,
    reshape,
    sigmoid,
    sign,
    sin,
    sinh,
    sqrt,
    square,
    squeeze,
    stack,
    stop_gradient,
    subtract,
    sum,
    take,
    take_along_axis,
    tan,
    tanh,
    transpose,
    trunc_divide,
    where,
    zeros_like,
)
from .nn_ops import avg_pool2d, conv2d, max_pool2d
from .nn_ops_1d import avg_pool1d, conv1d, max_pool1d
from .conv_transpose import conv_transpose1d, conv_transpose2d
from .adaptive_pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
)
from .resize import interpolate
from .composites import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    elu,
    gelu,
    layer_norm,
    leaky_relu,
    linear,
    log_softmax,
    logsumexp,
    mae,
    mse,
    softmax,
    softplus,
)
from .activations import hardtanh, relu6, silu
from .statistics import cumsum, std, var
from .splitting import chunk, split
from .nll import nll_loss
from .sorting import sort, topk
from .attention import scaled_dot_product_attention
from .tracing import trace
from .dispatch import name_scope
from .run import run
from . import autodiff, data, distributed, functional, init, losses, metrics, nn, optim, passes
from .passes import optimize
from .functional import batch_norm, dropout, embedding
from .autodiff import value_and_grad
from .autodiff.api import grad
from .training import train_step
from .compiler import compile, jit, lower
from .profiler import profile
from .visualize import viz

tensor = as_tensor


def __getattr__(name: str):
    """``nc.onnx`` is imported on first use: its converters add a tenth to the import time
    of every program, and most never read a model file."""
    if name == "onnx":
        import importlib

        return importlib.import_module(".onnx", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


asarray = as_tensor

__version__ = "0.1.0"

# What `from nncompile import *` gives: the functions, dtypes, errors and subpackages
# above (modules imported only as a side effect, like nncompile.tracing, are left out).
__all__ = [
    "CompileError",
    "ConfigError",
    "DTypeError",
    "DataError",
    "DistributedError",
    "ExecutionError",
    "GraphError",
    "MissingDependencyError",
    "NCError",
    "OpAttributeError",
    "SerializationError",
    "ShapeError",
    "Tensor",
    "TraceError",
    "abs",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "add",
    "arccos",
    "arccosh",
    "arcsin",
    "arcsinh",
    "arctan",
    "arctanh",
    "argmax",
    "argmin",
    "as_tensor",
    "asarray",
    "astype",
    "autodiff",
    "avg_pool1d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "bitwise_and",
    "bitwise_not",
    "bitwise_or",
    "bitwise_xor",
    "bool_",
    "broadcast_to",
    "chunk",
    "clip",
    "compile",
    "concatenate",
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "cos",
    "cosh",
    "cross_entropy",
    "cumsum",
    "data",
    "divide",
    "dropout",
    "elu",
    "embedding",
    "equal",
    "erf",
    "exp",
    "expand_dims",
    "float32",
    "float64",
    "functional",
    "gelu",
    "grad",
    "greater",
    "greater_equal",
    "hardswish",
    "hardtanh",
    "init",
    "int32",
    "int64",
    "interpolate",
    "ir",
    "jit",
    "layer_norm",
    "leaky_relu",
    "less",
    "less_equal",
    "linear",
    "log",
    "log_softmax",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "logsumexp",
    "losses",
    "lower",
    "mae",
    "matmul",
    "max",
    "max_pool1d",
    "max_pool2d",
    "maximum",
    "mean",
    "metrics",
    "min",
    "minimum",
    "mse",
    "multiply",
    "name_scope",
    "negative",
    "nll_loss",
    "nn",
    "not_equal",
    "one_hot",
    "onnx",
    "ones_like",
    "optim",
    "optimize",
    "pad",
    "passes",
    "power",
    "profile",
    "reciprocal",
    "relu",
    "relu6",
    "reshape",
    "run",
    "scaled_dot_product_attention",
    "sigmoid",
    "sign",
    "silu",
    "sin",
    "sinh",
    "softmax",
    "softplus",
    "sort",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "stop_gradient",
    "subtract",
    "sum",
    "take",
    "take_along_axis",
    "tan",
    "tanh",
    "tensor",
    "topk",
    "trace",
    "train_step",
    "transpose",
    "trunc_divide",
    "value_and_grad",
    "var",
    "viz",
    "where",
    "zeros_like",
]
