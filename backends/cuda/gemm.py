"""GEMM launches: how far to split K, and which operands a GEMM computes as it reads
them instead of loading them (implicit GEMM: a convolution's im2col matrix)."""

from __future__ import annotations

from ...ir.kernel import Expr, Gemm, Loop, Stmt, Store
from ...ir.kernel_visit import buffers_written, own_expressions, walk
from .collapse import affine, collapse, loads_in

GEMM_TILE = 64  # a GEMM block computes a 64 x 64 tile of C (256 threads, 4 x 4 each)
SPLIT_TARGET = 256  # blocks a GEMM with few tiles is split up to (along K)...
MIN_SPLIT = 128  # ...keeping at least this many steps of K per split


def implicit_operands(body: list[Stmt], physical: dict[str, str]) -> dict[str, tuple]:
    """Scratch buffers a GEMM can compute as it reads them: buffer -> (producer, nest).

    Lowering marks such operands (``Gemm.implicit``); this checks that the mark holds: the
    producer is a top-level nest of independent loops whose one statement stores every
    element of the buffer in row-major order (an im2col), followed directly by the GEMMs
    that read it as their marked operand, and read nowhere else; nothing those GEMMs write
    is read by the stored value."""
    found: dict[str, tuple] = {}
    for i, s in enumerate(body):
        if not (isinstance(s, Loop) and (s.parallel or s.independent)):
            continue
        if not isinstance(s.extent, int):
            continue
        nest = collapse(s, physical)
        if len(nest.body) != 1 or not isinstance(nest.body[0], Store):
            continue
        store = nest.body[0]
        buffer = store.buffer
        if not _row_major(store.index, nest.loops):
            continue
        readers = []
        for r in body[i + 1 :]:
            if not isinstance(r, Gemm) or buffer not in (r.a, r.b):
                break
            readers.append(r)
        if not all(_marked(r) == buffer for r in readers):
            continue  # lowering did not say this operand may be computed in the loader
        rest = [r for r in body if r is not s and not any(r is x for x in readers)]
        written = {physical.get(r.c, r.c) for r in readers}
        reads = {physical.get(b, b) for b in _loaded_buffers(store.value)}
        if not readers or any(r.c == buffer for r in readers) or reads & written:
            continue
        if any(buffer in _stmt_buffers(r) for r in rest):
            continue
        found[buffer] = (s, nest)
    return found


def _marked(g: Gemm) -> str | None:
    """The buffer of the operand lowering marked as computable in the loader."""
    return {"a": g.a, "b": g.b}.get(g.implicit or "")


def _row_major(index: Expr, loops: list[tuple[str, int]]) -> bool:
    terms = affine(index)
    if terms is None or terms.get("", 0) != 0:
        return False
    stride, want = 1, {}
    for var, extent in reversed(loops):
        want[var] = stride
        stride *= extent
    return {v: c for v, c in terms.items() if v and c} == want


def _loaded_buffers(e: Expr) -> set[str]:
    return {ld.buffer for ld in loads_in(e)}


def _stmt_buffers(s: Stmt) -> set[str]:
    """Every buffer a statement (nested blocks included) reads or writes."""
    found: set[str] = set()
    for x in walk([s]):
        if isinstance(x, Gemm):
            found |= {x.a, x.b, x.c}
        found.update(buffers_written(x))
        for e in own_expressions(x):
            found |= _loaded_buffers(e)
    return found


def gemm_splits(tiles: int, k: int) -> tuple[int, int]:
    """(splits of K, steps per split) so that a GEMM with few output tiles still gives the
    GPU about SPLIT_TARGET blocks, each with at least MIN_SPLIT steps of K."""
    if tiles >= SPLIT_TARGET or k < 2 * MIN_SPLIT:
        return 1, k
    splits = min(-(-SPLIT_TARGET // tiles), k // MIN_SPLIT)
    chunk = -(-k // splits)
    chunk = -(-chunk // 16) * 16  # whole steps of the shared-memory tile
    return -(-k // chunk), chunk
