"""Summing the cotangents a value receives from its uses.

Most contributions are added as they come. A slice's cotangent is kept unmaterialized
(``SliceCotangent``): when a value is read slice by slice (an unrolled RNN reads its
input projection one time step at a time), the pieces are put side by side with one
``concat`` instead of adding dozens of mostly-zero ``slice_backward`` tensors, which
would cost a select and an add per piece for every element of the value. Likewise a
weight used at every step of an unrolled loop receives one ``a_t^T @ g_t`` per step
(``ProductCotangent``): they become a single matrix product of the stacked operands.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from .. import dispatch, ops
from ..dispatch import bind, source_location_override
from ..ir.ops.movement import is_whole, slice_ranges
from ..tensor import Tensor


@dataclass
class SliceCotangent:
    g: Tensor  # the cotangent of the slice's output
    attrs: dict[str, Any]  # starts, ends, axes, steps
    shape: tuple[int, ...]  # the sliced value's shape
    loc: str | None = field(default_factory=lambda: _rule_location())

    @property
    def dtype(self) -> Any:
        return self.g.dtype

    def materialize(self) -> Tensor:
        return bind("slice_backward", self.g, shape=self.shape, **self.attrs)

    def span(self) -> tuple[int, int, int] | None:
        """(axis, start, stop) if the slice is one unit-step range along one axis and
        everything along the others."""
        a = self.attrs
        ranges = slice_ranges(self.shape, a["starts"], a["ends"], a["axes"], a["steps"])
        partial = [
            i for i, (r, d) in enumerate(zip(ranges, self.shape, strict=True)) if not is_whole(r, d)
        ]
        if len(partial) != 1:
            return None
        r = ranges[partial[0]]
        return (partial[0], r.start, r.stop) if r.step == 1 and len(r) > 0 else None


@dataclass
class ProductCotangent:
    """transpose(left) @ right, with left (M, K) and right (M, N): a matmul's cotangent
    for its right operand."""

    left: Tensor
    right: Tensor
    loc: str | None = field(default_factory=lambda: _rule_location())

    @property
    def shape(self) -> tuple[int, int]:
        return (self.left.shape[1], self.right.shape[1])

    @property
    def dtype(self) -> Any:
        return self.right.dtype

    def materialize(self) -> Tensor:
        return ops.matmul(ops.transpose(self.left), self.right)


def _rule_location() -> str | None:
    """The source location the VJP rule creating a deferred cotangent records under."""
    return dispatch.location_override()


def combine(contributions: list[Any]) -> Tensor:
    """The sum of the contributions (Tensors, SliceCotangents, ProductCotangents), except
    that slices tiling one axis become a concatenation and products one product."""
    slices = [c for c in contributions if isinstance(c, SliceCotangent)]
    products = [c for c in contributions if isinstance(c, ProductCotangent)]
    tensors = [c for c in contributions if isinstance(c, Tensor)]
    # Recorded under the location of the (first) rule that made them.
    if slices:
        with source_location_override(slices[0].loc):
            tensors += _tiled(slices) if len(slices) > 1 else [slices[0].materialize()]
    if products:
        with source_location_override(products[0].loc):
            if len(products) > 1:
                left = ops.concatenate([p.left for p in products], axis=0)
                right = ops.concatenate([p.right for p in products], axis=0)
                tensors.append(ops.matmul(ops.transpose(left), right))
            else:
                tensors.append(products[0].materialize())
    total = tensors[0]
    loc = next((c.loc for c in contributions if not isinstance(c, Tensor)), None)
    with source_location_override(loc) if loc else contextlib.nullcontext():
        for t in tensors[1:]:
            total = total + t
    return total


def _tiled(slices: list[SliceCotangent]) -> list[Tensor]:
    spans = [s.span() for s in slices]
    axes = {sp[0] for sp in spans if sp is not None}
    if None in spans or len(axes) != 1:
        return [s.materialize() for s in slices]
    axis = axes.pop()
    # The same range read twice: add those cotangents first.
    by_range: dict[tuple[int, int], Tensor] = {}
    for s, (_, start, stop) in zip(slices, spans, strict=True):
        key = (start, stop)
        by_range[key] = by_range[key] + s.g if key in by_range else s.g
    ordered = sorted(by_range.items())
    if any(a[1] > b[0] for (a, _), (b, _) in zip(ordered, ordered[1:], strict=False)):
        return [s.materialize() for s in slices]  # partly overlapping ranges
    # Contiguous runs become one concat each (a gap between runs stays zero).
    runs: list[list[tuple[tuple[int, int], Tensor]]] = []
    for item in ordered:
        if runs and runs[-1][-1][0][1] == item[0][0]:
            runs[-1].append(item)
        else:
            runs.append([item])
    shape = slices[0].shape
    out = []
    for run in runs:
        pieces = [g for _, g in run]
        joined = pieces[0] if len(pieces) == 1 else ops.concatenate(pieces, axis=axis)
        start, stop = run[0][0][0], run[-1][0][1]
        if (start, stop) == (0, shape[axis]):
            out.append(joined)
        else:
            out.append(
                bind(
                    "slice_backward",
                    joined,
                    shape=shape,
                    starts=(start,),
                    ends=(stop,),
                    axes=(axis,),
                    steps=(1,),
                )
            )
    return out
