"""DFT and STFT as matrix products with constant cosine and sine tables (the transform length
and axis are known when converting): forward and inverse, real or complex input (a last
axis of 1 or 2), one-sided output or the inverse of a one-sided spectrum. O(n^2) per
transform, which is what small exported models need; it differentiates and compiles
like any matmul."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import dtype_of, float_input
from .shape import invalid


def _tables(length: int, n: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2 pi k t / n as (length, out) matrices: rows t of the input (those
    at or past n are cut off, as a shorter transform drops them), columns k."""
    t = np.arange(length).reshape(-1, 1)
    k = np.arange(out).reshape(1, -1)
    angle = 2 * np.pi * ((t * k) % n) / n  # reduced mod n: exact angles for large t * k
    keep = t < n
    return np.where(keep, np.cos(angle), 0.0), np.where(keep, np.sin(angle), 0.0)


def _to_last(x: Any, axis: int) -> Any:
    order = [i for i in range(len(x.shape)) if i != axis] + [axis]
    return nc.transpose(x, order)


def _from_last(x: Any, axis: int) -> Any:
    rank = len(x.shape)
    order = list(range(rank - 1))
    order.insert(axis, rank - 1)
    return nc.transpose(x, order)


@converter("DFT", since=17, constant_inputs=(1, 2))
def dft(ctx: NodeContext) -> list[Any]:
    x = float_input(ctx, 0)
    inverse, onesided = bool(ctx.attr("inverse", 0)), bool(ctx.attr("onesided", 0))
    rank = len(x.shape)
    if ctx.opset >= 20:
        given = ctx.constant(2, "axis")
        axis = -2 if given is None else int(np.asarray(given).reshape(-1)[0])
    else:
        axis = ctx.attr("axis", 1)
    if not -rank <= axis < rank or axis % rank == rank - 1:
        invalid(ctx, f"axis {axis} for an input of rank {rank} (the last axis is re/im)")
    axis %= rank
    if x.shape[-1] not in (1, 2):
        invalid(ctx, f"input's last axis is {x.shape[-1]} (1 real, 2 complex)")
    length = x.shape[axis]
    given_n = ctx.constant(1, "dft_length")
    if given_n is not None:
        n = int(np.asarray(given_n).reshape(-1)[0])
    else:
        n = 2 * (length - 1) if inverse and onesided else length
    if n <= 0:
        invalid(ctx, f"dft_length {n}")
    return [_transform(x, axis, n, inverse, onesided)]


def _transform(x: Any, axis: int, n: int, inverse: bool, onesided: bool) -> Any:
    """The DFT of length n along ``axis`` of x (..., 1 or 2): re/im parts last."""
    length = x.shape[axis]
    dt = dtype_of(x)
    a = _to_last(x[..., 0], axis)
    b = _to_last(x[..., 1], axis) if x.shape[-1] == 2 else None

    def mm(v: Any, table: np.ndarray) -> Any:
        return nc.matmul(v, table.astype(dt))

    if not inverse:
        out = n // 2 + 1 if onesided else n
        cos, sin = _tables(length, n, out)
        # (a + ib)(cos - i sin) = (a cos + b sin) + i (b cos - a sin)
        re, im = mm(a, cos), nc.negative(mm(a, sin))
        if b is not None:
            re, im = nc.add(re, mm(b, sin)), nc.add(im, mm(b, cos))
        parts = [re, im]
    elif not onesided:
        cos, sin = _tables(length, n, n)
        scale = np.asarray(1.0 / n, dt)
        # (a + ib)(cos + i sin) / n = (a cos - b sin) / n + i (a sin + b cos) / n
        re, im = mm(a, cos), mm(a, sin)
        if b is not None:
            re, im = nc.subtract(re, mm(b, sin)), nc.add(im, mm(b, cos))
        parts = [nc.multiply(re, scale), nc.multiply(im, scale)]
    else:
        # the inverse of a one-sided spectrum of a real signal (numpy's irfft): bins
        # 1 .. ceil(n/2)-1 stand for their conjugate mirror too, so count twice; the
        # imaginary parts of bin 0 and of bin n/2 drop out (sin is 0 there)
        half = n // 2 + 1
        used = min(length, half)
        k = np.arange(used).reshape(-1, 1)
        t = np.arange(n).reshape(1, -1)
        angle = 2 * np.pi * ((k * t) % n) / n
        weight = np.where((k == 0) | (2 * k == n), 1.0, 2.0) / n
        cos = np.zeros((length, n))
        sin = np.zeros((length, n))
        cos[:used], sin[:used] = weight * np.cos(angle), weight * np.sin(angle)
        re = mm(a, cos)
        if b is not None:
            re = nc.subtract(re, mm(b, sin))
        parts = [re]
    stacked = [nc.expand_dims(_from_last(p, axis), -1) for p in parts]
    return stacked[0] if len(stacked) == 1 else nc.concatenate(stacked, axis=-1)


@converter("STFT", since=17, constant_inputs=(1, 3))
def stft(ctx: NodeContext) -> list[Any]:
    """Frames of frame_length every frame_step samples along axis 1 of the signal
    (batch, length, 1 or 2), each multiplied by the window, then DFT'd:
    (batch, frames, bins, 2)."""
    x = float_input(ctx, 0)
    step = ctx.constant(1, "frame_step")
    window, given_length = ctx.optional_input(2), ctx.constant(3, "frame_length")
    onesided = bool(ctx.attr("onesided", 1))
    if len(x.shape) != 3 or x.shape[-1] not in (1, 2):
        invalid(ctx, f"signal of shape {tuple(x.shape)} (needs (batch, length, 1 or 2))")
    step = int(np.asarray(step).reshape(-1)[0])
    if given_length is not None:
        frame = int(np.asarray(given_length).reshape(-1)[0])
        if window is not None and window.shape[0] != frame:
            invalid(ctx, f"window of {window.shape[0]} for frame_length {frame}")
    else:
        frame = window.shape[0] if window is not None else x.shape[1]
    if step <= 0 or not 0 < frame <= x.shape[1]:
        invalid(ctx, f"frame_step {step}, frame_length {frame} for {x.shape[1]} samples")
    frames = 1 + (x.shape[1] - frame) // step
    index = np.arange(frames).reshape(-1, 1) * step + np.arange(frame).reshape(1, -1)
    framed = nc.take(x, index.astype(np.int64), axis=1)  # (batch, frames, frame, parts)
    if window is not None:
        framed = nc.multiply(framed, nc.reshape(window, (1, 1, frame, 1)))
    return [_transform(framed, 2, frame, False, onesided)]
