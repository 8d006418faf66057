"""Keras' layer wrappers: ``TimeDistributed`` (one layer applied to every time step) and
``Bidirectional`` (a recurrent layer run forwards and, as a second layer, backwards).

A wrapper owns its inner layers' weights: they appear in the wrapper's ``params`` (and
so in saved files) under the inner layer's names, prefixed ``forward/`` and ``backward/``
for Bidirectional, and the inner layers are saved as nested ``{"class_name", "config"}``
entries of the wrapper's config."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..ir.errors import ConfigError, ShapeError
from ..tensor import Tensor, as_tensor
from . import batch_moments
from .keras_args import layer_from, layer_spec
from .layer import CallContext, Layer, Shape, Weight, snake_case
from .recurrent import _Recurrent


def inner_weights(layer: Layer, input_shape: Shape) -> dict[str, Weight]:
    """The arrays ``layer`` declares for ``input_shape``. Layers that only check shapes
    in ``create`` (Reshape, the pooling layers) are checked here too."""
    declared = layer.weights(input_shape)
    if declared is None:
        layer.create(input_shape, np.random.default_rng(0))
        if layer.params or layer.state:
            raise NotImplementedError(
                f"wrapping {type(layer).__name__}: layers that make their own arrays in "
                "create() rather than declaring them in weights() cannot be wrapped"
            )
        return {}
    return declared


def call_inner(
    layer: Layer, prefix: str, params: dict, x: Any, ctx: CallContext, owner: str
) -> Tensor:
    """``layer.call`` with the wrapper's params and state under ``prefix``; the state the
    inner layer writes goes back into the wrapper's (``owner``'s) entry."""
    mine = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
    state = {
        k[len(prefix) :]: v for k, v in ctx.state_in.get(owner, {}).items() if k.startswith(prefix)
    }
    inner = CallContext(ctx.training, ctx.key, {layer.name: state}, {})
    y = layer.call(mine, x, inner)
    if layer.name in inner.state_out:
        written = {prefix + k: v for k, v in inner.state_out[layer.name].items()}
        ctx.state_out[owner] = {**ctx.state_out.get(owner, {}), **written}
        batch_moments.rename(layer.name, owner, prefix)
    return y


class TimeDistributed(Layer):
    """Applies ``layer`` to every step of (batch, time, ...): time folds into the batch,
    so the layer sees (batch * time, ...) in one call. Weights are the layer's own."""

    def __init__(self, layer: Any, **kwargs: Any):
        super().__init__(None, **kwargs)
        self.layer = layer_from(layer, "TimeDistributed layer")
        self.layer.name = self.layer.name or snake_case(type(self.layer).__name__)

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        if len(input_shape) < 2:
            raise ShapeError(
                f"TimeDistributed {self.name}: expects (time, ...) samples, got input "
                f"shape {input_shape}"
            )
        return inner_weights(self.layer, tuple(input_shape[1:]))

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        x = as_tensor(x)
        batch, steps = x.shape[:2]
        folded = ops.reshape(x, (batch * steps, *x.shape[2:]))
        y = call_inner(self.layer, "", params, folded, ctx, self.name)
        return ops.reshape(y, (batch, steps, *y.shape[1:]))

    def config(self) -> dict[str, Any]:
        return {"layer": layer_spec(self.layer)}


MERGE_MODES = ("concat", "sum", "mul", "ave")


class Bidirectional(Layer):
    """``layer`` over the sequence, and ``backward_layer`` (by default a copy of
    ``layer``'s configuration with fresh weights) over the time-reversed sequence; with
    return_sequences the backward outputs are reversed back so step t of both lines up.
    ``merge_mode`` combines them: "concat" (features of forward, then backward), "sum",
    "mul" or "ave"."""

    def __init__(
        self,
        layer: Any,
        merge_mode: str | None = "concat",
        backward_layer: Any = None,
        **kwargs: Any,
    ):
        super().__init__(None, **kwargs)
        forward = layer_from(layer, "Bidirectional layer")
        if merge_mode is None:
            raise NotImplementedError(
                "Bidirectional merge_mode=None (two separate outputs) is not supported: "
                f"layers have one output; use one of {MERGE_MODES}"
            )
        if merge_mode not in MERGE_MODES:
            raise ConfigError(f"Bidirectional merge_mode must be one of {MERGE_MODES}")
        self.merge_mode = merge_mode
        if backward_layer is None:
            config = {k: v for k, v in forward.get_config().items() if k != "name"}
            backward = type(forward)(**config)
            self.own_backward = False
        else:
            backward = layer_from(backward_layer, "Bidirectional backward_layer")
            self.own_backward = True
        for which, inner in (("layer", forward), ("backward_layer", backward)):
            if not isinstance(inner, _Recurrent):
                raise ConfigError(
                    f"Bidirectional {which} must be a recurrent layer (SimpleRNN, LSTM, "
                    f"GRU), got {type(inner).__name__}"
                )
        if forward.return_sequences != backward.return_sequences:
            raise ConfigError(
                "Bidirectional: layer and backward_layer must agree on return_sequences"
            )
        forward.name = f"forward_{forward.name or snake_case(type(forward).__name__)}"
        backward.name = f"backward_{backward.name or snake_case(type(backward).__name__)}"
        self.forward_layer, self.backward_layer = forward, backward
        if self.input_shape is None and forward.input_shape is not None:
            self.input_shape = forward.input_shape  # Keras takes it from the wrapped layer

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        declared = {}
        for prefix, inner in (("forward/", self.forward_layer), ("backward/", self.backward_layer)):
            for key, weight in inner_weights(inner, input_shape).items():
                declared[prefix + key] = weight
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        x = as_tensor(x)
        fwd = call_inner(self.forward_layer, "forward/", params, x, ctx, self.name)
        reverse = (slice(None), slice(None, None, -1))
        bwd = call_inner(self.backward_layer, "backward/", params, x[reverse], ctx, self.name)
        if self.backward_layer.return_sequences:
            bwd = bwd[reverse]
        if self.merge_mode == "concat":
            return ops.concatenate([fwd, bwd], axis=-1)
        if self.merge_mode == "sum":
            return fwd + bwd
        if self.merge_mode == "mul":
            return fwd * bwd
        return (fwd + bwd) * 0.5

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"layer": self._spec(self.forward_layer, "forward_")}
        cfg["merge_mode"] = self.merge_mode
        if self.own_backward:
            cfg["backward_layer"] = self._spec(self.backward_layer, "backward_")
        return cfg

    @staticmethod
    def _spec(inner: Layer, prefix: str) -> dict[str, Any]:
        """The inner layer's spec under its own name (the prefix is added again on load)."""
        spec = layer_spec(inner)
        spec["config"]["name"] = inner.name[len(prefix) :]
        return spec
