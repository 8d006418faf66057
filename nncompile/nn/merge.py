"""Keras' merge layers: called on a list of inputs (``Add()([a, b])``), they combine them
elementwise (Add, Subtract, Multiply, Average, Maximum, Minimum) or join them along an
axis (Concatenate). Shape rules are Keras': elementwise inputs have the same rank and
each axis the same size or 1 (broadcast); concatenated inputs agree on every axis but the
joined one."""

from __future__ import annotations

from functools import reduce
from typing import Any

from .. import ops
from ..ir.errors import ConfigError, ShapeError
from ..tensor import Tensor, as_tensor
from .layer import CallContext, InputShape, Layer, Shape


class _Merge(Layer):
    min_inputs = 2
    max_inputs: int | None = None

    def __init__(self, **kwargs: Any):
        super().__init__(None, **kwargs)

    @property
    def who(self) -> str:
        return f"{type(self).__name__} {self.name!r}" if self.name else type(self).__name__

    def _shapes(self, input_shape: InputShape) -> list[Shape]:
        kind = type(self).__name__
        if not isinstance(input_shape, list):
            raise ConfigError(
                f"{self.who}: takes a list of inputs ({kind}()([a, b])), "
                f"got one input of shape {input_shape}"
            )
        n = len(input_shape)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            exactly = self.max_inputs == self.min_inputs
            want = f"exactly {self.min_inputs}" if exactly else f"at least {self.min_inputs}"
            raise ConfigError(f"{self.who}: takes {want} inputs, got {n}")
        return input_shape

    def create(self, input_shape: InputShape, rng: Any) -> None:
        self.merged_shape(self._shapes(input_shape))

    def merged_shape(self, shapes: list[Shape]) -> Shape:
        """Keras' elementwise rule: equal ranks, each axis equal or 1."""
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1:
            raise ShapeError(f"{self.who}: inputs of different ranks {shapes} (batch excluded)")
        out = []
        for sizes in zip(*shapes, strict=True):
            big = {d for d in sizes if d != 1}
            if len(big) > 1:
                raise ShapeError(
                    f"{self.who}: inputs of incompatible shapes {[(None, *s) for s in shapes]}"
                )
            out.append(big.pop() if big else 1)
        return tuple(out)

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        if not isinstance(x, (list, tuple)):
            raise ConfigError(f"{self.who}: takes a list of inputs")
        self.merged_shape(self._shapes([tuple(as_tensor(t).shape[1:]) for t in x]))
        return self.merge([as_tensor(t) for t in x])

    def merge(self, xs: list[Tensor]) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.merge")


class Add(_Merge):
    def merge(self, xs: list[Tensor]) -> Tensor:
        return reduce(ops.add, xs)


class Subtract(_Merge):
    """``a - b``: exactly two inputs."""

    max_inputs = 2

    def merge(self, xs: list[Tensor]) -> Tensor:
        return ops.subtract(xs[0], xs[1])


class Multiply(_Merge):
    def merge(self, xs: list[Tensor]) -> Tensor:
        return reduce(ops.multiply, xs)


class Average(_Merge):
    def merge(self, xs: list[Tensor]) -> Tensor:
        return ops.divide(reduce(ops.add, xs), float(len(xs)))


class Maximum(_Merge):
    def merge(self, xs: list[Tensor]) -> Tensor:
        return reduce(ops.maximum, xs)


class Minimum(_Merge):
    def merge(self, xs: list[Tensor]) -> Tensor:
        return reduce(ops.minimum, xs)


class Concatenate(_Merge):
    """Joins the inputs along ``axis`` (counted with the batch axis, as in Keras; the batch
    axis itself cannot be joined)."""

    min_inputs = 1

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ConfigError(f"Concatenate axis must be an int, got {axis!r}")
        self.axis = axis

    def _sample_axis(self, rank: int) -> int:
        """The axis in sample coordinates (batch excluded)."""
        axis = self.axis + rank + 1 if self.axis < 0 else self.axis
        if axis == 0:
            raise ConfigError(f"{self.who}: axis {self.axis} is the batch axis")
        if not 0 < axis <= rank:
            raise ShapeError(
                f"{self.who}: axis {self.axis} is out of range for inputs of rank {rank + 1}"
            )
        return axis - 1

    def merged_shape(self, shapes: list[Shape]) -> Shape:
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1:
            raise ShapeError(f"{self.who}: inputs of different ranks {shapes} (batch excluded)")
        axis = self._sample_axis(ranks.pop())
        rest = {s[:axis] + s[axis + 1 :] for s in shapes}
        if len(rest) > 1:
            raise ShapeError(
                f"{self.who}: inputs must match on every axis but axis "
                f"{self.axis}, got {[(None, *s) for s in shapes]}"
            )
        shape = list(shapes[0])
        shape[axis] = sum(s[axis] for s in shapes)
        return tuple(shape)

    def merge(self, xs: list[Tensor]) -> Tensor:
        return ops.concatenate(xs, axis=self._sample_axis(xs[0].ndim - 1) + 1)

    def config(self) -> dict[str, Any]:
        return {"axis": self.axis}
