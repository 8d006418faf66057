"""Keras' DepthwiseConv2D and SeparableConv2D on nc.conv2d's channel groups. Kernels keep
Keras' layout and names (depthwise (kh, kw, in, depth_multiplier), pointwise (1, 1,
in * depth_multiplier, filters)) and are rearranged to OIHW inside the forward pass."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import ops
from ..tensor import Tensor
from .keras_args import check_data_format, keras_initializer, require_rank
from .layer import CallContext, Layer, Shape, Weight, as_pair, check_padding, positive_int


def depthwise_oihw(kernel: Any) -> Tensor:
    """(kh, kw, C, m) -> (C * m, 1, kh, kw): output channel c * m + j filters input channel
    c with kernel[..., c, j], the channel order of Keras and of conv2d with groups=C."""
    kh, kw, c, m = kernel.shape
    return ops.reshape(ops.transpose(kernel, (2, 3, 0, 1)), (c * m, 1, kh, kw))


class _DepthwiseBase(Layer):
    def __init__(
        self,
        kernel_size: Any,
        strides: Any,
        padding: str,
        depth_multiplier: int,
        data_format: str | None,
        dilation_rate: Any,
        activation: Any,
        use_bias: bool,
        bias_initializer: str,
        **kwargs: Any,
    ):
        super().__init__(activation, **kwargs)
        kind = type(self).__name__
        self.kernel_size = as_pair(kernel_size, f"{kind} kernel_size")
        self.strides = as_pair(strides, f"{kind} strides")
        self.padding = check_padding(padding)
        self.depth_multiplier = positive_int(depth_multiplier, f"{kind} depth_multiplier")
        self.data_format = check_data_format(data_format, kind)
        self.dilation_rate = as_pair(dilation_rate, f"{kind} dilation_rate")
        self.use_bias = bool(use_bias)
        self.bias_initializer = bias_initializer
        keras_initializer(bias_initializer)

    def in_channels(self, input_shape: Shape) -> int:
        require_rank(self, input_shape, 4, "images (height, width, channels)")
        return input_shape[2] if self.data_format == "channels_last" else input_shape[0]

    def depthwise(self, x: Any, kernel: Any, bias: Any = None) -> Tensor:
        return F.conv2d_layer(
            x,
            depthwise_oihw(kernel),
            bias,
            self.strides,
            self.padding,
            self.dilation_rate,
            groups=kernel.shape[2],
            data_format=self.data_format,
        )

    def config(self) -> dict[str, Any]:
        return {
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "depth_multiplier": self.depth_multiplier,
            "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate),
            "use_bias": self.use_bias,
            "bias_initializer": self.bias_initializer,
        }


class DepthwiseConv2D(_DepthwiseBase):
    """Each input channel convolved with its own ``depth_multiplier`` filters; output
    channels = in_channels * depth_multiplier. Weights: kernel (kh, kw, in, m), bias."""

    def __init__(
        self,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ):
        super().__init__(
            kernel_size,
            strides,
            padding,
            depth_multiplier,
            data_format,
            dilation_rate,
            activation,
            use_bias,
            bias_initializer,
            **kwargs,
        )
        self.depthwise_initializer = depthwise_initializer
        keras_initializer(depthwise_initializer)

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        c, m = self.in_channels(input_shape), self.depth_multiplier
        kernel = keras_initializer(self.depthwise_initializer)
        declared = {"kernel": Weight(self.kernel_size + (c, m), kernel)}
        if self.use_bias:
            declared["bias"] = Weight((c * m,), keras_initializer(self.bias_initializer))
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return self.depthwise(x, params["kernel"], params.get("bias"))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "depthwise_initializer": self.depthwise_initializer}


class SeparableConv2D(_DepthwiseBase):
    """A depthwise convolution, then a 1x1 convolution to ``filters`` channels, then the
    bias. Weights: depthwise_kernel (kh, kw, in, m), pointwise_kernel (1, 1, in * m,
    filters), bias (filters,)."""

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
        depth_multiplier: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: str = "glorot_uniform",
        pointwise_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ):
        super().__init__(
            kernel_size,
            strides,
            padding,
            depth_multiplier,
            data_format,
            dilation_rate,
            activation,
            use_bias,
            bias_initializer,
            **kwargs,
        )
        self.filters = positive_int(filters, "SeparableConv2D filters")
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        keras_initializer(depthwise_initializer)
        keras_initializer(pointwise_initializer)

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        c, m = self.in_channels(input_shape), self.depth_multiplier
        declared = {
            "depthwise_kernel": Weight(
                self.kernel_size + (c, m), keras_initializer(self.depthwise_initializer)
            ),
            "pointwise_kernel": Weight(
                (1, 1, c * m, self.filters), keras_initializer(self.pointwise_initializer)
            ),
        }
        if self.use_bias:
            declared["bias"] = Weight((self.filters,), keras_initializer(self.bias_initializer))
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        y = self.depthwise(x, params["depthwise_kernel"])
        oihw = ops.transpose(params["pointwise_kernel"], (3, 2, 0, 1))
        return F.conv2d_layer(y, oihw, params.get("bias"), data_format=self.data_format)

    def config(self) -> dict[str, Any]:
        return {
            "filters": self.filters,
            **super().config(),
            "depthwise_initializer": self.depthwise_initializer,
            "pointwise_initializer": self.pointwise_initializer,
        }
