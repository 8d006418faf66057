"""Ops that carry a state across calls (opset 27): CausalConvWithState (a depthwise causal
1-D convolution whose left context is the past state) and LinearAttention (a recurrent
key-value state updated per step by the linear, gated, delta or gated-delta rule). Both
return the state for the next call. The step loop of LinearAttention is unrolled over
the (static) sequence length."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import dtype_of, float_input
from .shape import invalid


@converter("CausalConvWithState", since=27)
def causal_conv_with_state(ctx: NodeContext) -> list[Any]:
    """y[b, c, t] = bias[c] + sum_j w[c, 0, j] * padded[b, c, t + j], padded the past
    state (zeros when absent) followed by the input; optionally SiLU (computed in float32
    as the reference does). The present state is padded's last k - 1 steps."""
    x, w = float_input(ctx, 0), float_input(ctx, 1)
    bias, past = ctx.optional_input(2), ctx.optional_input(3)
    activation = ctx.attr("activation", "none")
    if activation not in ("none", "silu", "swish"):
        ctx.unsupported(f"attribute activation={activation!r} (none, silu, swish)")
    if len(x.shape) != 3 or len(w.shape) != 3 or w.shape[1] != 1 or w.shape[0] != x.shape[1]:
        invalid(ctx, f"input {tuple(x.shape)} and weight {tuple(w.shape)} (needs (C, 1, k))")
    batch, channels, length = x.shape
    k = w.shape[2]
    dtype = dtype_of(x)
    if past is None:
        past = np.zeros((batch, channels, k - 1), dtype)
    elif tuple(past.shape) != (batch, channels, k - 1):
        invalid(ctx, f"past_state {tuple(past.shape)} for ({batch}, {channels}, {k - 1})")
    padded = nc.concatenate([past, x], axis=2) if k > 1 else nc.as_tensor(x)
    y: Any = None
    for j in range(k):
        tap = nc.multiply(padded[:, :, j : j + length], nc.reshape(w[:, 0, j], (channels, 1)))
        y = tap if y is None else nc.add(y, tap)
    if bias is not None:
        y = nc.add(y, nc.reshape(bias, (channels, 1)))
    if activation != "none":
        y32 = nc.astype(y, np.float32) if dtype != np.float32 else y
        y = nc.multiply(y32, nc.sigmoid(y32))
        y = nc.astype(y, dtype) if dtype != np.float32 else y
    present = padded[:, :, length:] if k > 1 else np.zeros((batch, channels, 0), dtype)
    return [y, present]


_RULES = ("linear", "gated", "delta", "gated_delta")


def _heads(x: Any, heads: int) -> Any:
    """(B, T, H*D) -> (B, H, T, D)."""
    b, t, hd = x.shape
    return nc.transpose(nc.reshape(x, (b, t, heads, hd // heads)), (0, 2, 1, 3))


def _f32(x: Any) -> Any:
    return nc.astype(x, np.float32) if dtype_of(x) != np.float32 else nc.as_tensor(x)


@converter("LinearAttention", since=27)
def linear_attention(ctx: NodeContext) -> list[Any]:
    """Per step t (in float32, as ONNX's reference): gating multiplies the state by
    exp(decay_t); the delta rule replaces v_t by beta_t * (v_t - state^T k_t); the state
    gains k_t v_t^T; the output is scale * q_t^T state (KV heads repeated for grouped
    query heads)."""
    query, key, value = (float_input(ctx, i) for i in range(3))
    past, decay, beta = (ctx.optional_input(i) for i in (3, 4, 5))
    rule = ctx.attr("update_rule", "gated_delta")
    ctx.attr("chunk_size", 64)  # a tuning hint: no effect on the result
    q_heads, kv_heads = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
    scale = ctx.attr("scale", 0.0)
    if rule not in _RULES:
        ctx.unsupported(f"attribute update_rule={rule!r} (ONNX defines {_RULES})")
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if gating != (decay is not None) or delta != (beta is not None):
        invalid(
            ctx, f"update_rule {rule!r} with decay {decay is not None}, beta {beta is not None}"
        )
    if q_heads <= 0 or kv_heads <= 0 or q_heads % kv_heads:
        invalid(ctx, f"q_num_heads={q_heads} is not a multiple of kv_num_heads={kv_heads}")
    if any(len(v.shape) != 3 for v in (query, key, value)):
        invalid(ctx, "query, key and value must be (B, T, H*D)")
    out_dtype = dtype_of(query)
    b, steps, _ = query.shape
    d_k, d_v = query.shape[2] // q_heads, value.shape[2] // kv_heads
    group = q_heads // kv_heads
    q4, k4, v4 = (
        _f32(_heads(x, h)) for x, h in ((query, q_heads), (key, kv_heads), (value, kv_heads))
    )
    if decay is not None:
        if decay.shape[-1] == kv_heads:
            decay4 = nc.transpose(nc.reshape(decay, (b, steps, kv_heads, 1)), (0, 2, 1, 3))
        elif decay.shape[-1] == kv_heads * d_k:
            decay4 = _heads(decay, kv_heads)
        else:
            invalid(ctx, f"decay of last size {decay.shape[-1]}")
        decay4 = _f32(decay4)
    if beta is not None:
        last = beta.shape[-1]
        if last not in (kv_heads, 1):
            invalid(ctx, f"beta of last size {last}")
        beta4 = _f32(nc.transpose(nc.reshape(beta, (b, steps, last, 1)), (0, 2, 1, 3)))
    state_dtype = out_dtype
    if past is not None:
        if tuple(past.shape) != (b, kv_heads, d_k, d_v):
            invalid(ctx, f"past_state {tuple(past.shape)} for ({b}, {kv_heads}, {d_k}, {d_v})")
        state_dtype = dtype_of(past)
        state = _f32(past)
    else:
        state = nc.as_tensor(np.zeros((b, kv_heads, d_k, d_v), np.float32))
    scale_val = np.float32(1.0 / np.sqrt(d_k) if scale == 0.0 else scale)
    outputs = []
    for t in range(steps):
        q_t, k_t, v_t = q4[:, :, t, :], k4[:, :, t, :], v4[:, :, t, :]
        if gating:
            state = nc.multiply(state, nc.expand_dims(nc.exp(decay4[:, :, t, :]), -1))
        if delta:
            retrieved = nc.sum(nc.multiply(state, nc.expand_dims(k_t, -1)), axis=2)
            v_t = nc.multiply(beta4[:, :, t, :], nc.subtract(v_t, retrieved))
        state = nc.add(state, nc.multiply(nc.expand_dims(k_t, -1), nc.expand_dims(v_t, -2)))
        read = state
        if group > 1:
            shape = (b, kv_heads, group, d_k, d_v)
            read = nc.reshape(
                nc.broadcast_to(nc.expand_dims(state, 2), shape), (b, q_heads, d_k, d_v)
            )
        out = nc.sum(nc.multiply(nc.expand_dims(q_t, -1), read), axis=2)  # (B, Hq, d_v)
        outputs.append(nc.expand_dims(nc.multiply(out, scale_val), 2))
    y = nc.concatenate(outputs, axis=2)  # (B, Hq, T, d_v)
    y = nc.reshape(nc.transpose(y, (0, 2, 1, 3)), (b, steps, q_heads * d_v))
    if out_dtype != np.float32:
        y = nc.astype(y, out_dtype)
    if state_dtype != np.float32:
        state = nc.astype(state, state_dtype)
    return [y, state]
