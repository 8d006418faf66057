"""The static memory plan: which buffer holds each value, and where in the arena.

Graph inputs and outputs are the caller's arrays; constants are arrays owned by the
executable; every other value a kernel writes for another kernel (and a kernel's own
scratch space) lives in one arena. Arena offsets come from liveness over the kernel
order: a buffer is live from the kernel that writes it to the last kernel that reads
it, and buffers whose lifetimes do not overlap share memory (first fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir.dtypes import DType
from ..ir.symbolic import Dim, dim

ALIGN = 64  # bytes: a cache line, and a full zmm register


@dataclass
class Buffer:
    name: str
    dtype: DType
    size: int | Dim  # elements (a*n + b in a dynamic-batch program)
    kind: str  # input | output | constant | arena | status
    position: int = -1  # input/output/constant number
    offset: int | Dim = -1  # arena byte offset
    first: int = -1  # first kernel that uses it (arena only)
    last: int = -1  # last kernel that uses it (arena only)
    values: list[str] = field(default_factory=list)  # graph values it holds

    @property
    def nbytes(self) -> int | Dim:
        return self.size * self.dtype.itemsize


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def assign_offsets(buffers: list[Buffer]) -> int | Dim:
    """Give every arena buffer an offset; returns the arena size in bytes.

    In a dynamic-batch program a buffer may hold ``a*n + b`` elements. Such buffers go
    after all the fixed-size ones, planned in bytes *per row*: the arena is ``S + R*n``
    bytes and a batched buffer sits at ``S + r*n``, ``r`` a multiple of the alignment, so
    one plan serves every batch size (a buffer of ``a*n + b`` elements with ``b > 0`` takes
    ``a + b`` elements per row, enough for every ``n >= 1``)."""
    arena = [b for b in buffers if b.kind == "arena"]
    fixed = [b for b in arena if type(b.size) is not Dim]
    batched = [b for b in arena if type(b.size) is Dim]
    static = _first_fit(fixed, lambda b: b.nbytes)
    per_row = _first_fit(batched, _bytes_per_row)
    for b in batched:
        b.offset = dim(b.offset, static)
    return dim(per_row, static)


def _bytes_per_row(b: Buffer) -> int:
    return (b.size.scale + max(b.size.offset, 0)) * b.dtype.itemsize


def _first_fit(arena: list[Buffer], nbytes) -> int:
    """Offsets for ``arena`` (buffers of ``nbytes(b)`` bytes); returns the bytes used."""
    # The buffers placed so far, as arrays: an unrolled RNN has thousands of buffers, and
    # finding each one's overlapping predecessors in Python made planning quadratic.
    first, last, start, end = (np.empty(len(arena), np.int64) for _ in range(4))
    # Big buffers first packs better; ties by first use keep the plan stable.
    for k, b in enumerate(sorted(arena, key=lambda b: (-nbytes(b), b.first, b.name))):
        size = _align(nbytes(b))
        live = ~((last[:k] < b.first) | (b.last < first[:k]))
        order = np.argsort(start[:k][live], kind="stable")
        starts, ends = start[:k][live][order], end[:k][live][order]
        # First fit: the lowest gap between the overlapping buffers (by offset) that b fits.
        reached = np.maximum.accumulate(np.concatenate(([0], ends)))  # below starts[i]
        fits = np.flatnonzero(reached[:-1] + size <= starts)
        b.offset = int(reached[fits[0]] if fits.size else reached[-1])
        first[k], last[k], start[k], end[k] = b.first, b.last, b.offset, b.offset + size
    return int(end.max(initial=0))
