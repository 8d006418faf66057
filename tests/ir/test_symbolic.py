"""The symbolic batch size (ir/symbolic.py): affine arithmetic, comparisons that hold for
every n >= 1, and loud failures for everything else."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nncompile.ir.errors import ExecutionError, ShapeError
from nncompile.ir.symbolic import (
    Dim,
    N,
    SymbolicShapeError,
    batch_hint,
    batch_of,
    bind,
    bound_batch,
    bound_batch_size,
    concrete,
    decode,
    dim,
    encode,
    hint,
)
from nncompile.ir.types import TensorType


def test_affine_arithmetic():
    assert str(N) == "n" and str(784 * N) == "784n" and str(2 * N + 3) == "2n+3"
    assert str(N - 1) == "n-1"
    assert N + N == 2 * N and (6 * N) // 3 == 2 * N and (4 * N) // (2 * N) == 2
    assert 2 * N - 2 * N == 0 and type(2 * N - 2 * N) is int
    assert math.prod((N, 13, 13, 32)) == 5408 * N
    assert (8 * N + 4) % 4 == 0 and (6 * N) % (3 * N) == 0
    assert TensorType((N, 3), "float32").size == 3 * N
    assert TensorType((N, 3), "float32").nbytes == 12 * N
    assert str(TensorType((N, 3), "float32")) == "float32[n,3]"


@pytest.mark.parametrize(
    "expr",
    [
        lambda: N * N,  # not affine
        lambda: (3 * N) // 2,  # not exact for every n
        lambda: (2 * N + 1) // 2,
        lambda: 5 // N,
        lambda: N % 2,
        lambda: -N,  # negative
        lambda: 3 - N,
        lambda: range(N),  # needs a concrete int
        lambda: int(N),
        lambda: np.zeros((N, 2)),
        lambda: N > 5,  # depends on n
        lambda: N <= 3,
        lambda: bool(N - 1),
    ],
)
def test_what_cannot_be_expressed_raises(expr):
    with pytest.raises(SymbolicShapeError):
        expr()


def test_comparisons_hold_for_every_n():
    assert N >= 1 and N > 0 and not N < 1 and not N <= 0
    assert N == N and N != 1 and not N == 1 and N != 2 * N
    assert 2 * N > N and N < N + 1 and max(N - 1, 0) == N - 1 and max(N, 1) == N
    assert bool(N) and bool(2 * N + 1)
    assert isinstance(N, Dim) and not isinstance(N, int)


def test_bind_and_concrete():
    assert bind((N, 3), (7, 3)) == 7 and bind((2 * N + 1, 3), (15, 3)) == 7
    assert bind((N, 3), (0, 3)) is None  # n >= 1
    assert bind((2 * N, 3), (7, 3)) is None  # odd
    assert bind((3, 4), (3, 4)) is None  # nothing symbolic
    assert concrete((N, 2 * N + 1, 5), 4) == (4, 9, 5)
    shapes = [(N, 2), (3,), (N,)]
    assert batch_of(shapes, [(5, 2), (3,), (5,)], "input") == 5
    with pytest.raises(ShapeError, match=r"input 2 expects shape \(n,\), got \(4,\).*n = 5"):
        batch_of(shapes, [(5, 2), (3,), (4,)], "input")
    with pytest.raises(ShapeError, match="input 0"):
        batch_of(shapes, [(5, 3), (3,), (5,)], "input")
    assert batch_of([(3,)], [(3,)], "input") is None


def test_json_form_round_trips():
    for d in (N, 784 * N, 2 * N + 3, N - 1, 5):
        assert decode(encode(d)) == d
    for bad in ("n", "2*m+1", "x*n+1", "-1*n+0", "1*n+-2", True, None, 1.5):
        assert decode(bad) is None


def test_dim_refuses_sizes_that_can_be_negative():
    assert dim(0, 4) == 4 and type(dim(0, 4)) is int
    with pytest.raises(SymbolicShapeError):
        dim(1, -2)
    with pytest.raises(SymbolicShapeError):
        Dim(0, 1)


def test_hint_and_the_bound_batch_size():
    assert hint(3 * N + 1) == 3 * 64 + 1 and hint(7) == 7
    with batch_hint(300):
        assert hint(N) == 300
    with batch_hint(1):  # (at least 64: see DEFAULT_HINT)
        assert hint(N) == 64
    with pytest.raises(ExecutionError, match="no batch size is bound"):
        bound_batch_size()
    with bound_batch(9):
        assert bound_batch_size() == 9
