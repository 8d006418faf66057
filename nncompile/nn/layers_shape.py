"""Keras' ZeroPadding2D, Cropping2D and UpSampling2D: zeros added to, rows and columns cut
from the borders of, or images resized by whole factors (channels_last by default, or
channels_first)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..ir.errors import ConfigError, ShapeError
from ..resize import interpolate
from ..tensor import Tensor, as_tensor
from .keras_args import check_data_format, require_rank
from .layer import CallContext, Layer, Shape, as_pair

Borders = tuple[tuple[int, int], tuple[int, int]]


def _count(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0


def borders(v: Any, what: str) -> Borders:
    """Keras' forms: an int (all four borders), a pair (symmetric height, symmetric width)
    or ((top, bottom), (left, right))."""
    if _count(v):
        return (int(v), int(v)), (int(v), int(v))
    if isinstance(v, (tuple, list)) and len(v) == 2:
        if all(_count(d) for d in v):
            return (int(v[0]), int(v[0])), (int(v[1]), int(v[1]))
        if all(isinstance(p, (tuple, list)) and len(p) == 2 and all(map(_count, p)) for p in v):
            return (int(v[0][0]), int(v[0][1])), (int(v[1][0]), int(v[1][1]))
    raise ConfigError(
        f"{what} must be an int, a pair of ints or a pair of (before, after) pairs of "
        f"non-negative ints, got {v!r}"
    )


class _Borders2D(Layer):
    argument = ""

    def __init__(self, amounts: Any, data_format: str | None, **kwargs: Any):
        super().__init__(None, **kwargs)
        self.amounts = borders(amounts, f"{type(self).__name__} {self.argument}")
        self.data_format = check_data_format(data_format, type(self).__name__)

    def spatial_axes(self) -> tuple[int, int]:
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def create(self, input_shape: Shape, rng: Any) -> None:
        require_rank(self, input_shape, 4, "images (height, width, channels)")

    def config(self) -> dict[str, Any]:
        return {
            self.argument: [list(p) for p in self.amounts],
            "data_format": self.data_format,
        }


class ZeroPadding2D(_Borders2D):
    argument = "padding"

    def __init__(self, padding: Any = (1, 1), data_format: str | None = None, **kwargs: Any):
        super().__init__(padding, data_format, **kwargs)

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        widths = [(0, 0)] * 4
        h, w = self.spatial_axes()
        widths[h], widths[w] = self.amounts
        return ops.pad(as_tensor(x), widths)


class Cropping2D(_Borders2D):
    argument = "cropping"

    def __init__(
        self, cropping: Any = ((0, 0), (0, 0)), data_format: str | None = None, **kwargs: Any
    ):
        super().__init__(cropping, data_format, **kwargs)

    def create(self, input_shape: Shape, rng: Any) -> None:
        super().create(input_shape, rng)
        for axis, (before, after) in zip(self.spatial_axes(), self.amounts, strict=True):
            if before + after >= input_shape[axis - 1]:
                raise ShapeError(
                    f"Cropping2D {self.name}: cropping {self.amounts} leaves nothing of "
                    f"input shape {input_shape}"
                )

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        x = as_tensor(x)
        index = [slice(None)] * 4
        for axis, (before, after) in zip(self.spatial_axes(), self.amounts, strict=True):
            index[axis] = slice(before, x.shape[axis] - after)
        return x[tuple(index)]


class UpSampling2D(Layer):
    """Repeats rows and columns ``size`` times ("nearest") or resizes bilinearly with
    half-pixel centers (Keras' "bilinear", torch's align_corners=False)."""

    def __init__(
        self,
        size: Any = (2, 2),
        data_format: str | None = None,
        interpolation: str = "nearest",
        **kwargs: Any,
    ):
        super().__init__(None, **kwargs)
        self.size = as_pair(size, "UpSampling2D size")
        self.data_format = check_data_format(data_format, "UpSampling2D")
        if interpolation in ("bicubic", "lanczos3", "lanczos5", "area"):
            raise NotImplementedError(
                f"UpSampling2D interpolation {interpolation!r}: only 'nearest' and 'bilinear' "
                "are supported"
            )
        if interpolation not in ("nearest", "bilinear"):
            raise ConfigError(
                f"UpSampling2D interpolation must be 'nearest' or 'bilinear', got {interpolation!r}"
            )
        self.interpolation = interpolation

    def create(self, input_shape: Shape, rng: Any) -> None:
        require_rank(self, input_shape, 4, "images (height, width, channels)")

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        x = as_tensor(x)
        last = self.data_format == "channels_last"
        images = ops.transpose(x, (0, 3, 1, 2)) if last else x  # interpolate takes NCHW
        h, w = images.shape[2:]
        size = (h * self.size[0], w * self.size[1])
        y = interpolate(images, size=size, mode=self.interpolation)
        return ops.transpose(y, (0, 2, 3, 1)) if last else y

    def config(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "data_format": self.data_format,
            "interpolation": self.interpolation,
        }
