"""The layer base class: a layer is configuration plus named NumPy arrays, and a pure
``call`` written with nc ops, so the same model runs eagerly, traces and differentiates.

Weights live outside graphs: a model gathers every layer's ``params`` (trained) and
``state`` (updated by the forward pass, e.g. batch-norm running statistics) into nested
dicts keyed by layer name, passes them to a compiled step, and stores what comes back.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import ops
from ..functional import ACTIVATIONS, activation
from ..ir.errors import ConfigError
from ..tensor import Tensor

Shape = tuple[int, ...]
# What a layer is built for: one sample shape, or a list of them for a layer called on
# several inputs (merge layers, attention's [query, value]).
InputShape = Shape | list[Shape]

LAYER_TYPES: dict[str, type[Layer]] = {}


def snake_case(name: str) -> str:
    """Keras' default layer names: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def check_activation(name: Any) -> Any:
    if name is not None and not callable(name) and name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return name


@dataclass(frozen=True)
class Weight:
    """An array a layer declares: its shape and dtype, whether the forward pass updates it
    (``state``, e.g. batch-norm statistics) rather than training it, and ``init(shape,
    rng)``, which makes its first value."""

    shape: Shape
    init: Callable[[Shape, np.random.Generator], np.ndarray]
    dtype: Any = np.float32
    state: bool = False


# Where a layer's declared weights come from while this is set (loading a saved model):
# source(layer, name, weight) -> array. Unset: from ``weight.init``.
WeightSource = Callable[["Layer", str, Weight], np.ndarray]
_SOURCE: contextvars.ContextVar[WeightSource | None] = contextvars.ContextVar(
    "weight_source", default=None
)


@contextlib.contextmanager
def weights_from(source: WeightSource) -> Iterator[None]:
    """Layers built in this block take their declared weights from ``source`` instead of
    initializing them, so a loader checks each shape before anything is allocated."""
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)


@dataclass
class CallContext:
    """What a forward pass shares between layers: the mode, the dropout key, and the
    layers' state in (read) and out (written by layers that update it)."""

    training: bool
    key: Any = None  # an int64 scalar (tensor); dropout masks derive from it
    state_in: dict[str, dict[str, Any]] = field(default_factory=dict)
    state_out: dict[str, dict[str, Any]] = field(default_factory=dict)


class Layer:
    """Subclasses set ``input_dtype`` if not float32, and implement ``weights`` (declare
    the arrays for an input shape, batch dimension excluded; or ``create``, which makes
    them), ``forward`` (the computation before the activation) and ``config``
    (constructor arguments, JSON-serializable)."""

    input_dtype = np.float32

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):  # shared bases are not layers of their own
            LAYER_TYPES[cls.__name__] = cls

    def __init__(
        self,
        activation: Any = None,
        name: str | None = None,
        input_shape: Shape | None = None,
        trainable: bool = True,
    ):
        self.activation = check_activation(activation)
        self.name = name
        self.input_shape = as_input_shape(input_shape) if input_shape is not None else None
        self.trainable = trainable
        self.params: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.output_shape: Shape | None = None
        self.output_dtype: Any = None
        self.built = False
        self._nodes: list[Any] = []  # its calls on symbolic tensors (nn/symbolic.py)

    # -- to implement ---------------------------------------------------------------------
    def weights(self, input_shape: InputShape) -> dict[str, Weight] | None:
        """The arrays for inputs of ``input_shape`` (a list of shapes for a layer called on
        several inputs), by name, in initialization order (None: ``create`` makes them)."""
        return None

    def create(self, input_shape: InputShape, rng: np.random.Generator) -> None:
        """Make ``self.params`` / ``self.state`` for inputs of ``input_shape`` (layers that
        declare ``weights`` need not implement this)."""
        declared = self.weights(input_shape) or {}
        source = _SOURCE.get()
        arrays = {
            name: source(self, name, w) if source else np.asarray(w.init(w.shape, rng), w.dtype)
            for name, w in declared.items()
        }
        self.params = {name: arrays[name] for name, w in declared.items() if not w.state}
        self.state = {name: arrays[name] for name, w in declared.items() if w.state}

    def forward(self, params: dict[str, Any], x: Tensor, ctx: CallContext) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def config(self) -> dict[str, Any]:
        return {}

    # -- shared ---------------------------------------------------------------------------
    def call(
        self, params: dict[str, Any], x: Any, ctx: CallContext, skip_activation: bool = False
    ) -> Tensor:
        y = self.forward(params, x, ctx)
        return y if skip_activation else activation(y, self.activation)

    def build(self, input_shape: InputShape, rng: np.random.Generator) -> Shape:
        """Create the weights for ``input_shape`` and return the output shape (both without
        the batch dimension; a list of shapes: the layer takes a list of inputs). The output
        shape is read off a trace of ``call``, so it can never disagree with what the layer
        computes."""
        from ..tracing import trace

        self.input_shape = as_input_shape(input_shape)
        self.create(self.input_shape, rng)
        shapes = self.input_shape if isinstance(self.input_shape, list) else [self.input_shape]
        # broadcast zeros: tracing needs only the shapes, so nothing is allocated
        examples = [np.broadcast_to(np.zeros((), self.input_dtype), (1,) + s) for s in shapes]
        example = examples if isinstance(self.input_shape, list) else examples[0]

        def probe(params: dict, state: dict, x: Any) -> Tensor:
            return self.call(params, x, CallContext(False, None, {self.name: state}))

        graph = trace(probe, self.params, self.state, example)
        self.output_shape = tuple(graph.outputs[0].shape[1:])
        self.output_dtype = np.dtype(graph.outputs[0].dtype.name)
        self.built = True
        return self.output_shape

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        """Keras' layer call. On symbolic tensors (``nn.Input`` and what layers made of it)
        it builds the layer and records the connection for ``nn.Model``; several positional
        tensors are passed as one list (``mha(query, value)``). On arrays or Tensors it
        computes: inside a model's ``apply`` with the params given to it, elsewhere with the
        layer's own weights."""
        from .symbolic import call_layer

        return call_layer(self, inputs, kwargs)

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": self.name}
        if self.activation is not None and not callable(self.activation):
            cfg["activation"] = self.activation
        if self.input_shape is not None:
            shape = self.input_shape
            multi = isinstance(shape, list)
            cfg["input_shape"] = [list(s) for s in shape] if multi else list(shape)
        if not self.trainable:
            cfg["trainable"] = False
        cfg.update(self.config())
        return cfg

    @property
    def param_count(self) -> int:
        return sum(int(a.size) for a in self.params.values())

    @property
    def state_count(self) -> int:
        return sum(int(a.size) for a in self.state.values())

    def get_weights(self) -> list[np.ndarray]:
        return [a.copy() for a in (*self.params.values(), *self.state.values())]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or '(unnamed)'} -> {self.output_shape}>"


def as_input_shape(shape: Any) -> InputShape:
    """A sample shape as a tuple of ints, or a list of them (given as a list of sequences)."""
    items = list(shape)
    if items and all(isinstance(s, (list, tuple)) for s in items):
        return [tuple(int(d) for d in s) for s in items]
    return tuple(int(d) for d in items)


def as_pair(v: Any, what: str) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in pair):
        raise ConfigError(f"{what} must be a positive int or a pair of them, got {v!r}")
    return int(pair[0]), int(pair[1])


def positive_int(v: Any, what: str) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ConfigError(f"{what} must be a positive integer, got {v!r}")
    return int(v)


def check_padding(padding: Any) -> str:
    if padding not in ("valid", "same"):
        raise ConfigError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding


def mix_key(key: Any, salt: int) -> Any:
    """A per-layer dropout key, so two dropout layers never share a mask."""
    return ops.astype(key, "int64") * 1009 + salt
