"""Keras-style feed-forward layers. Data is channels_last (N, H, W, C) as in Keras;
convolution kernels are stored OIHW (out, in, kh, kw), dense kernels (in, out), and the
initializers are Keras' defaults (glorot_uniform kernels, zero biases)."""

from __future__ import annotations

import functools
import math
import zlib
from typing import Any

import numpy as np

from .. import functional as F
from .. import init, ops
from ..ir.errors import ConfigError, ShapeError
from ..tensor import Tensor, as_tensor
from . import batch_moments
from .batch_moments import MomentUpdate
from .layer import (
    CallContext,
    Layer,
    Shape,
    Weight,
    as_pair,
    check_padding,
    mix_key,
    positive_int,
)


def initializer(name: str):
    try:
        return init.get(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check_initializers(*names: str) -> None:
    """Unknown initializer names fail when the layer is made, not when it is built."""
    for name in names:
        initializer(name)


class Dense(Layer):
    """y = activation(x @ kernel + bias) over the last axis."""

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ):
        super().__init__(activation, **kwargs)
        self.units = positive_int(units, "Dense units")
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        check_initializers(kernel_initializer, bias_initializer)

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        if not input_shape:
            raise ShapeError(f"Dense {self.name}: needs inputs with a feature axis")
        kernel = functools.partial(initializer(self.kernel_initializer), layout="in_out")
        declared = {"kernel": Weight((input_shape[-1], self.units), kernel)}
        if self.use_bias:
            declared["bias"] = Weight((self.units,), initializer(self.bias_initializer))
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return F.dense(x, params["kernel"], params.get("bias"))

    def config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }


class Conv2D(Layer):
    """2-D convolution over channels_last images (H, W, C)."""

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        activation: Any = None,
        use_bias: bool = True,
        dilation_rate: Any = (1, 1),
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ):
        super().__init__(activation, **kwargs)
        self.filters = positive_int(filters, "Conv2D filters")
        self.kernel_size = as_pair(kernel_size, "Conv2D kernel_size")
        self.strides = as_pair(strides, "Conv2D strides")
        self.padding = check_padding(padding)
        self.dilation_rate = as_pair(dilation_rate, "Conv2D dilation_rate")
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        check_initializers(kernel_initializer, bias_initializer)

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        if len(input_shape) != 3:
            raise ShapeError(
                f"Conv2D {self.name}: expects images (height, width, channels), "
                f"got input shape {input_shape}"
            )
        shape = (self.filters, input_shape[2]) + self.kernel_size
        declared = {"kernel": Weight(shape, initializer(self.kernel_initializer))}
        if self.use_bias:
            declared["bias"] = Weight((self.filters,), initializer(self.bias_initializer))
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return F.conv2d_layer(
            x, params["kernel"], params.get("bias"), self.strides, self.padding, self.dilation_rate
        )

    def config(self) -> dict[str, Any]:
        return {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }


class _Pooling2D(Layer):
    def __init__(
        self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid", **kwargs: Any
    ):
        super().__init__(None, **kwargs)
        self.pool_size = as_pair(pool_size, f"{type(self).__name__} pool_size")
        self.strides = (
            as_pair(strides, f"{type(self).__name__} strides") if strides else self.pool_size
        )
        self.padding = check_padding(padding)

    def config(self) -> dict[str, Any]:
        return {
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


class MaxPooling2D(_Pooling2D):
    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return F.max_pool(x, self.pool_size, self.strides, self.padding)


class AveragePooling2D(_Pooling2D):
    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return F.avg_pool(x, self.pool_size, self.strides, self.padding)


class Flatten(Layer):
    def __init__(self, **kwargs: Any):
        super().__init__(None, **kwargs)

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return F.flatten(x)


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape: Any, **kwargs: Any):
        super().__init__(None, **kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def create(self, input_shape: Shape, rng: np.random.Generator) -> None:
        known = math.prod(d for d in self.target_shape if d != -1)
        size = math.prod(input_shape)
        free = self.target_shape.count(-1)
        if free > 1 or (free == 0 and known != size) or (free == 1 and size % max(known, 1)):
            raise ShapeError(
                f"Reshape {self.name}: cannot reshape {input_shape} to {self.target_shape}"
            )

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        x = as_tensor(x)
        return ops.reshape(x, (x.shape[0],) + self.target_shape)

    def config(self) -> dict[str, Any]:
        return {"target_shape": list(self.target_shape)}


class Activation(Layer):
    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(activation, **kwargs)

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return as_tensor(x)


class Dropout(Layer):
    """Inverted dropout while training; the identity in evaluate and predict."""

    def __init__(self, rate: float, **kwargs: Any):
        super().__init__(None, **kwargs)
        if not 0 <= rate < 1:
            raise ConfigError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        if not ctx.training or ctx.key is None:
            return as_tensor(x)
        salt = zlib.crc32((self.name or "dropout").encode()) % 1000
        return F.dropout(x, self.rate, mix_key(ctx.key, salt), training=True)

    def config(self) -> dict[str, Any]:
        return {"rate": self.rate}


class BatchNormalization(Layer):
    """Normalizes over the last (channel) axis; Keras' momentum (0.99: the running
    statistics keep 99% of their value per step) and epsilon."""

    def __init__(
        self,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        **kwargs: Any,
    ):
        super().__init__(None, **kwargs)
        if not 0 <= momentum < 1:
            raise ConfigError(f"BatchNormalization momentum must be in [0, 1), got {momentum}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = center, scale

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        channels = (input_shape[-1],)
        declared = {}
        if self.scale:
            declared["gamma"] = Weight(channels, init.ones)
        if self.center:
            declared["beta"] = Weight(channels, init.zeros)
        declared["moving_mean"] = Weight(channels, init.zeros, state=True)
        declared["moving_variance"] = Weight(channels, init.ones, state=True)
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        x = as_tensor(x)
        state = ctx.state_in[self.name]
        channels = x.shape[-1]
        gamma = params.get("gamma", np.ones(channels, np.float32))
        beta = params.get("beta", np.zeros(channels, np.float32))
        y, mean, var = F.batch_norm(
            x,
            gamma,
            beta,
            state["moving_mean"],
            state["moving_variance"],
            training=ctx.training,
            momentum=1 - self.momentum,
            eps=self.epsilon,
            axis=-1,
        )
        if ctx.training and batch_moments.active():  # data-parallel: see batch_moments.py
            mean, var = self._moments(x)
        ctx.state_out[self.name] = {"moving_mean": mean, "moving_variance": var}
        return y

    def _moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """E[x] and E[x^2] per channel, registered to become the moving statistics once
        the ranks' moments are summed."""
        axes = tuple(range(x.ndim - 1))
        count = x.size // max(x.shape[-1], 1)
        update = MomentUpdate(1 - self.momentum, count, "moving_mean", "moving_variance")
        batch_moments.register(self.name, update)
        return ops.mean(x, axes), ops.mean(x * x, axes)

    def config(self) -> dict[str, Any]:
        return {
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }


class Embedding(Layer):
    """Integer ids (any shape) -> rows of a (input_dim, output_dim) table, initialized
    U(-0.05, 0.05) as in Keras."""

    input_dtype = np.int64

    def __init__(self, input_dim: int, output_dim: int, **kwargs: Any):
        super().__init__(None, **kwargs)
        self.input_dim = positive_int(input_dim, "Embedding input_dim")
        self.output_dim = positive_int(output_dim, "Embedding output_dim")

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        return {
            "embeddings": Weight(
                (self.input_dim, self.output_dim),
                lambda shape, rng: rng.uniform(-0.05, 0.05, shape),
            )
        }

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        return F.embedding(x, params["embeddings"])

    def config(self) -> dict[str, Any]:
        return {"input_dim": self.input_dim, "output_dim": self.output_dim}
