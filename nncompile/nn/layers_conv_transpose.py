"""Keras' Conv2DTranspose on nc.conv_transpose2d. The kernel keeps Keras' layout (kh, kw,
filters, in_channels) and is rearranged to torch's (in, filters, kh, kw) in the forward
pass; the output size follows Keras' rules (TensorFlow's: the transpose of a 'same' or
'valid' convolution, an odd 'same' padding cropped more at the end)."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..conv_transpose import conv_transpose2d
from ..ir.errors import ConfigError
from ..tensor import Tensor, as_tensor
from .keras_args import check_data_format, keras_initializer, require_rank
from .layer import CallContext, Layer, Shape, Weight, as_pair, check_padding, positive_int


def output_plan(
    size: int, kernel: int, stride: int, padding: str, output_padding: int | None, dilation: int
) -> tuple[int, int]:
    """(rows cropped at the start, output length) along one axis. The full transposed
    output has (size - 1) * stride + k rows (k the dilated kernel); Keras crops 'same'
    padding as TensorFlow pads a forward convolution, floor(total / 2) at the start."""
    k = dilation * (kernel - 1) + 1
    if output_padding is None:
        length = size * stride + max(k - stride, 0) if padding == "valid" else size * stride
    else:
        pad = k // 2 if padding == "same" else 0
        length = (size - 1) * stride + k - 2 * pad + output_padding
    if padding == "valid":
        return 0, length
    total = max((size - 1) * stride + k - length, 0)
    return total // 2, length


class Conv2DTranspose(Layer):
    """Transposed 2-D convolution (the gradient of Conv2D with respect to its input).
    Weights: kernel (kh, kw, filters, in_channels), bias (filters,)."""

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        output_padding: Any = None,
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ):
        super().__init__(activation, **kwargs)
        self.filters = positive_int(filters, "Conv2DTranspose filters")
        self.kernel_size = as_pair(kernel_size, "Conv2DTranspose kernel_size")
        self.strides = as_pair(strides, "Conv2DTranspose strides")
        self.padding = check_padding(padding)
        self.output_padding = None
        if output_padding is not None:
            pair = (output_padding,) * 2 if isinstance(output_padding, int) else output_padding
            if len(pair) != 2 or not all(isinstance(p, int) and 0 <= p for p in pair):
                raise ConfigError(
                    f"Conv2DTranspose output_padding must be an int or a pair of ints >= 0, "
                    f"got {output_padding!r}"
                )
            if any(p >= s for p, s in zip(pair, self.strides, strict=True)):
                raise ConfigError(
                    f"Conv2DTranspose output_padding {tuple(pair)} must be smaller than "
                    f"strides {self.strides}"
                )
            self.output_padding = (int(pair[0]), int(pair[1]))
        self.data_format = check_data_format(data_format, "Conv2DTranspose")
        self.dilation_rate = as_pair(dilation_rate, "Conv2DTranspose dilation_rate")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        keras_initializer(kernel_initializer)
        keras_initializer(bias_initializer)

    def spatial_axes(self) -> tuple[int, int]:
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        require_rank(self, input_shape, 4, "images (height, width, channels)")
        channels = input_shape[2] if self.data_format == "channels_last" else input_shape[0]
        shape = self.kernel_size + (self.filters, channels)
        declared = {"kernel": Weight(shape, keras_initializer(self.kernel_initializer))}
        if self.use_bias:
            declared["bias"] = Weight((self.filters,), keras_initializer(self.bias_initializer))
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        x = as_tensor(x)
        axes = self.spatial_axes()
        output_padding = self.output_padding or (None, None)
        plans = [
            output_plan(x.shape[a], k, s, self.padding, p, d)
            for a, k, s, p, d in zip(
                axes,
                self.kernel_size,
                self.strides,
                output_padding,
                self.dilation_rate,
                strict=True,
            )
        ]
        crops = tuple(begin for begin, _ in plans)
        weight = ops.transpose(params["kernel"], (3, 2, 0, 1))  # torch's (in, out, kh, kw)
        layout = "NHWC" if self.data_format == "channels_last" else "NCHW"
        # torch's padding crops both ends equally; the rest is cut or zero-filled below
        y = conv_transpose2d(
            x, weight, None, self.strides, crops, 0, 1, self.dilation_rate, layout=layout
        )
        index, widths = [slice(None)] * 4, [(0, 0)] * 4
        for axis, (_, length) in zip(axes, plans, strict=True):
            index[axis] = slice(0, min(length, y.shape[axis]))
            widths[axis] = (0, max(length - y.shape[axis], 0))
        y = ops.pad(y[tuple(index)], widths)
        if "bias" in params:
            bias = params["bias"]
            y = y + (bias if layout == "NHWC" else ops.reshape(bias, (-1, 1, 1)))
        return y

    def config(self) -> dict[str, Any]:
        return {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "output_padding": list(self.output_padding) if self.output_padding else None,
            "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate),
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }
