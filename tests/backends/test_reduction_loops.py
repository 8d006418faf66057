"""A reduction's pass over its row runs neighbouring reduced axes as one loop (an NCHW
image's pixels: one loop of H*W, which vectorizes, instead of W-long loops whose
remainders run one element at a time), and keeps one loop per axis where the data would
be addressed through a division per element (a transposed input). Results against
float64 NumPy; the loops themselves read from the lowered kernels; and the index
simplification that makes the joined loop address memory through its own variable."""

from __future__ import annotations

import numpy as np
import pytest
from nncompile.ir.kernel import INDEX, Binary, Loop, Var, const_index, delinearize, linearize
from nncompile.ir.kernel import walk as walk_statements
from nncompile.ir.kernel_simplify import IndexSimplifier

import nncompile as nc

NCHW = (6, 5, 7, 9)
CASES = {
    "sum over pixels": (lambda x: nc.sum(x, axis=(2, 3)), lambda x: x.sum(axis=(2, 3))),
    "mean over batch and pixels": (
        lambda x: nc.mean(x, axis=(0, 2, 3)),
        lambda x: x.mean(axis=(0, 2, 3)),
    ),
    "max over channels and pixels": (
        lambda x: nc.max(x, axis=(1, 2, 3)),
        lambda x: x.max(axis=(1, 2, 3)),
    ),
    "min over pixels, kept dims": (
        lambda x: nc.min(x, axis=(2, 3), keepdims=True),
        lambda x: x.min(axis=(2, 3), keepdims=True),
    ),
    "variance over batch and pixels": (
        lambda x: nc.mean((x - nc.mean(x, axis=(0, 2, 3), keepdims=True)) ** 2, axis=(0, 2, 3)),
        lambda x: x.var(axis=(0, 2, 3)),
    ),
    "sum of a transposed input": (
        lambda x: nc.sum(nc.transpose(x, (0, 3, 2, 1)), axis=(1, 2)),
        lambda x: x.transpose(0, 3, 2, 1).sum(axis=(1, 2)),
    ),
    "argmax over pixels, flattened": (
        lambda x: nc.argmax(nc.reshape(x, (6, 5, 63)), axis=2),
        lambda x: x.reshape(6, 5, 63).argmax(axis=2),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("threads", [1, 2])
def test_reductions_over_neighbouring_axes_match_float64(name, threads):
    fn, reference = CASES[name]
    x = np.random.default_rng(3).standard_normal(NCHW).astype(np.float32)
    x[1, 2, 3, 4] = np.nan if name.startswith("max") else x[1, 2, 3, 4]  # NaN propagates
    got = nc.compile(fn, threads=threads)(x)
    want = reference(x.astype(np.float64))
    if np.asarray(want).dtype.kind == "i":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dynamic_batch_keeps_its_own_loop_and_matches():
    f = nc.compile(lambda x: nc.sum(x, axis=(0, 2, 3)), dynamic_batch=True)
    for batch in (1, 4, 9):
        x = np.random.default_rng(batch).standard_normal((batch, 5, 7, 9)).astype(np.float32)
        np.testing.assert_allclose(f(x), x.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5)


def _loop_extents(fn, x) -> list:
    kernels = nc.lower(fn, x).program.kernels
    return [s.extent for k in kernels for s in walk_statements(k.body) if isinstance(s, Loop)]


def _extent(value) -> int | None:
    return int(value.value) if hasattr(value, "value") else value


def test_pixels_are_one_loop_unless_the_input_is_transposed():
    x = np.zeros(NCHW, np.float32)
    plain = [_extent(e) for e in _loop_extents(lambda x: nc.sum(x, axis=(0, 2, 3)), x)]
    assert 7 * 9 in plain and 9 not in plain
    transposed = [
        _extent(e)
        for e in _loop_extents(lambda x: nc.sum(nc.transpose(x, (0, 3, 2, 1)), axis=(1, 2)), x)
    ]
    assert 7 * 9 not in transposed and 9 in transposed and 7 in transposed


def _simplified(e):
    s = IndexSimplifier()
    s.bind_range("f", (0, 62))
    s.bind_range("n", (0, 5))
    return s.expr(e)


def test_a_split_index_joined_again_is_the_variable():
    f, n = Var("f", INDEX), Var("n", INDEX)
    # (n, f // 9, f % 9) in a (6, 7, 9) array: n * 63 + f
    joined = _simplified(linearize([n, *delinearize(f, (7, 9))], (6, 7, 9)))
    assert not any(isinstance(x, Binary) and x.op in ("idiv", "mod") for x in _postorder(joined)), (
        joined
    )
    for nv in (0, 5):
        for fv in (0, 8, 9, 62):
            assert _evaluate(joined, {"n": nv, "f": fv}) == nv * 63 + fv
    # with a different stride (a transposed layout) the division stays
    crossed = _simplified(
        Binary(
            "add",
            Binary("mul", Binary("mod", f, const_index(9), INDEX), const_index(7), INDEX),
            Binary("idiv", f, const_index(9), INDEX),
            INDEX,
        )
    )
    assert any(isinstance(x, Binary) and x.op == "idiv" for x in _postorder(crossed))


def _postorder(e):
    from nncompile.ir.kernel import postorder

    return list(postorder([e]))


def _evaluate(e, env: dict) -> int:
    if isinstance(e, Var):
        return env[e.name]
    if hasattr(e, "value"):
        return int(e.value)
    a, b = _evaluate(e.a, env), _evaluate(e.b, env)
    ops = {
        "add": lambda: a + b,
        "sub": lambda: a - b,
        "mul": lambda: a * b,
        "idiv": lambda: a // b,
        "mod": lambda: a % b,
    }
    return ops[e.op]()


@pytest.mark.parametrize(
    "shape,axis,parallel",
    [
        ((512, 1000), 1, True),  # few rows, long ones: a team
        ((4, 32, 26, 26), (0, 2, 3), True),  # 32 channels' sums over a batch
        ((64, 10), 1, False),  # a loss over a batch's logits: one thread
        ((1, 100000), 1, False),  # one row: nothing to share
    ],
)
def test_reductions_of_long_rows_run_in_parallel(shape, axis, parallel):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    lowered = nc.lower(lambda x: nc.softmax(x, axis=1) if axis == 1 else nc.sum(x, axis=axis), x)
    loops = [s for k in lowered.program.kernels for s in walk_statements(k.body)]
    assert any(isinstance(s, Loop) and s.parallel for s in loops) == parallel
    f = nc.compile(lambda x: nc.sum(x, axis=axis), threads=2)
    np.testing.assert_allclose(f(x), x.astype(np.float64).sum(axis=axis), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 13])
@pytest.mark.parametrize("op", ["sum", "max", "mean"])
def test_column_reductions_fold_rows_in_groups(width, op):
    """NHWC data reduced over all but the channels (a bias gradient): rows of the last
    row axis are folded four at a time, then the rest one by one."""
    x = np.random.default_rng(width).standard_normal((20, 3, width, 24)).astype(np.float32)
    if op == "max":
        x[7, 1, width - 1, 5] = np.nan  # in the last row of an image: the leftover rows
    got = nc.compile(lambda x: getattr(nc, op)(x, axis=(0, 1, 2)), threads=2)(x)
    want = getattr(np, op)(x.astype(np.float64), axis=(0, 1, 2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
