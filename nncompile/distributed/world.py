"""The MPI world of a data-parallel job: which process this is, how many there are, and
the rules every rank follows so that a failure ends the job instead of hanging it.

MPI comes from mpi4py over Open MPI (the ``nncompile[mpi]`` extra). Nothing here imports
mpi4py until ``init()``: importing ``mpi4py.MPI`` initializes MPI (about a second as a
singleton), and ``import nncompile`` must stay cheap and work without it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
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
_watchdog: _Watchdog | None = None


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
    global _world, _watchdog
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
        _watchdog = _Watchdog(_world, config.get_int(config.DIST_TIMEOUT))
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
        with deadline("barrier"):
            w.comm.Barrier()


@contextmanager
def deadline(what: str) -> Iterator[None]:
    """Run a collective under the watchdog: if it has not returned after
    NNCOMPILE_DIST_TIMEOUT seconds (a rank never arrived: stuck, or it caught an error
    and went on), the job is aborted; a collective in flight cannot be cancelled."""
    if _watchdog is None:
        yield
        return
    _watchdog.current = (what, time.monotonic())
    try:
        yield
    finally:
        _watchdog.current = None


class _Watchdog:
    """A daemon thread that looks at the collective in progress four times a second.
    MPI's blocking calls release the GIL (mpi4py), and the world runs at
    MPI_THREAD_MULTIPLE, so it may call MPI_Abort while the main thread waits in one."""

    def __init__(self, w: World, timeout: int | None):
        self.world, self.timeout = w, timeout
        self.current: tuple[str, float] | None = None
        threading.Thread(target=self._watch, name="nncompile-mpi-watchdog", daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            current = self.current
            if current is not None and time.monotonic() - current[1] > self.timeout:
                w = self.world
                abort(
                    f"rank {w.rank} of {w.size} waited {self.timeout} s in {current[0]} for "
                    f"ranks that never arrived ({config.DIST_TIMEOUT.name}={self.timeout}); "
                    "aborting the job"
                )


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
