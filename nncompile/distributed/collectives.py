"""Collectives on trees of arrays: the leaves are packed into one flat buffer per dtype
and each buffer travels in a few large MPI calls (buckets), not one call per tensor.

Only MPI's buffer interface is used (mpi4py's upper-case methods): nothing is pickled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import pytree
from ..backend import is_device_array
from ..errors import ConfigError, DistributedError
from ..tensor import Tensor
from ..tracing import is_array_leaf
from . import world as _world

# Bytes per MPI call: large enough that per-call latency is negligible, small enough that
# MPI's pipelined algorithms stay in their fast range (64 MiB ran at a third of 16 MiB's
# bandwidth on 2 ranks here).
BUCKET_BYTES = 16 << 20
_ACCEPTED = {np.dtype(d) for d in (np.float32, np.float64, np.int32, np.int64)}
OPS = ("mean", "sum", "max", "min")


@dataclass(frozen=True)
class Slot:
    """Where one leaf lives: its buffer (by dtype), offset and shape."""

    dtype: np.dtype
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


class FlatBuffers:
    """One contiguous buffer per dtype holding a list of leaves (one collective's worth)."""

    def __init__(self, arrays: list[np.ndarray]):
        totals: dict[np.dtype, int] = {}
        self.slots = []
        for a in arrays:
            dtype = np.dtype(a.dtype)
            if dtype not in _ACCEPTED:
                raise ConfigError(
                    f"distributed collectives take float32/float64/int32/int64 arrays, "
                    f"got {dtype} of shape {a.shape}"
                )
            self.slots.append(Slot(dtype, totals.get(dtype, 0), tuple(a.shape)))
            totals[dtype] = totals.get(dtype, 0) + a.size
        self.buffers = {dtype: np.empty(n, dtype) for dtype, n in totals.items()}

    def layout(self) -> str:
        """The leaves' dtypes and shapes, for checking that ranks agree."""
        return ";".join(f"{s.dtype.str}{list(s.shape)}" for s in self.slots)

    def pack(self, arrays: list[np.ndarray]) -> None:
        for view, a in zip(self.views(), arrays, strict=True):
            np.copyto(view, a)

    def views(self) -> list[np.ndarray]:
        """The leaves as views of the buffers."""
        return [
            self.buffers[s.dtype][s.offset : s.offset + s.size].reshape(s.shape) for s in self.slots
        ]


def mpi_op(op: str) -> Any:
    MPI = _world.world().mpi
    return {"mean": MPI.SUM, "sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]


def reduce_buffers(buffers: list[np.ndarray], op: str = "sum", what: str = "allreduce") -> None:
    """In-place allreduce of whole buffers, in buckets of at most BUCKET_BYTES, under the
    watchdog. Blocking calls: Open MPI's blocking allreduce measured 2-3x the bandwidth
    of its non-blocking one here (docs/distributed.md)."""
    w = _world.world()
    _each_bucket(buffers, what, lambda chunk: w.comm.Allreduce(w.mpi.IN_PLACE, chunk, mpi_op(op)))


def broadcast_buffers(buffers: list[np.ndarray], root: int, what: str = "broadcast") -> None:
    w = _world.world()
    _each_bucket(buffers, what, lambda chunk: w.comm.Bcast(chunk, root=root))


def _each_bucket(buffers: list[np.ndarray], what: str, call: Any) -> None:
    if _world.size() == 1:
        return
    with _world.deadline(what):
        for buf in buffers:
            step = max(1, BUCKET_BYTES // buf.itemsize)
            for start in range(0, buf.size, step):
                call(buf[start : start + step])


def check_agreement(text: str, what: str) -> None:
    """Raise DistributedError on every rank unless all ranks pass the same ``text`` (a
    tree's layout): a collective on mismatched buffers would mix unrelated numbers."""
    w = _world.world()
    if w.size == 1:
        return
    digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=7).digest(), "little")
    mine = np.array([digest, -digest], np.int64)
    reduce_buffers([mine], "max", what)
    if mine[0] != digest or -mine[1] != digest:
        raise DistributedError(
            f"{what}: the ranks passed differently shaped trees (rank {w.rank} has "
            f"{text[:200]!r}); every rank must pass the same structure, shapes and dtypes"
        )


def _is_leaf(x: Any) -> bool:
    return is_array_leaf(x) or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _flatten(tree: Any) -> tuple[list[np.ndarray], list[Any], Any, list[Any]]:
    leaves, statics, treedef = pytree.flatten(tree, _is_leaf)
    # Tensors (eager) and DeviceArrays give their data with .numpy(); a traced Tensor
    # raises a TraceError there: a collective cannot run inside a compiled graph.
    arrays = [
        leaf.numpy() if isinstance(leaf, Tensor) or is_device_array(leaf) else np.asarray(leaf)
        for leaf in leaves
    ]
    return arrays, statics, treedef, leaves


def _rebuild(treedef: Any, statics: list[Any], leaves: list[Any], arrays: list[np.ndarray]) -> Any:
    """The tree with new values: Python numbers stay Python numbers; arrays are views of
    the collective's own buffers (fresh for every call)."""
    out = [
        type(leaf)(a.item()) if isinstance(leaf, (int, float)) else a
        for leaf, a in zip(leaves, arrays, strict=True)
    ]
    return pytree.unflatten(treedef, out, statics)


def allreduce(tree: Any, op: str = "mean") -> Any:
    """The tree with every leaf reduced over all ranks (``op``: mean, sum, max, min); every
    rank gets the same result. Leaves: NumPy arrays and Python numbers."""
    if op not in OPS:
        raise ConfigError(f"allreduce op must be one of {OPS}, got {op!r}")
    arrays, statics, treedef, leaves = _flatten(tree)
    flat = FlatBuffers(arrays)
    if op == "mean" and any(not np.issubdtype(s.dtype, np.floating) for s in flat.slots):
        raise ConfigError("allreduce op='mean' needs floating-point leaves; use op='sum'")
    check_agreement(f"{op}|{flat.layout()}", f"allreduce(op={op!r})")
    flat.pack(arrays)
    reduce_buffers(list(flat.buffers.values()), op, f"allreduce(op={op!r})")
    if op == "mean":
        for buf in flat.buffers.values():
            buf /= _world.size()
    return _rebuild(treedef, statics, leaves, flat.views())


def broadcast(tree: Any, root: int = 0) -> Any:
    """Rank ``root``'s tree, on every rank (the others pass a tree of the same layout)."""
    w = _world.world()
    if not 0 <= root < w.size:
        raise ConfigError(f"broadcast root must be a rank from 0 to {w.size - 1}, got {root}")
    arrays, statics, treedef, leaves = _flatten(tree)
    flat = FlatBuffers(arrays)
    check_agreement(f"bcast{root}|{flat.layout()}", "broadcast")
    flat.pack(arrays)
    broadcast_buffers(list(flat.buffers.values()), root)
    return _rebuild(treedef, statics, leaves, flat.views())
