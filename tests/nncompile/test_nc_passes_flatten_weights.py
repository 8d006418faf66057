"""passes/flatten_weights.py: ``matmul(reshape(transpose(x)), W)`` with a constant W (or
the transpose of one, ONNX Gemm's transB) becomes ``matmul(reshape(x), W')``, W's rows
permuted once at compile time; results equal the reference. A transposed map that
something else reads, a weight that is an argument, or a transpose that moves the batch
axis are left alone."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile.passes.dce import eliminate_dead_code
from nncompile.passes.flatten_weights import flatten_into_weights


def _maps(seed=0, shape=(3, 5, 4, 6)):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, shape).astype(np.float32)


def _leaves(result) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _ops(graph) -> list[str]:
    return [n.op for n in graph.nodes if n.op != "constant"]


def _rewritten(graph):
    return eliminate_dead_code(flatten_into_weights(graph))


@pytest.mark.parametrize("stored_transposed", [False, True])
@pytest.mark.parametrize("perm", [(0, 3, 1, 2), (0, 2, 1, 3), (0, 2, 3, 1)])
def test_the_transpose_moves_into_the_weight_and_results_match(perm, stored_transposed):
    x = _maps()
    k = x[0].size
    rng = np.random.default_rng(1)
    weight = rng.uniform(-1, 1, (7, k) if stored_transposed else (k, 7)).astype(np.float32)

    def fn(x):
        flat = nc.reshape(nc.transpose(x, perm), (x.shape[0], k))
        w = nc.transpose(nc.asarray(weight)) if stored_transposed else nc.asarray(weight)
        return nc.relu(flat @ w)

    graph = _rewritten(nc.trace(fn, x))
    assert _ops(graph).count("transpose") == (1 if stored_transposed else 0)
    want = nc.run(nc.trace(fn, x), x)
    flat_nchw = np.transpose(x, perm).reshape(x.shape[0], k)
    w64 = (weight.T if stored_transposed else weight).astype(np.float64)
    np.testing.assert_allclose(want, np.maximum(flat_nchw @ w64, 0), rtol=1e-5, atol=1e-5)
    for threads in (1, 2):
        got = nc.compile(fn, threads=threads)(x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # (the lowered program: no kernel transposes the maps; with the pass left out of the
    # pipeline each of these cases lowers to a "k0_transpose" copy kernel first)
    program = nc.lower(fn, x).program
    assert not any(k.name.endswith("transpose") for k in program.kernels)


def test_left_alone_when_the_transposed_maps_are_read_elsewhere_or_w_is_an_argument():
    x = _maps()
    k = x[0].size
    w = np.random.default_rng(2).uniform(-1, 1, (k, 4)).astype(np.float32)

    def shared(x):
        t = nc.transpose(x, (0, 3, 1, 2))
        return nc.reshape(t, (x.shape[0], k)) @ nc.asarray(w), t

    def argument(x, w):
        return nc.reshape(nc.transpose(x, (0, 3, 1, 2)), (x.shape[0], k)) @ w

    for fn, args in ((shared, (x,)), (argument, (x, w))):
        graph = nc.trace(fn, *args)
        assert _ops(_rewritten(graph)) == _ops(graph)
        want = nc.run(graph, *args)
        got = nc.compile(fn)(*args)
        for g, r in zip(_leaves(got), _leaves(want), strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_a_transpose_that_moves_the_batch_axis_is_left_alone():
    x = _maps(shape=(4, 3, 5))
    w = np.random.default_rng(3).uniform(-1, 1, (20, 5)).astype(np.float32)

    def fn(x):
        return nc.reshape(nc.transpose(x, (1, 0, 2)), (3, 20)) @ nc.asarray(w)

    graph = nc.trace(fn, x)
    assert _ops(_rewritten(graph)) == _ops(graph)


def test_a_symbolic_batch_axis_is_rewritten_too():
    x = _maps(shape=(5, 4, 3, 6))
    k = x[0].size
    w = np.random.default_rng(4).uniform(-1, 1, (k, 3)).astype(np.float32)

    def fn(x):
        return nc.reshape(nc.transpose(x, (0, 3, 1, 2)), (x.shape[0], k)) @ nc.asarray(w)

    f = nc.compile(fn, dynamic_batch=True)
    for n in (5, 2, 9):
        xs = _maps(seed=n, shape=(n, 4, 3, 6))
        want = np.transpose(xs, (0, 3, 1, 2)).reshape(n, k).astype(np.float64) @ w
        np.testing.assert_allclose(f(xs), want, rtol=1e-5, atol=1e-5)
    assert f.compile_count == 1
