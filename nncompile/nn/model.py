"""``nn.Sequential``: a stack of layers with Keras' model API (summary, compile, fit,
evaluate, predict, save). This module holds the structure and the forward pass; training
lives in ``fitting.py``, saving in ``saving.py``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..dispatch import name_scope
from ..ir.errors import ConfigError, ShapeError
from ..tensor import Tensor
from .base_model import BaseModel, Weights
from .layer import CallContext, Layer, Shape, snake_case


class Sequential(BaseModel):
    """Layers applied in order. The first layer's ``input_shape`` (batch excluded) builds
    the model at once; otherwise it is built on the first ``fit``/``predict``/call."""

    def __init__(
        self, layers: Iterable[Layer] | None = None, name: str = "sequential", seed: int = 0
    ):
        self._init_model(name, seed)
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        for layer in layers or ():
            self.add(layer)

    # -- structure ------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential takes nn layers, got {type(layer).__name__}")
        taken = {existing.name for existing in self.layers}
        if layer.name is None:
            base = snake_case(type(layer).__name__)
            layer.name, k = base, 0
            while layer.name in taken:
                k += 1
                layer.name = f"{base}_{k}"
        elif layer.name in taken:
            raise ConfigError(f"two layers are named {layer.name!r}")
        self.layers.append(layer)
        if self.built:  # as in Keras: a built model builds each layer as it is added
            self.output_shape = layer.build(self.output_shape, self._rng)
        elif len(self.layers) == 1 and layer.input_shape is not None:
            self.build(layer.input_shape)

    def build(self, input_shape: Shape) -> None:
        """Create every layer's weights for samples of ``input_shape`` (batch excluded)."""
        if not self.layers:
            raise ConfigError("a Sequential model needs at least one layer")
        self._rng = np.random.default_rng(self.seed)
        shape = self.input_shape = tuple(int(d) for d in input_shape)
        for layer in self.layers:
            shape = layer.build(shape, self._rng)
        self.output_shape = shape
        self.built = True

    def ensure_built(self, x: np.ndarray) -> None:
        if not self.built:
            self.build(np.shape(x)[1:])
        elif tuple(np.shape(x)[1:]) != self.input_shape:
            raise ShapeError(
                f"model {self.name!r} takes samples of shape {self.input_shape}, "
                f"got data of shape {np.shape(x)} (batch first)"
            )

    @property
    def input_dtype(self) -> Any:
        return self.layers[0].input_dtype

    # -- forward --------------------------------------------------------------------------
    def apply(
        self,
        params: Weights,
        state: Weights,
        x: Any,
        training: bool = False,
        key: Any = None,
        logits: bool = False,
    ) -> tuple[Tensor, Weights]:
        """The forward pass as a pure function: ``(output, new_state)``. With ``logits``
        the last layer's activation is left out (the loss applies it in a stable form)."""
        ctx = CallContext(training, key, state, {})
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            with name_scope(layer.name):
                x = layer.call(
                    params.get(layer.name, {}), x, ctx, skip_activation=logits and i == last
                )
        new_state = {name: ctx.state_out.get(name, arrays) for name, arrays in state.items()}
        return x, new_state

    @property
    def last_activation(self) -> Any:
        return self.layers[-1].activation if self.layers else None
