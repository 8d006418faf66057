"""nncompile.distributed without MPI: importing nncompile does not load mpi4py, and
``init()`` without it says what to install."""

from __future__ import annotations

import subprocess
import sys

import nncompile as nc


def test_importing_nncompile_does_not_load_mpi():
    code = "import sys, nncompile, nncompile.nn; print('mpi4py' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_init_without_mpi4py_names_the_extra():
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "import nncompile.distributed as dist\n"
        "try:\n    dist.init()\nexcept ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "MissingDependencyError" in done.stdout, done.stderr
    assert "nncompile[mpi]" in done.stdout


def test_before_init_a_process_is_rank_zero_of_one():
    # (this test process never initializes MPI: it forks in other tests)
    if not nc.distributed.is_initialized():
        assert nc.distributed.rank() == 0 and nc.distributed.size() == 1
        assert nc.distributed.is_primary()
