"""Normalizations and inference-time regularizers: BatchNormalization, InstanceNormalization,
LayerNormalization, GroupNormalization, LRN, Dropout."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter


def _channel(v: Any, rank: int) -> Any:
    """A per-channel (C,) vector shaped to broadcast against (N, C, ...)."""
    return nc.reshape(v, (-1,) + (1,) * (rank - 2))


def _float_input(ctx: NodeContext, i: int) -> Any:
    x = ctx.input(i)
    if np.dtype(x.dtype).kind != "f":
        ctx.unsupported(f"input {i} of dtype {x.dtype} (a float type is required)")
    return x


def _eps(ctx: NodeContext, x: Any) -> np.ndarray:
    return np.asarray(ctx.attr("epsilon", 1e-5), x.dtype)


def _wanted(ctx: NodeContext, i: int) -> bool:
    return len(ctx.node.output) > i and bool(ctx.node.output[i])


@converter("BatchNormalization")
def batch_normalization(ctx: NodeContext) -> list[Any]:
    """Inference: y = scale * (x - mean) / sqrt(var + eps) + B per channel (axis 1).
    training_mode=1 (opset 14+) normalizes with the batch's statistics (biased variance)
    and also returns the running statistics updated with momentum."""
    x = _float_input(ctx, 0)
    scale, bias, mean, var = (ctx.input(i) for i in (1, 2, 3, 4))
    eps = _eps(ctx, x)
    momentum = ctx.attr("momentum", 0.9)
    if ctx.opset < 9 and not ctx.attr("spatial", 1):
        ctx.unsupported("attribute spatial=0 (per-activation statistics)")
    if ctx.opset < 7:
        ctx.attr("is_test", 0)  # the statistics inputs are used either way in inference
    if ctx.opset < 6:
        ctx.attr("consumed_inputs", None)
    training = ctx.attr("training_mode", 0) if ctx.opset >= 14 else 0
    rank = len(x.shape)
    if not training:
        if any(_wanted(ctx, i) for i in range(1, 5)):
            ctx.unsupported("training outputs (mean, var, saved statistics) in inference mode")
        y = (x - _channel(mean, rank)) / nc.sqrt(_channel(var, rank) + eps)
        return [y * _channel(scale, rank) + _channel(bias, rank)]
    axes = (0,) + tuple(range(2, rank))
    batch_mean = nc.mean(x, axis=axes)
    batch_var = nc.mean(nc.square(x - _channel(batch_mean, rank)), axis=axes)
    y = (x - _channel(batch_mean, rank)) / nc.sqrt(_channel(batch_var, rank) + eps)
    y = y * _channel(scale, rank) + _channel(bias, rank)
    m = np.asarray(momentum, x.dtype)
    return [y, mean * m + batch_mean * (1 - m), var * m + batch_var * (1 - m)]


@converter("InstanceNormalization")
def instance_normalization(ctx: NodeContext) -> list[Any]:
    """Each (sample, channel) normalized over its spatial axes, then scale and B."""
    x = _float_input(ctx, 0)
    scale, bias = ctx.input(1), ctx.input(2)
    rank = len(x.shape)
    axes = tuple(range(2, rank))
    y = _normalize(x, axes, _eps(ctx, x))[0]
    return [y * _channel(scale, rank) + _channel(bias, rank)]


def _normalize(x: Any, axes: tuple[int, ...], eps: Any) -> tuple[Any, Any, Any]:
    """(x - mean) * inv_std over ``axes`` (biased variance), with the kept-dims mean and
    inverse standard deviation."""
    mean = nc.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    inv_std = 1 / nc.sqrt(nc.mean(nc.square(centered), axis=axes, keepdims=True) + eps)
    return centered * inv_std, mean, inv_std


@converter("LayerNormalization", since=17)
def layer_normalization(ctx: NodeContext) -> list[Any]:
    """Normalized over axes axis..rank-1, then Scale and the optional B (both broadcast
    from the normalized shape). stash_type 1 computes in float32: a float64 input is
    cast to float32 and back, as the spec says. Outputs Mean and InvStdDev keep dims."""
    x = _float_input(ctx, 0)
    scale, bias = ctx.input(1), ctx.optional_input(2)
    rank = len(x.shape)
    axis = ctx.attr("axis", -1)
    if not -rank <= axis < rank:
        ctx.unsupported(f"axis={axis} outside the input's rank {rank}")
    axis %= rank
    stash = ctx.attr("stash_type", 1)
    if stash != 1:
        ctx.unsupported(f"attribute stash_type={stash} (only 1, float32)")
    dtype = np.dtype(x.dtype)
    xs = nc.astype(x, np.float32) if dtype != np.float32 else x
    y, mean, inv_std = _normalize(xs, tuple(range(axis, rank)), ctx.attr("epsilon", 1e-5))
    if dtype != np.float32:
        y, mean, inv_std = (nc.astype(v, dtype) for v in (y, mean, inv_std))
    y = y * scale
    if bias is not None:
        y = y + bias
    return [y, mean, inv_std]


@converter("GroupNormalization", since=18)
def group_normalization(ctx: NodeContext) -> list[Any]:
    """Channels split into num_groups groups, each normalized over its channels and the
    spatial axes; scale and bias are per group before opset 21, per channel from 21."""
    x = _float_input(ctx, 0)
    scale, bias = ctx.input(1), ctx.input(2)
    groups = ctx.attr("num_groups")
    eps = _eps(ctx, x)
    if ctx.opset >= 21 and ctx.attr("stash_type", 1) != 1:
        ctx.unsupported(f"attribute stash_type={ctx.attr('stash_type')} (only 1)")
    shape = tuple(x.shape)
    n, c, rank = shape[0], shape[1], len(shape)
    if groups <= 0 or c % groups:
        ctx.unsupported(f"num_groups={groups} does not divide the {c} channels")
    grouped = nc.reshape(x, (n, groups, -1))
    y = nc.reshape(_normalize(grouped, (2,), eps)[0], shape)
    if ctx.opset < 21:  # one scale per group: repeat it over the group's channels
        per = c // groups
        scale = nc.reshape(nc.broadcast_to(nc.reshape(scale, (-1, 1)), (groups, per)), (c,))
        bias = nc.reshape(nc.broadcast_to(nc.reshape(bias, (-1, 1)), (groups, per)), (c,))
    return [y * _channel(scale, rank) + _channel(bias, rank)]


@converter("LRN")
def lrn(ctx: NodeContext) -> list[Any]:
    """x / (bias + alpha / size * sum of squares over the channel window
    [c - floor((size-1)/2), c + ceil((size-1)/2)]) ** beta."""
    x = _float_input(ctx, 0)
    size = ctx.attr("size")
    alpha, beta, bias = ctx.attr("alpha", 1e-4), ctx.attr("beta", 0.75), ctx.attr("bias", 1.0)
    rank = len(x.shape)
    if rank < 3:
        ctx.unsupported(f"input of rank {rank} (needs N, C and spatial axes)")
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    widths = [(0, 0), (before, after)] + [(0, 0)] * (rank - 2)
    sq = nc.pad(nc.square(x), widths)
    c = x.shape[1]
    total = sq[:, 0:c]
    for k in range(1, size):
        total = total + sq[:, k : k + c]
    dt = x.dtype
    base = np.asarray(bias, dt) + np.asarray(alpha / size, dt) * total
    return [x / nc.power(base, np.asarray(beta, dt))]


@converter("Dropout", constant_inputs=(1, 2))
def dropout(ctx: NodeContext) -> list[Any]:
    """Inference dropout is the identity and its mask is all True. Training (the
    training_mode input true, or is_test=0 before opset 7) draws randomly: unsupported."""
    x = ctx.input(0)
    ctx.attr("seed", None)  # only seeds the training draw
    if ctx.opset < 12:
        ctx.attr("ratio", 0.5)
    if ctx.opset < 7 and not ctx.attr("is_test", 0):
        ctx.unsupported("is_test=0 (training dropout is random)")
    if ctx.opset < 6:
        ctx.attr("consumed_inputs", None)
    if ctx.opset >= 12 and ctx.has_input(2):
        training = ctx.constant(2, "training_mode")
        if bool(np.asarray(training).reshape(-1)[0]):
            ctx.unsupported("training_mode=True (training dropout is random)")
    outs = [x]
    if _wanted(ctx, 1):
        # the mask is bool from opset 10; before, it has the input's dtype
        mask_dtype = np.bool_ if ctx.opset >= 10 else np.dtype(x.dtype)
        outs.append(np.ones(tuple(x.shape), mask_dtype))
    return outs
