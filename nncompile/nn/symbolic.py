"""Keras' functional API, the recording half: ``nn.Input`` makes a symbolic tensor (Keras'
KerasTensor: a sample shape with the batch dimension None, a dtype, and the layer call that
made it), and calling a layer on symbolic tensors builds the layer for their shapes and
records the call as a ``Node``. ``nn.Model`` walks the nodes back from its outputs.

Calling a layer on arrays or Tensors computes instead: inside a model's ``apply`` (an
``ApplyScope`` is active) with the params that ``apply`` was given, so a subclassed model's
``call`` stays a pure function of its weights; elsewhere with the layer's own weights.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dispatch import name_scope
from ..ir.errors import ConfigError, DTypeError, ShapeError
from ..tensor import Tensor, as_tensor
from .layer import CallContext, InputShape, Layer, Shape

# Layers built by a symbolic call (they belong to no model yet) draw their first weights
# from this generator; ``set_random_seed`` makes them reproducible.
_RNG = [np.random.default_rng(0)]


def set_random_seed(seed: int) -> None:
    """Seed the initial weights of layers built outside a Sequential model (by calls on
    ``nn.Input`` tensors or on arrays), as Keras' ``utils.set_random_seed``."""
    _RNG[0] = np.random.default_rng(seed)


@dataclass(eq=False)
class Node:
    """One call of ``layer`` on symbolic tensors: ``inputs`` in call order, ``packed`` when
    the layer received them as a list, and the tensor the call made."""

    layer: Layer
    inputs: list[KerasTensor]
    packed: bool
    output: KerasTensor | None = None


class KerasTensor:
    """A symbolic tensor: ``shape`` (batch first, None), ``dtype``, and ``node``, the layer
    call that made it (for an ``Input``, the input layer's own node)."""

    def __init__(self, sample_shape: Shape, dtype: Any, node: Node):
        self.shape = (None, *sample_shape)
        self.dtype = np.dtype(dtype)
        self.node = node

    @property
    def sample_shape(self) -> Shape:
        return tuple(self.shape[1:])

    @property
    def layer(self) -> Layer:
        return self.node.layer

    @property
    def name(self) -> str | None:
        return self.node.layer.name

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape} dtype={self.dtype} from {self.layer.name!r}>"

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise ConfigError(
            f"{self!r} is symbolic (made by nn.Input): it has no values; build an "
            "nn.Model(inputs, outputs) and call that on data"
        )


INPUT_DTYPES = ("float32", "float64", "int32", "int64")


class InputLayer(Layer):
    """The layer behind ``nn.Input``: no weights, its output is its input."""

    def __init__(self, shape: Any, dtype: str = "float32", name: str | None = None):
        super().__init__(None, name=name)
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        try:
            dims = tuple(shape)
        except TypeError:
            raise ConfigError(f"Input shape must be a tuple of sizes, got {shape!r}") from None
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
            raise ConfigError(
                f"Input shape {shape!r}: every size must be a known positive int (the batch "
                "dimension is left out)"
            )
        if any(d < 1 for d in dims):
            raise ShapeError(f"Input shape {shape!r} has a size below 1")
        if str(np.dtype(dtype)) not in INPUT_DTYPES:
            raise DTypeError(f"Input dtype must be one of {INPUT_DTYPES}, got {dtype!r}")
        self.shape = tuple(int(d) for d in dims)
        self.dtype = str(np.dtype(dtype))
        self.input_dtype = np.dtype(dtype).type
        self.input_shape = self.output_shape = self.shape
        self.output_dtype = np.dtype(dtype)
        self.built = True
        node = Node(self, [], False)
        node.output = KerasTensor(self.shape, self.dtype, node)
        self._nodes.append(node)

    @property
    def output(self) -> KerasTensor:
        return self._nodes[0].output

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return as_tensor(x)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def Input(shape: Any, dtype: str = "float32", name: str | None = None) -> KerasTensor:  # noqa: N802 (Keras' name)
    """A symbolic model input: samples of ``shape`` (batch excluded) and ``dtype``."""
    return InputLayer(shape, dtype, name).output


# -- calling layers -----------------------------------------------------------------------
@dataclass
class ApplyScope:
    """A model's forward pass in progress: layers called on Tensors take their params from
    ``params`` (by layer name). While ``building``, a layer not yet built is built for the
    shape it is called on (drawing from ``rng``) and computes with its fresh weights."""

    params: dict[str, dict[str, Any]]
    ctx: CallContext
    building: bool = False
    rng: np.random.Generator | None = None
    on_layer: Any = None  # called with each layer the pass uses (a model tracks them)
    used: list[Layer] = field(default_factory=list)


_SCOPE: contextvars.ContextVar[ApplyScope | None] = contextvars.ContextVar(
    "apply_scope", default=None
)


@contextlib.contextmanager
def applying(scope: ApplyScope) -> Iterator[ApplyScope]:
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def _shape_of(x: Any) -> InputShape:
    if isinstance(x, list):
        return [tuple(np.shape(a))[1:] for a in x]
    return tuple(np.shape(x))[1:]


def _is_symbolic(inputs: Any) -> bool:
    if isinstance(inputs, (list, tuple)):
        return any(_is_symbolic(i) for i in inputs)
    return isinstance(inputs, KerasTensor)


def call_layer(layer: Layer, inputs: tuple, kwargs: dict[str, Any]) -> Any:
    """``layer(*inputs, **kwargs)``: several positional inputs are one list input."""
    if not inputs:
        raise ConfigError(f"layer {layer.name or type(layer).__name__} was called on nothing")
    x = inputs[0] if len(inputs) == 1 else list(inputs)
    if isinstance(x, tuple):
        x = list(x)
    if _is_symbolic(x):
        return _call_symbolic(layer, x, kwargs)
    unknown = set(kwargs) - {"training"}
    if unknown:
        raise NotImplementedError(
            f"layer {layer.name or type(layer).__name__}: call arguments {sorted(unknown)} "
            "(layers take their inputs positionally, and training=)"
        )
    scope = _SCOPE.get()
    if scope is None:  # outside any model: the layer's own weights
        if not layer.built:
            layer.build(_shape_of(x), _RNG[0])
        ctx = CallContext(bool(kwargs.get("training", False)), None, {layer.name: layer.state})
        return layer.call(layer.params, x, ctx)
    if not layer.built:
        if not scope.building:
            raise ConfigError(
                f"layer {layer.name or type(layer).__name__} is not built: build the model "
                "(call it on data, or fit/predict) before tracing its apply"
            )
        layer.build(_shape_of(x), scope.rng)
    if scope.on_layer is not None:
        scope.on_layer(layer)
    if scope.building:
        scope.ctx.state_in.setdefault(layer.name, layer.state)
        params = layer.params
    else:
        params = scope.params.get(layer.name, {})
    with name_scope(layer.name or type(layer).__name__):
        return layer.call(params, x, scope.ctx)


def _call_symbolic(layer: Layer, x: Any, kwargs: dict[str, Any]) -> KerasTensor:
    who = layer.name or type(layer).__name__
    if kwargs:
        raise NotImplementedError(
            f"layer {who}: keyword arguments {sorted(kwargs)} in a call on symbolic tensors"
        )
    packed = isinstance(x, list)
    tensors = x if packed else [x]
    if not all(isinstance(t, KerasTensor) for t in tensors):
        kinds = [type(t).__name__ for t in tensors]
        raise ConfigError(f"layer {who}: called on symbolic tensors mixed with values {kinds}")
    want = np.dtype(layer.input_dtype)
    for t in tensors:
        if (t.dtype.kind == "f") != (want.kind == "f"):
            raise DTypeError(f"layer {who} takes {want} inputs, got {t.dtype} from {t.name!r}")
    shapes = [t.sample_shape for t in tensors]
    shape: InputShape = shapes if packed else shapes[0]
    if not layer.built:
        layer.build(shape, _RNG[0])
    elif layer.input_shape != shape:
        raise ShapeError(
            f"layer {who} was built for inputs of shape {layer.input_shape}, called on {shape} "
            "(a shared layer takes the same shapes at every call)"
        )
    node = Node(layer, list(tensors), packed)
    dtype = getattr(layer, "output_dtype", None) or np.float32
    node.output = KerasTensor(layer.output_shape, dtype, node)
    # setdefault: a layer class whose __init__ skips Layer.__init__ still records calls
    layer.__dict__.setdefault("_nodes", []).append(node)
    return node.output
