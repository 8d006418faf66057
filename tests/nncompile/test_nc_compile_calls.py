"""How calls of a compiled function map to compiled graphs (issue #14 items 1, 3, 8):
exact static-argument keys, keyword arguments, the bounded in-memory cache, and failed
calls that leave donated inputs as they were."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import nncompile as nc
from nncompile import nn, optim


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", "off")


X = np.array([1.0, 2.0, -4.0], np.float32)


# ---- item 1: static arguments are keyed exactly -------------------------------------------


def test_signed_zero_statics_are_different_graphs():
    g = nc.compile(lambda x, s: 1.0 / (x * s))
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(g(X, 0.0), 1.0 / (X * np.float32(0.0)))
        np.testing.assert_array_equal(g(X, -0.0), 1.0 / (X * np.float32(-0.0)))
    assert g.compile_count == 2


@pytest.mark.parametrize("first, second", [(1, 1.0), (1, True), (1.0, True)])
def test_equal_but_differently_typed_statics_are_different_graphs(first, second):
    xi = np.arange(3, dtype=np.int32)
    m = nc.compile(lambda x, s: x * s)
    for s in (first, second):
        got = m(xi, s)
        want = np.asarray(nc.multiply(xi, s))  # eager: the reference
        assert got.dtype == want.dtype, s
        np.testing.assert_array_equal(got, want)


def test_nan_static_hits_the_cache():
    g = nc.compile(lambda x, s: x + s)
    g(X, float("nan"))
    g(X, float("nan"))
    assert g.compile_count == 1


Scale = collections.namedtuple("Scale", "weights bias")


def test_arrays_inside_static_leaves_are_keyed_by_content():
    f = nc.compile(lambda x, p: x * p.weights + p.bias)
    w = np.ones(3, np.float32)
    np.testing.assert_array_equal(f(X, Scale(w, 0.5)), X + 0.5)
    w2 = w.copy()
    w2[1] = 1.0 + 1e-7  # repr would print both arrays alike
    np.testing.assert_array_equal(f(X, Scale(w2, 0.5)), X * w2 + np.float32(0.5))
    big = np.zeros(2000, np.float32)
    g = nc.compile(lambda x, p: x + p[0][1000])
    assert g(X, {0: big})[0] == X[0]
    big2 = big.copy()
    big2[1000] = 5.0  # in the middle that repr elides
    np.testing.assert_array_equal(g(X, {0: big2}), X + 5.0)


def test_torch_tensors_as_statics():
    torch = pytest.importorskip("torch")
    g = nc.compile(lambda x, t: x + float(t[1000]))
    t = torch.zeros(2000)
    np.testing.assert_array_equal(g(X, t), X)
    np.testing.assert_array_equal(g(X, torch.zeros(2000)), X)  # equal tensors: no error
    t2 = torch.zeros(2000)
    t2[1000] = 5.0
    np.testing.assert_array_equal(g(X, t2), X + 5.0)


def test_unhashable_statics_are_keyed_by_identity():
    class Config:
        __hash__ = None

        def __init__(self, k):
            self.k = k

    f = nc.compile(lambda x, c: x * c.k)
    np.testing.assert_array_equal(f(X, Config(2.0)), X * 2)
    np.testing.assert_array_equal(f(X, Config(3.0)), X * 3)


# ---- item 8: keyword arguments --------------------------------------------------------------


def test_keyword_arguments():
    def f(x, y, scale=2.0, *, shift=0.0):
        return x * scale + y + shift

    g = nc.compile(f)
    y = np.ones(3, np.float32)
    np.testing.assert_allclose(g(X, y=y), X * 2 + 1)
    np.testing.assert_allclose(g(X, y, scale=3.0), X * 3 + 1)
    np.testing.assert_allclose(g(x=X, y=y, shift=np.float32(5.0)), X * 2 + 6)
    np.testing.assert_allclose(g(X, y, shift=np.float32(1.0)), X * 2 + 2)
    before = g.compile_count
    g(X, y, scale=3.0, shift=0.0)  # the same bound arguments: the same graph
    assert g.compile_count == before
    with pytest.raises(nc.TraceError, match="unexpected keyword"):
        g(X, y, colour=1)


def test_set_weights_with_transposed_arrays_are_stored_contiguous():
    model = nn.Sequential([nn.Dense(4, input_shape=(3,))])
    model.compile(optim.SGD(0.1), "mse")
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    model.set_weights([w.T, np.zeros(4, np.float32)])
    assert all(a.flags.c_contiguous for a in model.get_weights())
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ w.T)
    model.fit(x, np.zeros((2, 4), np.float32), epochs=1, verbose=0)
    before = [a.copy() for a in model.get_weights()]
    with pytest.raises(nc.ShapeError):
        model.set_weights([w.T, np.zeros(5, np.float32)])  # the bias is wrong
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)  # the kernel was not half-set


# ---- the in-memory cache is bounded --------------------------------------------------------


def test_memory_cache_keeps_the_most_recent_signatures(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_MEMORY_CACHE", "3")
    f = nc.compile(lambda x: x + 1)
    for n in range(1, 7):
        f(np.zeros(n, np.float32))
    assert len(f._cache) == 3
    f(np.zeros(6, np.float32))
    assert f.compile_count == 6  # still cached
    f(np.zeros(1, np.float32))
    assert f.compile_count == 7  # evicted, compiled again


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_bad_memory_cache_setting(monkeypatch, value):
    monkeypatch.setenv("NNCOMPILE_MEMORY_CACHE", value)
    with pytest.raises(nc.ConfigError, match="NNCOMPILE_MEMORY_CACHE"):
        nc.compile(lambda x: x + 1)(X)


# ---- item 3: a failed call leaves donated inputs as they were --------------------------------


def _embedding_step(params, ids, lr):
    def loss(p):
        return nc.sum(nc.take(p["table"], ids, axis=0) * p["scale"])

    grads = nc.grad(loss)(params)
    return {k: params[k] - lr * grads[k] for k in params}


def test_failed_call_leaves_donated_inputs_unchanged():
    step = nc.compile(_embedding_step, donate_argnums=(0,))
    rng = np.random.default_rng(0)
    params = {
        "table": rng.standard_normal((5, 3)).astype(np.float32),
        "scale": rng.standard_normal(3).astype(np.float32),
    }
    before = {k: v.copy() for k, v in params.items()}
    params = step(params, np.array([0, 4], np.int64), np.float32(0.1))  # compiles; fine
    before = {k: v.copy() for k, v in params.items()}
    with pytest.raises(nc.ExecutionError):
        step(params, np.array([1, 7], np.int64), np.float32(0.1))
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_fit_whose_second_batch_fails_keeps_the_weights():
    model = nn.Sequential([nn.Embedding(6, 4, input_shape=(2,)), nn.Flatten(), nn.Dense(1)])
    model.compile(optim.Adam(0.01), "mse")
    x = np.array([[0, 1], [2, 3], [4, 5], [1, 9]], np.int64)  # 9: out of range
    y = np.ones((4, 1), np.float32)
    model.fit(x[:2], y[:2], batch_size=2, epochs=1, verbose=0, shuffle=False)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(nc.NCError):
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    for w, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(w, b)
