"""Data-parallel training over MPI (mpi4py + Open MPI: ``pip install 'nncompile[mpi]'``).

    import nncompile.distributed as dist
    dist.init()                  # launched by mpirun -n N: one of N ranks; else a world of one
    model.compile(optimizer=..., loss=..., distributed=True)
    model.fit(x, y, batch_size=32)   # 32 rows per rank; global batch 32 * dist.size()

``allreduce`` and ``broadcast`` work on trees of arrays for your own training loops around
compiled steps. The semantics are written down in docs/distributed.md.
"""

from .collectives import BUCKET_BYTES, allreduce, broadcast
from .world import abort, barrier, init, is_initialized, is_primary, rank, size

__all__ = [
    "BUCKET_BYTES",
    "abort",
    "allreduce",
    "barrier",
    "broadcast",
    "init",
    "is_initialized",
    "is_primary",
    "rank",
    "size",
]
