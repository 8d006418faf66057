"""c_contiguous: the contiguous copy compiled calls make of views (nncompile/contiguous_copy.py)
gives what np.ascontiguousarray gives, aligned, for every kind of view; transposed
matrices are copied in tiles."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile.contiguous_copy import MIN_ELEMENTS, _columns_apart, c_contiguous

rng = np.random.default_rng(0)
BIG = rng.standard_normal((300, 517)).astype(np.float32)  # above MIN_ELEMENTS
FOUR = rng.standard_normal((4, 9, 70, 33)).astype(np.float64)

VIEWS = {
    "transposed": BIG.T,
    "fortran": np.asfortranarray(BIG),
    "step-slice": BIG[:, ::3],
    "reversed-rows": BIG.T[::-1],
    "reversed-columns": BIG[:, ::-1],
    "permuted-4d": FOUR.transpose(0, 3, 1, 2),
    "permuted-4d-last-strided": FOUR.transpose(3, 2, 0, 1),
    "small-transposed": BIG[:20, :30].T,
    "int32-transposed": (BIG * 100).astype(np.int32).T,
    "bool-transposed": (BIG > 0).T,
    "row-slice": BIG[:, :100],
}


def test_the_views_take_the_tiled_path_where_intended():
    for name in ("transposed", "fortran", "reversed-rows", "int32-transposed"):
        assert VIEWS[name].size >= MIN_ELEMENTS and _columns_apart(VIEWS[name]), name
    for name in ("step-slice", "reversed-columns", "row-slice"):
        assert not _columns_apart(VIEWS[name]), name


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_copy_equals_numpys_and_is_c_contiguous_and_aligned(name):
    view = VIEWS[name]
    got = c_contiguous(view)
    assert got.flags.c_contiguous and got.flags.aligned
    assert got.shape == view.shape and got.dtype == view.dtype
    np.testing.assert_array_equal(got, np.ascontiguousarray(view))
    assert not np.shares_memory(got, view)


def test_contiguous_aligned_arrays_are_returned_as_they_are():
    assert c_contiguous(BIG) is BIG
    scalar = np.array(2.5, np.float32)
    assert c_contiguous(scalar) is scalar


def test_a_misaligned_contiguous_array_is_copied_aligned():
    raw = np.zeros(BIG.nbytes + 4, np.uint8)
    start = 1 if raw.ctypes.data % 4 == 0 else 2
    view = raw[start : start + BIG.nbytes].view(np.float32).reshape(BIG.shape)
    view[...] = BIG
    assert not view.flags.aligned
    got = c_contiguous(view)
    assert got.flags.aligned and got.flags.c_contiguous
    np.testing.assert_array_equal(got, BIG)


def test_compiled_call_with_a_large_transposed_view():
    a = rng.standard_normal((4096, 256)).astype(np.float32)
    b = rng.standard_normal((4096, 24)).astype(np.float32)
    f = nc.compile(lambda x, y: x @ y)
    want = a.T.astype(np.float64) @ b
    for _ in range(2):  # (the second call takes the fast path)
        np.testing.assert_allclose(f(a.T, b), want, rtol=1e-4, atol=1e-3)
