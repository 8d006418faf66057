"""Keras' MultiHeadAttention over (batch, steps, features) sequences, with Keras' weight
layout: per head projections of the query, key and value (kernels (dim, heads, key_dim)
or (dim, heads, value_dim), biases (heads, dim)) and an output projection (kernel (heads,
value_dim, *output_shape)). Weights are named ``query/kernel``, ``key/bias``, ... after
Keras' sublayers."""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from .. import ops
from ..attention import scaled_dot_product_attention
from ..functional.layers import matmul_last_axis
from ..ir.errors import ConfigError, DTypeError, ShapeError
from ..tensor import Tensor, as_tensor
from .keras_args import keras_initializer
from .layer import CallContext, Layer, Shape, Weight, mix_key, positive_int

# Keras' masked softmax adds this to masked scores (float32's "large negative number")
LARGE_NEGATIVE = -1e9


def _shapes(input_shape: Any) -> tuple[Shape, Shape, Shape]:
    """(query, value, key) shapes from one shape (self-attention) or a list of 2 or 3."""
    if input_shape and isinstance(input_shape[0], (tuple, list)):
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) not in (2, 3):
            raise ShapeError(
                f"MultiHeadAttention takes [query, value] or [query, value, key], got "
                f"{len(shapes)} inputs"
            )
        return shapes[0], shapes[1], shapes[2] if len(shapes) == 3 else shapes[1]
    shape = tuple(input_shape)
    return shape, shape, shape


def _as_dims(v: Any) -> tuple[int, ...] | None:
    if v is None:
        return None
    dims = (v,) if isinstance(v, (int, np.integer)) else tuple(v)
    return tuple(positive_int(d, "MultiHeadAttention output_shape") for d in dims)


class MultiHeadAttention(Layer):
    """Called with one sequence (self-attention) or ``[query, value]`` / ``[query, value,
    key]``; ``attend`` takes Keras' call arguments (``attention_mask``, ``use_causal_mask``).
    ``use_causal_mask`` may also be given here, so a causal self-attention fits a
    Sequential model (Keras takes it only as a call argument)."""

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: Any = None,
        attention_axes: Any = None,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        use_causal_mask: bool = False,
        **kwargs: Any,
    ):
        super().__init__(None, **kwargs)
        self.num_heads = positive_int(num_heads, "MultiHeadAttention num_heads")
        self.key_dim = positive_int(key_dim, "MultiHeadAttention key_dim")
        self.value_dim = positive_int(
            key_dim if value_dim is None else value_dim, "MultiHeadAttention value_dim"
        )
        if not 0 <= dropout < 1:
            raise ConfigError(f"MultiHeadAttention dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        # not self.output_shape: the base class keeps the layer's computed output there
        self.output_dims = _as_dims(output_shape)
        if attention_axes is not None:
            raise NotImplementedError(
                "MultiHeadAttention attention_axes: only attention over the steps axis of "
                "(batch, steps, features) inputs is supported"
            )
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        keras_initializer(kernel_initializer)
        keras_initializer(bias_initializer)
        self.use_causal_mask = bool(use_causal_mask)

    def weights(self, input_shape: Any) -> dict[str, Weight]:
        query, value, key = _shapes(input_shape)
        for name, shape in (("query", query), ("value", value), ("key", key)):
            if len(shape) != 2:
                raise ShapeError(
                    f"MultiHeadAttention {self.name}: {name} must be (steps, features) "
                    f"sequences, got shape {shape}"
                )
        if value[0] != key[0]:
            raise ShapeError(
                f"MultiHeadAttention {self.name}: value {value} and key {key} need the "
                "same number of steps"
            )
        h, kd, vd = self.num_heads, self.key_dim, self.value_dim
        out = self.output_dims or (query[-1],)
        kernel, bias = (
            keras_initializer(self.kernel_initializer),
            keras_initializer(self.bias_initializer),
        )
        declared = {}
        for name, dim, head_dim in (("query", query[-1], kd), ("key", key[-1], kd)) + (
            ("value", value[-1], vd),
        ):
            declared[f"{name}/kernel"] = Weight((dim, h, head_dim), kernel)
            if self.use_bias:
                declared[f"{name}/bias"] = Weight((h, head_dim), bias)
        declared["attention_output/kernel"] = Weight((h, vd, *out), kernel)
        if self.use_bias:
            declared["attention_output/bias"] = Weight(out, bias)
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        if isinstance(x, (list, tuple)):
            if len(x) not in (2, 3):
                raise ShapeError(
                    f"MultiHeadAttention {self.name}: takes [query, value] or [query, value, "
                    f"key], got {len(x)} inputs"
                )
            return self.attend(params, *x, ctx=ctx)
        return self.attend(params, x, x, ctx=ctx)

    def attend(
        self,
        params: dict,
        query: Any,
        value: Any,
        key: Any = None,
        attention_mask: Any = None,
        use_causal_mask: bool | None = None,
        ctx: CallContext | None = None,
    ) -> Tensor:
        """Keras' ``layer(query, value, key, attention_mask, use_causal_mask)``:
        ``attention_mask`` (batch, query steps, key steps), true (nonzero) where a query
        step may attend to a key step; the causal mask lets step i see steps <= i."""
        query, value = as_tensor(query), as_tensor(value)
        key = value if key is None else as_tensor(key)
        ctx = ctx or CallContext(False)
        causal = self.use_causal_mask if use_causal_mask is None else use_causal_mask
        q = self._heads(query, params, "query")
        k = self._heads(key, params, "key")
        v = self._heads(value, params, "value")
        mask = self._mask(attention_mask, causal, (q.shape[0], q.shape[2], k.shape[2]))
        # Keras adds a large negative number to masked scores (a query that sees no key
        # attends to all of them), where a bool mask would give it zeros
        additive = None if mask is None else ops.where(mask, 0.0, LARGE_NEGATIVE)
        drop = self.dropout if ctx.training and ctx.key is not None else 0.0
        salt = zlib.crc32((self.name or "multi_head_attention").encode()) % 1000
        attended = scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=additive,
            dropout_p=drop,
            scale=1.0 / math.sqrt(self.key_dim),
            dropout_key=mix_key(ctx.key, salt) if drop else None,
        )
        heads = ops.transpose(attended, (0, 2, 1, 3))  # (batch, T, heads, vd)
        batch, steps = heads.shape[:2]
        kernel = as_tensor(params["attention_output/kernel"])
        out = kernel.shape[2:]
        flat = ops.reshape(heads, (batch, steps, self.num_heads * self.value_dim))
        y = matmul_last_axis(flat, ops.reshape(kernel, (self.num_heads * self.value_dim, -1)))
        if "attention_output/bias" in params:
            y = y + ops.reshape(params["attention_output/bias"], (-1,))
        return ops.reshape(y, (batch, steps, *out))

    def _heads(self, x: Tensor, params: dict, name: str) -> Tensor:
        """(batch, steps, dim) -> (batch, heads, steps, head_dim)."""
        kernel = as_tensor(params[f"{name}/kernel"])
        dim, heads, head_dim = kernel.shape
        if x.ndim != 3 or x.shape[-1] != dim:
            raise ShapeError(
                f"MultiHeadAttention {self.name}: {name} {x._type} does not fit kernel "
                f"{kernel._type} (expects (batch, steps, {dim}))"
            )
        y = matmul_last_axis(x, ops.reshape(kernel, (dim, heads * head_dim)))
        if f"{name}/bias" in params:
            y = y + ops.reshape(params[f"{name}/bias"], (-1,))
        return ops.transpose(ops.reshape(y, (*x.shape[:2], heads, head_dim)), (0, 2, 1, 3))

    def _mask(self, attention_mask: Any, causal: bool, sizes: Shape) -> Tensor | None:
        """A bool mask broadcasting to the scores (batch, heads, T, S), or None; ``sizes``
        is (batch, T, S)."""
        batch, steps, source = sizes
        mask = None
        if attention_mask is not None:
            mask = as_tensor(attention_mask)
            dtype = mask._type.dtype
            if not (dtype.is_bool or dtype.is_int or dtype.is_float):
                raise DTypeError(
                    f"MultiHeadAttention: attention_mask must be bool, got {mask._type}"
                )
            mask = mask if dtype.is_bool else ops.not_equal(mask, 0)
            want = (batch, steps, source)
            if mask.ndim != 3 or any(
                d not in (1, w) for d, w in zip(mask.shape, want, strict=True)
            ):
                raise ShapeError(
                    f"MultiHeadAttention {self.name}: attention_mask {mask._type} must be "
                    f"(batch, query steps, key steps) = {want}"
                )
            mask = ops.expand_dims(mask, 1)  # the same mask for every head
        if causal:
            lower = as_tensor(np.tril(np.ones((steps, source), dtype=bool)))
            mask = lower if mask is None else ops.logical_and(mask, lower)
        return mask

    def config(self) -> dict[str, Any]:
        return {
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": list(self.output_dims) if self.output_dims else None,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "use_causal_mask": self.use_causal_mask,
        }
