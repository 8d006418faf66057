"""The static memory plan: which buffer holds each value, and where in the arena.

Graph inputs and outputs are the caller's arrays; constants are arrays owned by the
executable; every other value a kernel writes for another kernel (and a kernel's own
scratch space) lives in one arena. Arena offsets come from liveness over the kernel
order: a buffer is live from the kernel that writes it to the last kernel that reads
it, and buffers whose lifetimes do not overlap share memory (first fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.dtypes import DType

ALIGN = 64  # bytes: a cache line, and a full zmm register


@dataclass
class Buffer:
    name: str
    dtype: DType
    size: int  # elements
    kind: str  # input | output | constant | arena | status
    position: int = -1  # input/output/constant number
    offset: int = -1  # arena byte offset
    first: int = -1  # first kernel that uses it (arena only)
    last: int = -1  # last kernel that uses it (arena only)
    values: list[str] = field(default_factory=list)  # graph values it holds

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def assign_offsets(buffers: list[Buffer]) -> int:
    """Give every arena buffer an offset; returns the arena size in bytes."""
    placed: list[Buffer] = []
    arena = [b for b in buffers if b.kind == "arena"]
    # Big buffers first packs better; ties by first use keep the plan stable.
    for b in sorted(arena, key=lambda b: (-b.nbytes, b.first, b.name)):
        overlapping = sorted(
            (p for p in placed if not (p.last < b.first or b.last < p.first)),
            key=lambda p: p.offset,
        )
        offset = 0
        for p in overlapping:
            if offset + _align(b.nbytes) <= p.offset:
                break
            offset = max(offset, p.offset + _align(p.nbytes))
        b.offset = offset
        placed.append(b)
    return max((p.offset + _align(p.nbytes) for p in placed), default=0)
