"""The LLVM backend at the edges of its ops' semantics (index wrapping, NaN, empty and
odd shapes), and regression tests for code generator bugs found so far; each compares
compiled results with the NumPy reference (``test_llvm_ops.py`` covers every primitive)."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile.dispatch import bind

from . import llvm_support as S

F32, F64, I32, I64, BOOL = S.F32, S.F64, S.I32, S.I64, S.BOOL
acc, check, data, rng_for = S.acc, S.check, S.data, S.rng_for


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path / "cache"))


# ---- semantics at the edges -----------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        lambda x, i: nc.take(x, i, axis=1),
        lambda x, i: nc.take_along_axis(x, nc.reshape(i, (1, 3)), axis=1),
        lambda x, i: bind("scatter_add", nc.ones_like(x[:, :3]), i, axis=1, shape=(2, 5)),
    ],
    ids=["gather", "gather_elements", "scatter_add"],
)
@pytest.mark.parametrize("bad", [5, -6, 2**40])
def test_out_of_range_index_raises_execution_error(op, bad):
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    ok = np.array([0, -5, 4])
    cf = nc.compile(op)
    cf(x, ok)  # in range: fine
    with pytest.raises(nc.ExecutionError, match="out of range"):
        cf(x, np.array([0, bad, 1]))
    np.testing.assert_array_equal(cf(x, ok), S.reference(op, x, ok))  # still usable


def test_integer_division_by_zero_gives_zero():
    def fn(a, b, c):
        return nc.trunc_divide(a, b), nc.trunc_divide(c, b)

    a = np.array([7, -7, 0, np.iinfo(np.int64).min, 1, np.iinfo(np.int64).min])
    b = np.array([0, 0, 0, -1, -1, 0])
    c = a.astype(np.int32) // 3
    got = check(fn, a, b, c.astype(np.int32))
    np.testing.assert_array_equal(got[0], [0, 0, 0, np.iinfo(np.int64).min, -1, 0])


def test_nan_and_inf_propagate_through_max_min_relu():
    nan, inf = np.nan, np.inf
    x = np.array([nan, 1.0, -inf, inf, nan, -0.0, 3.0], np.float32)
    y = np.array([1.0, nan, inf, -inf, nan, 0.0, -inf], np.float32)

    def fn(x, y):
        return {
            "maximum": nc.maximum(x, y),
            "minimum": nc.minimum(x, y),
            "relu": nc.relu(x),
            "max": nc.max(x),
            "min": nc.min(y[2:4]),
            "max_rows": nc.max(nc.reshape(x[:6], (3, 2)), axis=1),
            "pool": nc.max_pool2d(nc.reshape(x[1:], (1, 1, 2, 3)), (1, 2), 1),
            "clip": nc.clip(x, -1.0, 2.0),
        }

    got = check(fn, x, y)
    np.testing.assert_array_equal(got["maximum"], [nan, nan, inf, inf, nan, 0.0, 3.0])
    np.testing.assert_array_equal(got["relu"], [nan, 1.0, 0.0, inf, nan, 0.0, 3.0])
    assert np.isnan(got["max"]) and got["min"] == -inf
    np.testing.assert_array_equal(got["max_rows"], [nan, inf, nan])
    np.testing.assert_array_equal(got["pool"].reshape(-1), [1.0, inf, nan, 3.0])


def test_argmax_first_occurrence_with_ties_and_nan():
    x = np.array(
        [[1, 3, 3, 0], [np.nan, 2, np.nan, 9], [5, 5, 5, 5], [2, np.nan, 7, 7]], np.float32
    )

    def fn(x):
        return nc.argmax(x, axis=1), nc.argmin(x, axis=1), nc.argmax(x, axis=0)

    got = check(fn, x)
    np.testing.assert_array_equal(got[0], [1, 0, 0, 1])  # NaN counts as the maximum
    np.testing.assert_array_equal(got[1], [3, 0, 0, 1])
    np.testing.assert_array_equal(got[2], [1, 3, 1, 1])


def test_max_pool_backward_gives_the_whole_gradient_to_the_first_maximum():
    x = np.ones((1, 1, 4, 4), np.float32)
    g = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)

    def fn(x, g):
        attrs = {"kernel": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0), "dilations": (1, 1)}
        overlap = {"kernel": (3, 3), "strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1)}
        return (
            bind("max_pool2d_backward", x, g, **attrs),
            bind("max_pool2d_backward", x, nc.ones_like(x), **overlap),
        )

    got = check(fn, x, g)
    want = np.zeros((4, 4), np.float32)
    want[0, 0], want[0, 2], want[2, 0], want[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(got[0][0, 0], want)
    assert got[1].sum() == 16  # overlapping windows add up


def test_random_uniform_is_bit_exact_and_in_unit_interval():
    def fn(k):
        return bind("random_uniform", k, shape=(1000,), dtype=nc.float32), bind(
            "random_uniform", k, shape=(257,), dtype=nc.float64
        )

    cf = nc.compile(fn)
    for key in (0, 1, -5, 2**63 - 1):
        k = np.asarray(key, np.int64)
        got = check(fn, k, compiled=cf)
        for a in got:
            assert a.min() >= 0 and a.max() < 1
    assert len(cf._cache) == 1


def test_gradients_of_many_ops_compiled():
    """nc.grad of a function using most differentiable ops: the backward graph's
    gradient primitives and sum_to_shape reductions, compiled."""
    rng = rng_for("grad")
    x = data(rng, (2, 3, 9, 8), F32)
    w = data(rng, (4, 3, 3, 3), F32) * 0.3
    m = data(rng, (17, 5), F32)
    idx = np.array([0, -1, 3, 3, 16])

    def loss(x, w, m):
        h = nc.conv2d(x, w, None, 1, 1)
        h = nc.max_pool2d(nc.relu(h), 2) + nc.avg_pool2d(h, 2, count_include_pad=False)
        h = nc.reshape(h, (2, -1))[:, 1:33:2]
        t = nc.take(m, idx, axis=0)
        p = nc.pad(m, ((1, 0), (0, 2)), mode="reflect")[::-1, 2:]
        z = (
            nc.sum(nc.tanh(h) * nc.sigmoid(h))
            + nc.sum(nc.exp(nc.minimum(t, 1.0)) @ m[:5, :2])
            + nc.mean(nc.softmax(p, axis=1) * m[0])
            + nc.sum(nc.concatenate([m, t], axis=0) ** 2) * 0.01
            + nc.max(nc.log(nc.abs(m) + 1.0))
            + nc.sum(nc.where(m > 0, m, m * 0.1) @ nc.transpose(m[:5]))
        )
        return z

    def fn(x, w, m):
        return nc.value_and_grad(loss, argnums=(0, 1, 2))(x, w, m)

    check(fn, x, w, m, tol=acc(F32, 200, 10.0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elementwise_and_broadcast_gradients_compiled(dtype):
    """nc.grad through every differentiable elementwise op, with broadcasting (the
    gradients are summed back to each operand's shape) and a layer norm."""
    rng = rng_for("grad-elementwise", dtype)
    x = data(rng, (3, 17), dtype)
    y = data(rng, (17,), dtype)
    s = np.asarray(0.7, dtype)

    def loss(x, y, s):
        a = nc.abs(x) + 0.5
        terms = [
            nc.erf(x) * y,
            nc.sigmoid(x - y),
            nc.tanh(x * s),
            nc.exp(nc.minimum(x, y)),
            nc.log(a),
            nc.sqrt(a) / (nc.abs(y) + 1.0),
            nc.reciprocal(a + y * y),
            nc.maximum(x, y) * nc.negative(y),
            nc.power(a, y),
            nc.relu(x) * nc.sign(y),
            nc.clip(x, -1.0, 1.0) * s,
            nc.where(x > y, x * y, x - y),
            nc.square(nc.broadcast_to(y, (3, 17)) - x),
            nc.layer_norm(x, (17,)) * y,
            nc.astype(nc.astype(x, "float64"), dtype) * 0.5,
            nc.stop_gradient(x) * x,
        ]
        return sum(nc.mean(t * (k + 1)) for k, t in enumerate(terms))

    def fn(x, y, s):
        return nc.value_and_grad(loss, argnums=(0, 1, 2))(x, y, s)

    check(fn, x, y, s, tol=acc(dtype, 51, 10.0))


# ---- regressions ----------------------------------------------------------------------------


def test_reduction_group_stores_whole_row_space_outputs():
    """A value computed in a reduction's row space and also returned must be stored
    whole. Bug: lower_reduction classes ``s`` (shape (6,), not the row shape (3, 2)) as an
    outer-space output and stores only its first 3 elements (``out[i1] = exp(x[i1])`` in
    the outer loop). Two calls, so that the unwritten half cannot hold the right values
    by chance (a recycled buffer)."""
    x = np.linspace(-1, 1, 6, dtype=np.float32)

    def fn(x):
        s = nc.exp(x)
        return nc.sum(nc.reshape(s, (3, 2)), axis=1), s

    cf = nc.compile(fn)
    cf(x + 1)
    check(fn, x, tol="math", compiled=cf)


def _gather_reduced(m, idx):
    return nc.sum(nc.take(m, nc.reshape(idx, (-1,)), axis=0), axis=0)


def _scatter_in_row_space(m, idx):
    ones = nc.ones_like(nc.astype(idx, "float32"))
    return m * nc.max(m) + bind("scatter_elements_add", ones, idx, axis=1, shape=(5, 3))


@pytest.mark.parametrize("fn", [_gather_reduced, _scatter_in_row_space])
def test_index_checks_inside_a_reduction_group(fn):
    """Bug: the index-range check of a gather / scatter_elements_add fused into a
    reduction group's row loop is emitted after the row loop (lower_reduction appends
    all checks at the end of the outer body), where its row variable is undefined:
    KeyError "unknown variable 'r3'" in codegen. Hit by sum(take(m, i, 0), 0) and by
    gradients of take_along_axis next to a max/softmax."""
    m = np.arange(15, dtype=np.float32).reshape(5, 3)
    idx = np.array([[0], [-1], [2], [1], [0]])
    cf = nc.compile(fn)
    check(fn, m, idx, compiled=cf)
    with pytest.raises(nc.ExecutionError, match="out of range"):
        cf(m, np.array([[0], [5], [1], [0], [0]]))


def test_take_along_axis_gradient_next_to_a_softmax():
    """The cross-entropy pattern: log_softmax, labels picked with take_along_axis, and
    its gradient (a scatter_elements_add with extent 1 on the axis)."""
    rng = rng_for("xent")
    x = data(rng, (7, 17), F32)
    labels = rng.integers(0, 17, (7, 1))

    def fn(x, labels):
        def loss(x):
            return -nc.mean(nc.take_along_axis(nc.log_softmax(x, axis=1), labels, axis=1))

        return nc.value_and_grad(loss)(x)

    check(fn, x, labels, tol=acc(F32, 17, 1.0))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: nc.transpose(nc.sum(x, axis=0)),
        lambda x: nc.transpose(nc.mean(x, axis=2)),
        lambda x: nc.sum(x, axis=0)[::-1],
        lambda x: nc.max(x, axis=1)[:, 1:3],
    ],
    ids=["transpose-sum", "transpose-mean", "reverse-sum", "slice-max"],
)
def test_index_remapping_after_a_reduction(fn):
    """Bug: a transpose / slice that joins a reduction group's outer space reads the
    reduction's result as if it did not depend on the index (it is bound to the current
    outer position), so transpose(sum(x, 0)) comes out untransposed. This is what breaks
    the LSTM's w_ih gradient (a batched matmul summed over the batch, then transposed)."""
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    check(fn, x)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, w: nc.maximum(nc.tanh(x) @ w, nc.tanh(x)),
        lambda x, w: nc.relu(x * 2.0) @ w + nc.relu(x * 2.0),  # a residual connection
    ],
    ids=["maximum", "residual"],
)
def test_matmul_epilogue_reading_the_matmul_operand(fn):
    """Bug: the epilogue of a matmul that also reads the matmul's (computed) operand
    merges the operand's producer group into the contraction group, so the operand is
    never stored before the Gemm reads it: AssertionError 'value %t0 has no buffer'
    in lowering/program.py."""
    rng = rng_for("epilogue")
    x, w = data(rng, (3, 4), F32), data(rng, (4, 4), F32)
    check(fn, x, w, tol=acc(F32, 4, 3.0))
