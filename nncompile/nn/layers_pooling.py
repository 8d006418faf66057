"""Keras' global pooling layers: the mean or max over every step (1D) or pixel (2D) of
each channel, channels_last (Keras' default) or channels_first."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..tensor import Tensor, as_tensor
from .keras_args import check_data_format, require_rank
from .layer import CallContext, Layer, Shape


class _GlobalPooling(Layer):
    rank = 3  # with the batch axis
    what = "sequences (steps, features)"

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any):
        super().__init__(None, **kwargs)
        self.data_format = check_data_format(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)

    def create(self, input_shape: Shape, rng: Any) -> None:
        require_rank(self, input_shape, self.rank, self.what)

    def axes(self) -> tuple[int, ...]:
        spatial = self.rank - 2
        first = 1 if self.data_format == "channels_last" else 2
        return tuple(range(first, first + spatial))

    def reduce(self, x: Tensor, axes: tuple[int, ...]) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.reduce")

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return self.reduce(as_tensor(x), self.axes())

    def config(self) -> dict[str, Any]:
        return {"data_format": self.data_format, "keepdims": self.keepdims}


class _Global2D(_GlobalPooling):
    rank = 4
    what = "images (height, width, channels)"


class _Average:
    def reduce(self, x: Tensor, axes: tuple[int, ...]) -> Tensor:
        return ops.mean(x, axes, keepdims=self.keepdims)


class _Max:
    def reduce(self, x: Tensor, axes: tuple[int, ...]) -> Tensor:
        return ops.max(x, axes, keepdims=self.keepdims)


class GlobalAveragePooling1D(_Average, _GlobalPooling):
    """(batch, steps, features) -> (batch, features)."""


class GlobalMaxPooling1D(_Max, _GlobalPooling):
    """(batch, steps, features) -> (batch, features)."""


class GlobalAveragePooling2D(_Average, _Global2D):
    """(batch, height, width, channels) -> (batch, channels)."""


class GlobalMaxPooling2D(_Max, _Global2D):
    """(batch, height, width, channels) -> (batch, channels)."""
