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
    divide,
    equal,
    erf,
    exp,
    expand_dims,
    greater,
    greater_equal,
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
    sqrt,
    square,
    squeeze,
    stack,
    stop_gradient,
    subtract,
    sum,
    take,
    take_along_axis,
    tanh,
    transpose,
    trunc_divide,
    where,
    zeros_like,
)
from .nn_ops import avg_pool2d, conv2d, max_pool2d
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
from .tracing import trace
from .dispatch import name_scope
from .run import run
from . import autodiff, data, functional, init, losses, metrics, nn, optim, passes
from .passes import optimize
from .autodiff import value_and_grad
from .autodiff.api import grad
from .training import train_step
from .compiler import compile, jit, lower
from .profiler import profile
from .visualize import viz

tensor = as_tensor
asarray = as_tensor

__version__ = "0.1.0"
