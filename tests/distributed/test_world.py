"""nncompile.distributed without MPI: importing nncompile does not load mpi4py, and
``init()`` without it says what to install."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

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
    assert not nc.distributed.is_initialized()
    assert nc.distributed.rank() == 0 and nc.distributed.size() == 1
    assert nc.distributed.is_primary()


def test_the_allreduce_vector_layout():
    from nncompile.distributed.trainer import FlatLayout

    params = {"dense": {"kernel": np.zeros((3, 2), np.float32), "bias": np.zeros(2, np.float32)}}
    state = {"bn": {"moving_mean": np.zeros(4, np.float32)}}
    layout = FlatLayout(params, state, size=3)
    assert (layout.n_grads, layout.loss, layout.flags, layout.length) == (2, 12, 13, 16)
    flat = np.arange(16, dtype=np.float32)
    got = layout.state(flat, state, {}, 1)  # (no batch-norm moments: taken as reduced)
    np.testing.assert_array_equal(got["bn"]["moving_mean"], [8, 9, 10, 11])
    grads = layout.grads(flat)  # (eagerly: the same slicing the update traces)
    np.testing.assert_array_equal(np.asarray(grads["dense"]["kernel"]), np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(np.asarray(grads["dense"]["bias"]), [6, 7])


def test_one_dtype_is_required_for_the_allreduce_vector():
    from nncompile.distributed.trainer import FlatLayout

    params = {"a": {"w": np.zeros(2, np.float32)}}
    with pytest.raises(NotImplementedError, match="one floating-point dtype"):
        FlatLayout(params, {"b": {"m": np.zeros(2, np.float64)}}, size=2)
