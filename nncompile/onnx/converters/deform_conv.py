"""DeformConv (2-D): a convolution whose kernel taps are moved by per-position offsets
(and scaled by an optional mask). Each tap samples X bilinearly at its moved position,
zero outside the image (ONNX's reference: GridSample, linear, zeros, align_corners=1);
the samples of every tap, channel and output position are gathered at once, and the
convolution is then one grouped matmul with the weights."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import _integral, const, dtype_of, float_input
from .shape import invalid


def _bilinear(images: Any, ys: Any, xs: Any, height: int, width: int) -> Any:
    """images (N, C, H*W) sampled at pixel positions ys, xs (N, C, Q): (N, C, Q), zero
    where a corner lies outside the image."""
    y0, x0 = _integral(ys, "floor"), _integral(xs, "floor")
    wy1, wx1 = nc.subtract(ys, y0), nc.subtract(xs, x0)
    wy0, wx0 = nc.subtract(const(1, wy1), wy1), nc.subtract(const(1, wx1), wx1)
    iy0, ix0 = nc.astype(y0, np.int64), nc.astype(x0, np.int64)
    total: Any = None
    for iy, wy in ((iy0, wy0), (nc.add(iy0, np.int64(1)), wy1)):
        for ix, wx in ((ix0, wx0), (nc.add(ix0, np.int64(1)), wx1)):
            inside = nc.logical_and(
                nc.logical_and(nc.greater_equal(iy, np.int64(0)), nc.less(iy, np.int64(height))),
                nc.logical_and(nc.greater_equal(ix, np.int64(0)), nc.less(ix, np.int64(width))),
            )
            flat = nc.where(inside, nc.add(nc.multiply(iy, np.int64(width)), ix), np.int64(0))
            weight = nc.multiply(nc.multiply(wy, wx), nc.astype(inside, dtype_of(wy)))
            value = nc.multiply(nc.take_along_axis(images, flat, 2), weight)
            total = value if total is None else nc.add(total, value)
    return total


@converter("DeformConv", since=19)
def deform_conv(ctx: NodeContext) -> list[Any]:
    x, w, offset = float_input(ctx, 0), float_input(ctx, 1), float_input(ctx, 2)
    bias, mask = ctx.optional_input(3), ctx.optional_input(4)
    if len(x.shape) != 4:
        ctx.unsupported(f"input of rank {len(x.shape)} (only 2-D DeformConv)")
    n, channels, height, width = x.shape
    out_channels = w.shape[0]
    kernel = ctx.attr("kernel_shape", list(w.shape[2:]))
    strides, dilations = ctx.attr("strides", [1, 1]), ctx.attr("dilations", [1, 1])
    pads = ctx.attr("pads", [0, 0, 0, 0])
    group, offset_group = ctx.attr("group", 1), ctx.attr("offset_group", 1)
    kh, kw = kernel
    taps = kh * kw
    if list(w.shape[2:]) != list(kernel) or channels != w.shape[1] * group or out_channels % group:
        invalid(ctx, f"X {tuple(x.shape)}, W {tuple(w.shape)}, group {group}, kernel {kernel}")
    if channels % offset_group or offset.shape[1] != offset_group * taps * 2:
        invalid(ctx, f"offset {tuple(offset.shape)} for offset_group {offset_group}")
    if height == 1 or width == 1:
        # the reference normalizes positions by (size - 1): 0 / 0 on a size-1 axis
        ctx.unsupported(f"an image of size {height} x {width} (a size-1 axis)")
    oh, ow = offset.shape[2], offset.shape[3]
    span_h, span_w = (kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1
    if (oh, ow) != (
        (height - span_h + pads[0] + pads[2]) // strides[0] + 1,
        (width - span_w + pads[1] + pads[3]) // strides[1] + 1,
    ):
        invalid(ctx, f"offset's output size {(oh, ow)} for these pads, strides, dilations")
    dt = dtype_of(x)
    # base positions (kernel tap, output position) before the offsets
    tap_h = np.arange(kh).reshape(kh, 1, 1, 1) * dilations[0]
    tap_w = np.arange(kw).reshape(1, kw, 1, 1) * dilations[1]
    at_h = np.arange(oh).reshape(1, 1, oh, 1) * strides[0] - pads[0]
    at_w = np.arange(ow).reshape(1, 1, 1, ow) * strides[1] - pads[1]
    moved = nc.reshape(offset, (n, offset_group, kh, kw, 2, oh, ow))
    ys = nc.add(moved[:, :, :, :, 0], (tap_h + at_h).astype(dt))  # (N, G, kh, kw, oh, ow)
    xs = nc.add(moved[:, :, :, :, 1], (tap_w + at_w).astype(dt))
    per_group = channels // offset_group
    points = taps * oh * ow

    def per_channel(v: Any) -> Any:  # (N, G, ...) -> (N, C, points), each group's channels
        v = nc.reshape(v, (n, offset_group, 1, points))
        v = nc.broadcast_to(v, (n, offset_group, per_group, points))
        return nc.reshape(v, (n, channels, points))

    samples = _bilinear(nc.reshape(x, (n, channels, -1)), per_channel(ys), per_channel(xs),
                        height, width)  # fmt: skip
    if mask is not None:
        if tuple(mask.shape) != (n, offset_group * taps, oh, ow):
            invalid(ctx, f"mask {tuple(mask.shape)} for offset {tuple(offset.shape)}")
        samples = nc.multiply(samples, per_channel(mask))
    # the convolution: (group, OC/g, C/g * taps) @ (N, group, C/g * taps, oh * ow)
    cg = channels // group
    cols = nc.reshape(samples, (n, group, cg * taps, oh * ow))
    weights = nc.reshape(w, (group, out_channels // group, cg * taps))
    y = nc.reshape(nc.matmul(weights, cols), (n, out_channels, oh, ow))
    if bias is not None:
        y = nc.add(y, nc.reshape(bias, (out_channels, 1, 1)))
    return [y]
