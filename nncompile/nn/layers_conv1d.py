"""Keras' Conv1D, MaxPooling1D and AveragePooling1D over (batch, steps, channels)
sequences (or channels_first), on nc.conv1d / nc.max_pool1d / nc.avg_pool1d. The Conv1D
kernel keeps Keras' layout (kernel_size, in_channels / groups, filters)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..ir.errors import ConfigError, ShapeError
from ..nn_ops_1d import avg_pool1d, conv1d, max_pool1d
from ..tensor import Tensor, as_tensor
from .keras_args import check_data_format, keras_initializer, require_rank
from .layer import CallContext, Layer, Shape, Weight, check_padding, positive_int

LAYOUTS = {"channels_last": "NWC", "channels_first": "NCW"}


def single(v: Any, what: str) -> int:
    """Keras' 1-D sizes: an int or a 1-tuple of one."""
    if isinstance(v, (tuple, list)) and len(v) == 1:
        v = v[0]
    return positive_int(v, what)


class Conv1D(Layer):
    """1-D convolution. ``padding`` "valid", "same" or "causal" (zeros before the
    sequence only, so step t sees steps <= t). Weights: kernel (kernel_size, in / groups,
    filters), bias (filters,)."""

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ):
        super().__init__(activation, **kwargs)
        self.filters = positive_int(filters, "Conv1D filters")
        self.kernel_size = single(kernel_size, "Conv1D kernel_size")
        self.strides = single(strides, "Conv1D strides")
        if padding not in ("valid", "same", "causal"):
            raise ConfigError(
                f"Conv1D padding must be 'valid', 'same' or 'causal', got {padding!r}"
            )
        self.padding = padding
        self.data_format = check_data_format(data_format, "Conv1D")
        self.dilation_rate = single(dilation_rate, "Conv1D dilation_rate")
        self.groups = positive_int(groups, "Conv1D groups")
        if self.filters % self.groups:
            raise ConfigError(f"Conv1D filters {filters} must be a multiple of groups {groups}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        keras_initializer(kernel_initializer)
        keras_initializer(bias_initializer)

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        require_rank(self, input_shape, 3, "sequences (steps, channels)")
        channels = input_shape[1] if self.data_format == "channels_last" else input_shape[0]
        if channels % self.groups:
            raise ShapeError(
                f"Conv1D {self.name}: {channels} input channels are not a multiple of groups "
                f"{self.groups}"
            )
        shape = (self.kernel_size, channels // self.groups, self.filters)
        declared = {"kernel": Weight(shape, keras_initializer(self.kernel_initializer))}
        if self.use_bias:
            declared["bias"] = Weight((self.filters,), keras_initializer(self.bias_initializer))
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        x = as_tensor(x)
        padding = self.padding
        if padding == "causal":
            widths = [(0, 0)] * 3
            steps = 1 if self.data_format == "channels_last" else 2
            widths[steps] = (self.dilation_rate * (self.kernel_size - 1), 0)
            x, padding = ops.pad(x, widths), "valid"
        weight = ops.transpose(params["kernel"], (2, 1, 0))  # (filters, in / groups, k)
        return conv1d(
            x,
            weight,
            params.get("bias"),
            self.strides,
            padding,
            self.dilation_rate,
            self.groups,
            layout=LAYOUTS[self.data_format],
        )

    def config(self) -> dict[str, Any]:
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }


class _Pooling1D(Layer):
    def __init__(
        self,
        pool_size: Any = 2,
        strides: Any = None,
        padding: str = "valid",
        data_format: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(None, **kwargs)
        kind = type(self).__name__
        self.pool_size = single(pool_size, f"{kind} pool_size")
        self.strides = self.pool_size if strides is None else single(strides, f"{kind} strides")
        self.padding = check_padding(padding)
        self.data_format = check_data_format(data_format, kind)

    def create(self, input_shape: Shape, rng: np.random.Generator) -> None:
        require_rank(self, input_shape, 3, "sequences (steps, channels)")

    def config(self) -> dict[str, Any]:
        return {
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
        }


class MaxPooling1D(_Pooling1D):
    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        layout = LAYOUTS[self.data_format]
        return max_pool1d(x, self.pool_size, self.strides, self.padding, layout=layout)


class AveragePooling1D(_Pooling1D):
    """Padded cells ('same') are not counted, as in Keras."""

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        layout = LAYOUTS[self.data_format]
        return avg_pool1d(
            x, self.pool_size, self.strides, self.padding, count_include_pad=False, layout=layout
        )
