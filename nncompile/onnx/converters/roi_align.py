"""RoiAlign: each region of interest cut into output_height x output_width bins, each bin
sampled on a sampling_ratio x sampling_ratio grid by bilinear interpolation (ONNX's
reference rules: samples past -1 or the far edge read 0, the last row and column are
clamped), then averaged or maxed. Vectorized over regions, bins and samples: the four
bilinear corners are gathers from the flattened image of each region's batch entry."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import const, dtype_of, float_input
from .shape import invalid


def _axis_taps(
    start: Any, size: Any, bins: int, grid: int, extent: int
) -> tuple[Any, Any, Any, Any, Any]:
    """Along one image axis of length extent: for every region (rows) and sample
    (bins * grid columns), the low and high pixel, their weights and whether the sample
    lies inside [-1, extent]."""
    step = nc.divide(size, const(bins, size))  # (R, 1)
    offsets = (np.arange(bins).reshape(-1, 1) + (np.arange(grid) + 0.5) / grid).reshape(1, -1)
    pos = nc.add(start, nc.multiply(step, offsets.astype(dtype_of(size))))  # (R, bins*grid)
    inside = nc.logical_and(
        nc.greater_equal(pos, const(-1, pos)), nc.less_equal(pos, const(extent, pos))
    )
    pos = nc.maximum(pos, const(0, pos))
    low = nc.astype(pos, np.int64)  # pos >= 0: truncation is floor
    at_edge = nc.greater_equal(low, np.int64(extent - 1))
    low = nc.where(at_edge, np.int64(extent - 1), low)
    high = nc.where(at_edge, low, nc.add(low, np.int64(1)))
    pos = nc.where(at_edge, nc.astype(low, dtype_of(pos)), pos)
    frac = nc.subtract(pos, nc.astype(low, dtype_of(pos)))
    return low, high, nc.subtract(const(1, frac), frac), frac, inside


@converter("RoiAlign", since=10)
def roi_align(ctx: NodeContext) -> list[Any]:
    x, rois = float_input(ctx, 0), float_input(ctx, 1)
    batch_index = ctx.input(2)
    mode = ctx.attr("mode", "avg")
    out_h, out_w = ctx.attr("output_height", 1), ctx.attr("output_width", 1)
    ratio = ctx.attr("sampling_ratio", 0)
    scale = ctx.attr("spatial_scale", 1.0)
    transform = (
        ctx.attr("coordinate_transformation_mode", "half_pixel")
        if ctx.opset >= 16
        else "output_half_pixel"
    )
    if mode not in ("avg", "max"):
        ctx.unsupported(f"attribute mode={mode!r} (avg, max)")
    if transform not in ("half_pixel", "output_half_pixel"):
        ctx.unsupported(f"attribute coordinate_transformation_mode={transform!r}")
    if ratio <= 0:
        # an adaptive grid has ceil(region size / bins) samples: a count per region
        ctx.unsupported("sampling_ratio=0 (an adaptive sample count per region)")
    if len(x.shape) != 4 or len(rois.shape) != 2 or rois.shape[1] != 4:
        invalid(ctx, f"X {tuple(x.shape)} and rois {tuple(rois.shape)}")
    if tuple(batch_index.shape) != (rois.shape[0],):
        invalid(ctx, f"batch_indices {tuple(batch_index.shape)} for {rois.shape[0]} rois")
    n_rois, channels, height, width = rois.shape[0], x.shape[1], x.shape[2], x.shape[3]
    half = transform == "half_pixel"
    box = nc.subtract(nc.multiply(rois, const(scale, rois)), const(0.5 if half else 0.0, rois))
    start_w, start_h, end_w, end_h = (box[:, i : i + 1] for i in range(4))
    size_w, size_h = nc.subtract(end_w, start_w), nc.subtract(end_h, start_h)
    if not half:
        size_w, size_h = nc.maximum(size_w, const(1, size_w)), nc.maximum(size_h, const(1, size_h))
    y_lo, y_hi, y_wlo, y_whi, y_in = _axis_taps(start_h, size_h, out_h, ratio, height)
    x_lo, x_hi, x_wlo, x_whi, x_in = _axis_taps(start_w, size_w, out_w, ratio, width)
    valid = nc.astype(
        nc.logical_and(nc.expand_dims(y_in, 2), nc.expand_dims(x_in, 1)), dtype_of(rois)
    )  # (R, Y, X) with Y = out_h * ratio, X = out_w * ratio
    images = nc.reshape(
        nc.take(x, nc.astype(batch_index, np.int64), axis=0), (n_rois, channels, -1)
    )
    samples = (out_h * ratio) * (out_w * ratio)
    corners = []
    for yi, wy in ((y_lo, y_wlo), (y_hi, y_whi)):
        for xi, wx in ((x_lo, x_wlo), (x_hi, x_whi)):
            flat = nc.add(
                nc.multiply(nc.expand_dims(yi, 2), np.int64(width)), nc.expand_dims(xi, 1)
            )
            index = nc.broadcast_to(
                nc.reshape(flat, (n_rois, 1, samples)), (n_rois, channels, samples)
            )
            picked = nc.take_along_axis(images, index, 2)
            weight = nc.multiply(nc.multiply(nc.expand_dims(wy, 2), nc.expand_dims(wx, 1)), valid)
            weight = nc.reshape(weight, (n_rois, 1, samples))
            if dtype_of(weight) != dtype_of(x):
                weight = nc.astype(weight, dtype_of(x))
            corners.append(nc.multiply(picked, weight))
    grid_shape = (n_rois, channels, out_h, ratio, out_w, ratio)
    if mode == "avg":
        total = nc.add(nc.add(corners[0], corners[1]), nc.add(corners[2], corners[3]))
        summed = nc.sum(nc.reshape(total, grid_shape), axis=(3, 5))
        return [nc.divide(summed, const(ratio * ratio, summed))]
    top = nc.maximum(nc.maximum(corners[0], corners[1]), nc.maximum(corners[2], corners[3]))
    return [nc.max(nc.reshape(top, grid_shape), axis=(3, 5))]
