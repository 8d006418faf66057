"""The MPI world of a data-parallel job: which process this is, how many there are, and
the rules every rank follows so that a failure ends the job instead of hanging it.

MPI comes from mpi4py over Open MPI (the ``nncompile[mpi]`` extra). Nothing here imports
mpi4py until ``init()``: importing ``mpi4py.MPI`` initializes MPI (about a second as a
singleton), and ``import nncompile`` must stay cheap and work without it.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from .. import config
from ..backend import available_cores
from ..errors import MissingDependencyError


@dataclass(frozen=True)
class World:
    comm: Any  # mpi4py's COMM_WORLD
    mpi: Any  # the mpi4py.MPI module
    rank: int
    size: int
    local_size: int  # ranks on this machine


_world: World | None = None


def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise MissingDependencyError(
            "nncompile.distributed needs MPI: pip install 'nncompile[mpi]' "
            "(mpi4py and Open MPI from PyPI), then launch with mpirun -n N python script.py"
        ) from e
    return MPI


def init() -> World:
    """Join the MPI world (idempotent). Launched by ``mpirun -n N`` this process is one of
    N ranks; run directly it is a world of one. With more than one rank, an uncaught
    exception on any rank aborts the whole job (the others would otherwise wait in their
    next collective forever), and ranks sharing a machine share its cores between their
    worker threads unless NNCOMPILE_THREADS says otherwise."""
    global _world
    if _world is not None:
        return _world
    mpi = _import_mpi()
    comm = mpi.COMM_WORLD
    local = comm.Split_type(mpi.COMM_TYPE_SHARED)
    _world = World(comm, mpi, comm.Get_rank(), comm.Get_size(), local.Get_size())
    local.Free()
    if _world.size > 1:
        _share_cores(_world.local_size)
        _abort_on_uncaught_exception(_world)
    return _world


def world() -> World:
    """The world, joined on first use."""
    return _world if _world is not None else init()


def is_initialized() -> bool:
    return _world is not None


def rank() -> int:
    """This process's rank (0 before ``init()``: a single process)."""
    return 0 if _world is None else _world.rank


def size() -> int:
    """The number of ranks (1 before ``init()``)."""
    return 1 if _world is None else _world.size


def is_primary() -> bool:
    """Whether this process writes files and prints progress (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (bounded by NNCOMPILE_DIST_TIMEOUT)."""
    w = world()
    if w.size > 1:
        wait([w.comm.Ibarrier()], "barrier")


def wait(requests: list[Any], what: str) -> None:
    """Complete non-blocking MPI requests, or abort the job after NNCOMPILE_DIST_TIMEOUT
    seconds: a rank that never arrives (stuck, or it caught an error and went on) must
    not hold the others forever, and a collective in flight cannot be cancelled."""
    w = world()
    if w.mpi.Request.Testall(requests):
        return
    timeout = config.get_int(config.DIST_TIMEOUT)
    deadline = time.monotonic() + timeout
    pause = 0.0
    while not w.mpi.Request.Testall(requests):
        if time.monotonic() > deadline:
            abort(
                f"rank {w.rank} of {w.size} waited {timeout} s in {what} for ranks that "
                f"never arrived ({config.DIST_TIMEOUT.name}={timeout}); aborting the job"
            )
        time.sleep(pause)  # yield the core; the pause grows to 1 ms while a peer lags
        pause = min(1e-3, pause * 2 + 1e-5)


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` and end every rank of the job (MPI_Abort)."""
    sys.stderr.write(f"nncompile.distributed: {message}\n")
    sys.stderr.flush()
    world().comm.Abort(code)


def _share_cores(local_size: int) -> None:
    """Ranks on one machine split its cores (2 ranks x 2 threads on 2 cores would time-
    slice every parallel loop). Left alone where mpirun already bound each rank to fewer
    cores than the machine has, or where the user set NNCOMPILE_THREADS."""
    if config.get_int(config.THREADS) is not None:
        return
    cores = available_cores()
    if cores < (os.cpu_count() or cores):
        return  # already bound by the launcher
    os.environ[config.THREADS.name] = str(max(1, cores // local_size))


def _abort_on_uncaught_exception(w: World) -> None:
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        try:
            previous(kind, value, tb)
        except Exception:
            traceback.print_exception(kind, value, tb)
        abort(f"rank {w.rank} of {w.size} raised {kind.__name__}; aborting the job")

    sys.excepthook = hook
