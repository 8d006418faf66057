"""Keras' LayerNormalization: each sample normalized over ``axis`` (the last by default)
with Keras' epsilon default (1e-3), then scaled by gamma and shifted by beta."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import init, ops
from ..ir.errors import ConfigError, ShapeError
from ..tensor import Tensor, as_tensor
from .layer import CallContext, Layer, Shape, Weight


def _is_axis(a: Any) -> bool:
    return isinstance(a, (int, np.integer)) and not isinstance(a, bool)


def _axes(axis: Any) -> tuple[int, ...]:
    axes = (axis,) if _is_axis(axis) else tuple(axis) if isinstance(axis, (list, tuple)) else ()
    if not axes or not all(map(_is_axis, axes)):
        raise ConfigError(f"LayerNormalization axis must be an int or a list of ints, got {axis!r}")
    return tuple(int(a) for a in axes)


class LayerNormalization(Layer):
    """Weights gamma (ones) and beta (zeros), shaped like the normalized axes. ``axis``
    counts the batch axis, as in Keras (-1: features; 0, the batch, is not allowed)."""

    def __init__(
        self,
        axis: Any = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        **kwargs: Any,
    ):
        super().__init__(None, **kwargs)
        self.axis = _axes(axis)
        if not epsilon > 0:
            raise ConfigError(f"LayerNormalization epsilon must be > 0, got {epsilon}")
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def normalized_axes(self, rank: int) -> tuple[int, ...]:
        """The axes of a batch of rank ``rank``, sorted, the batch axis excluded."""
        axes = sorted({a % rank for a in self.axis if -rank <= a < rank})
        if len(axes) != len(set(self.axis)) or 0 in axes:
            raise ShapeError(
                f"LayerNormalization {self.name}: axis {list(self.axis)} does not name "
                f"distinct non-batch axes of a rank-{rank} input"
            )
        return tuple(axes)

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        full = (None, *input_shape)
        shape = tuple(full[a] for a in self.normalized_axes(len(full)))
        declared = {}
        if self.scale:
            declared["gamma"] = Weight(shape, init.ones)
        if self.center:
            declared["beta"] = Weight(shape, init.zeros)
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        x = as_tensor(x)
        axes = self.normalized_axes(x.ndim)
        mean = ops.mean(x, axes, keepdims=True)
        centered = x - mean
        variance = ops.mean(centered * centered, axes, keepdims=True)
        y = centered / ops.sqrt(variance + self.epsilon)
        # gamma/beta hold only the normalized axes; the others broadcast
        broadcast = tuple(d if i in axes else 1 for i, d in enumerate(x.shape))
        if "gamma" in params:
            y = y * ops.reshape(params["gamma"], broadcast)
        if "beta" in params:
            y = y + ops.reshape(params["beta"], broadcast)
        return y

    def config(self) -> dict[str, Any]:
        return {
            "axis": self.axis[0] if len(self.axis) == 1 else list(self.axis),
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }
