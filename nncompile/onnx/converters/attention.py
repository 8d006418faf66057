"""ONNX Attention (opset 23+): scaled dot-product attention over 3-D (heads packed in the
hidden axis) or 4-D (batch, heads, seq, head) inputs, with grouped KV heads, an additive
or boolean mask, causal and sliding-window masks, softcap, a KV cache (past_key/value in,
present_key/value out) and the optional qk_matmul_output. It follows ONNX's reference
step by step (scale split as sqrt on both Q and K, softcap before the mask, a row whose
bias is all -inf gives zeros, not NaN), so the node suite's outputs match exactly."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import const, float_input, same_dtype

_MODE_BIAS, _MODE_SOFTMAX = 2, 3
# softmax_precision is a TensorProto element type; nncompile computes in these two
_PRECISIONS = {1: np.float32, 11: np.float64}


def _heads_first(x: Any, heads: int) -> Any:
    """(batch, seq, heads * size) -> (batch, heads, seq, size)."""
    b, s, hidden = x.shape
    return nc.transpose(nc.reshape(x, (b, s, heads, hidden // heads)), (0, 2, 1, 3))


def _repeat_heads(x: Any, reps: int) -> Any:
    """Each KV head repeated ``reps`` times in place: [h0, h0, h1, h1, ...] (np.repeat)."""
    b, h, s, d = x.shape
    grown = nc.broadcast_to(nc.reshape(x, (b, h, 1, s, d)), (b, h, reps, s, d))
    return nc.reshape(grown, (b, h * reps, s, d))


def _allowed_bias(allowed: Any, dtype: np.dtype) -> Any:
    """0 where attending is allowed, -inf elsewhere."""
    if isinstance(allowed, np.ndarray):
        return np.where(allowed, dtype.type(0), dtype.type(-np.inf))
    return nc.where(allowed, np.asarray(0, dtype), np.asarray(-np.inf, dtype))


def _frontier_diff(q: int, kv: int, offset: Any) -> Any:
    """(i + offset) - j for query i and key j: (q, kv), or (batch, 1, q, kv) for a
    per-batch offset (a Tensor or a 1-D array)."""
    i_idx = np.arange(q, dtype=np.int64).reshape(q, 1)
    j_idx = np.arange(kv, dtype=np.int64).reshape(1, kv)
    if isinstance(offset, int):
        return i_idx + offset - j_idx
    per_batch = nc.reshape(nc.astype(offset, np.int64), (-1, 1, 1, 1))
    return nc.subtract(nc.add(per_batch, i_idx), j_idx)


def _masked_bias(ctx: NodeContext, q: Any, kv_len: int, mask: Any) -> Any:
    """The attention mask as an additive bias of q's dtype, padded with -inf (or False)
    up to the key length when it is shorter, as the reference does."""
    dtype = np.dtype(q.dtype)
    if np.dtype(mask.dtype) == np.bool_:
        mask = _allowed_bias(mask, dtype)
    elif np.dtype(mask.dtype) != dtype:
        ctx.unsupported(f"attn_mask of dtype {mask.dtype} with inputs of dtype {dtype}")
    short = kv_len - mask.shape[-1]
    if short > 0:
        fill = np.full(tuple(mask.shape[:-1]) + (short,), -np.inf, dtype)
        mask = nc.concatenate([mask, fill], axis=-1)
    return mask


def _combine(a: Any, b: Any) -> Any:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a + b
    return nc.add(a, b)


def _softmax_zero_rows(x: Any) -> Any:
    """Softmax over the last axis where an all -inf row gives zeros (no NaN)."""
    dt = np.dtype(x.dtype)
    top = nc.max(x, axis=-1, keepdims=True)
    top = nc.where(nc.equal(top, const(-np.inf, x)), const(0, x), top)
    e = nc.exp(nc.subtract(x, nc.stop_gradient(top)))
    total = nc.sum(e, axis=-1, keepdims=True)
    total = nc.where(nc.equal(total, np.asarray(0, dt)), np.asarray(1, dt), total)
    return nc.divide(e, total)


@converter("Attention", since=23)
def attention(ctx: NodeContext) -> list[Any]:
    q, k, v = same_dtype(ctx, [float_input(ctx, 0), float_input(ctx, 1), float_input(ctx, 2)])
    dtype = np.dtype(q.dtype)
    mask = ctx.optional_input(3)
    past_key, past_value = ctx.optional_input(4), ctx.optional_input(5)
    nonpad = ctx.optional_input(6) if ctx.opset >= 24 else None
    scale = ctx.attr("scale", None)
    is_causal = bool(ctx.attr("is_causal", 0))
    q_heads, kv_heads = ctx.attr("q_num_heads", None), ctx.attr("kv_num_heads", None)
    softcap = ctx.attr("softcap", 0.0)
    mode = ctx.attr("qk_matmul_output_mode", 0)
    precision = ctx.attr("softmax_precision", None)
    left, right = -1, -1
    if ctx.opset >= 25:
        left, right = ctx.attr("left_window_size", -1), ctx.attr("right_window_size", -1)
    if (past_key is None) != (past_value is None):
        ctx.unsupported("past_key without past_value (or the reverse)")
    if nonpad is not None and past_key is not None:
        ctx.unsupported("nonpad_kv_seqlen together with past_key/past_value")
    if mode not in (0, 1, 2, 3):
        ctx.unsupported(f"attribute qk_matmul_output_mode={mode} (ONNX defines 0..3)")
    if precision is not None and precision not in _PRECISIONS:
        ctx.unsupported(f"attribute softmax_precision={precision} (only float32 and float64)")
    rank = len(q.shape)
    if rank != len(k.shape) or rank != len(v.shape) or rank not in (3, 4):
        ctx.unsupported(f"Q, K, V of ranks {len(q.shape)}, {len(k.shape)}, {len(v.shape)}")
    if rank == 3:
        if q_heads is None or kv_heads is None:
            ctx.unsupported("3-D inputs without q_num_heads and kv_num_heads")
        q, k, v = _heads_first(q, q_heads), _heads_first(k, kv_heads), _heads_first(v, kv_heads)
    if scale is None:
        scale = 1 / np.sqrt(q.shape[3])
    root = np.asarray(np.sqrt(scale), dtype)

    if past_key is not None:
        k = nc.concatenate([past_key, k], axis=2)
        v = nc.concatenate([past_value, v], axis=2)
    present_key, present_value = k, v
    q_len, kv_len = q.shape[2], k.shape[2]

    bias: Any = np.zeros((q_len, kv_len), dtype)
    if mask is not None:
        mask = _masked_bias(ctx, q, kv_len, mask)
    if nonpad is not None and past_key is None:
        offset: Any = nc.subtract(nc.astype(nonpad, np.int64), np.int64(q_len))
    else:
        offset = int(past_key.shape[2]) if past_key is not None else 0
    if is_causal:
        base = mask if mask is not None else np.zeros((q_len, kv_len), dtype)
        allowed = _frontier_diff(q_len, kv_len, offset)
        allowed = (
            allowed >= 0
            if isinstance(allowed, np.ndarray)
            else nc.greater_equal(allowed, np.int64(0))
        )
        bias = _combine(base, _allowed_bias(allowed, dtype))
    elif mask is not None:
        bias = _combine(bias, mask)
    if left >= 0 or right >= 0:
        diff = _frontier_diff(q_len, kv_len, offset)
        ok: Any = None
        for bound, sign in ((left, 1), (right, -1)):
            if bound < 0:
                continue
            side = (
                sign * diff <= bound
                if isinstance(diff, np.ndarray)
                else nc.less_equal(nc.multiply(diff, np.int64(sign)), np.int64(bound))
            )
            ok = side if ok is None else _and(ok, side)
        bias = _combine(_combine(np.zeros((q_len, kv_len), dtype), bias), _allowed_bias(ok, dtype))
    if nonpad is not None:
        keys = np.arange(kv_len, dtype=np.int64).reshape(1, kv_len)
        valid = nc.less(keys, nc.reshape(nc.astype(nonpad, np.int64), (-1, 1)))
        padding = nc.reshape(_allowed_bias(valid, dtype), (-1, 1, 1, kv_len))
        bias = _combine(bias, padding)

    heads, groups = q.shape[1], k.shape[1]
    if heads != groups:
        if heads % groups or v.shape[1] != groups:
            ctx.unsupported(f"{heads} query heads with {groups} key and {v.shape[1]} value heads")
        k, v = _repeat_heads(k, heads // groups), _repeat_heads(v, heads // groups)

    scores = nc.matmul(nc.multiply(q, root), nc.transpose(nc.multiply(k, root), (0, 1, 3, 2)))
    if softcap > 0:
        cap = np.asarray(softcap, dtype)
        scores = nc.multiply(nc.tanh(nc.divide(scores, cap)), cap)
    with_bias = nc.add(scores, bias)
    qk_out = with_bias if mode == _MODE_BIAS else scores

    logits = with_bias
    if precision is not None and np.dtype(_PRECISIONS[precision]) != dtype:
        logits = nc.astype(logits, _PRECISIONS[precision])
    probs = _softmax_zero_rows(logits)
    # a row whose bias is all -inf attends nothing: zeros, decided on the bias (not
    # the logits, which may be NaN there)
    all_masked = _row_all_masked(bias, dtype)
    if all_masked is not None:
        probs = nc.where(all_masked, np.asarray(0, probs.dtype), probs)
    if np.dtype(probs.dtype) != dtype:
        probs = nc.astype(probs, dtype)
    if mode == _MODE_SOFTMAX:
        qk_out = probs
    y = nc.matmul(probs, v)
    if rank == 3:
        y = nc.transpose(y, (0, 2, 1, 3))
        y = nc.reshape(y, (y.shape[0], y.shape[1], -1))
    return [y, present_key, present_value, qk_out]


def _and(a: Any, b: Any) -> Any:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a & b
    return nc.logical_and(a, b)


def _row_all_masked(bias: Any, dtype: np.dtype) -> Any:
    """Rows (keepdims) whose bias is -inf everywhere; None when known to be none."""
    if isinstance(bias, np.ndarray):
        rows = np.isneginf(np.max(bias, axis=-1, keepdims=True))
        return rows if rows.any() else None
    return nc.equal(nc.max(bias, axis=-1, keepdims=True), np.asarray(-np.inf, dtype))
