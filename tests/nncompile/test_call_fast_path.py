"""The per-call fast path of a compiled function (nncompile/call_fast_path.py): calls with
the last call's signature skip the general flatten and signature lookup; any difference
(structure, key order, shape, dtype, leaf kind, keywords, static leaves) takes the general
way and gives the same results as a fresh function would."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", "off")


def step(params, state, x, lr):
    h = nc.relu(x @ params["w"] + params["b"])
    out = {"sum": nc.sum(h), "pair": (h * lr, None), "moments": [state["m"] * 0.9]}
    return out, state["count"] + 1.0


def _args(rng, rows=4, dtype=np.float32):
    params = {"w": rng.standard_normal((3, 5)).astype(dtype), "b": np.ones(5, dtype)}
    state = {"m": rng.standard_normal(5).astype(dtype), "count": np.zeros((), dtype)}
    return params, state, rng.standard_normal((rows, 3)).astype(dtype), np.float32(0.5)


def _same(a, b):
    """Equal trees of arrays (and None), compared structurally."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif a is None:
        assert b is None
    else:
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_repeated_calls_take_the_fast_path_and_match_the_reference():
    rng = np.random.default_rng(0)
    f = nc.compile(step)
    reference = nc.compile(step, backend="numpy")
    for _ in range(3):
        args = _args(rng)
        _same(f(*args), reference(*args))
    assert f._fast is not None and f.compile_count == 1
    assert f._fast.leaves(_args(rng)) is not None


@pytest.mark.parametrize(
    "change",
    ["shape", "dtype", "key order", "extra key", "list for tuple", "subclass", "tensor"],
)
def test_a_different_signature_takes_the_general_way(change):
    rng = np.random.default_rng(1)
    f = nc.compile(step)
    f(*_args(rng))
    params, state, x, lr = _args(rng)
    if change == "shape":
        x = rng.standard_normal((7, 3)).astype(np.float32)
    elif change == "dtype":
        params, state, x, lr = _args(rng, dtype=np.float64)
    elif change == "key order":
        params = {"b": params["b"], "w": params["w"]}
    elif change == "extra key":
        params = {**params, "unused": np.ones(2, np.float32)}
    elif change == "subclass":

        class Marked(np.ndarray):
            pass

        x = x.view(Marked)
    elif change == "tensor":
        x = nc.Tensor(x)
    args = (params, state, x, lr)
    if change == "list for tuple":
        assert f._fast.leaves(list(args)) is None  # a list is not the arguments' tuple
        return
    if change in ("shape", "dtype", "key order", "extra key", "subclass", "tensor"):
        assert f._fast.leaves(args) is None
    got = f(*args)
    _same(got, nc.compile(step, backend="numpy")(*args))


def test_static_leaves_have_no_fast_path_and_stay_exact():
    f = nc.compile(lambda x, s: x * s)
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(f(x, 2.0), x * 2)
    assert f._fast is None
    np.testing.assert_array_equal(f(x, 3.0), x * 3)  # (a static value is the signature)
    assert f.compile_count == 2


def test_keyword_calls_and_views_still_work_after_the_fast_path_is_set():
    f = nc.compile(lambda x, y: x - y)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.ones((2, 3), np.float32)
    f(x, y)
    np.testing.assert_array_equal(f(x, y=y), x - y)  # keywords: the general way
    t = np.ascontiguousarray(x.T).T  # same shape and dtype, not contiguous
    assert f._fast.leaves((t, y)) is not None  # the executable copies what it must
    np.testing.assert_array_equal(f(t, y), t - y)
    assert f.compile_count == 1


def test_numpy_scalars_match_by_dtype():
    f = nc.compile(lambda x, s: x * s)
    x = np.arange(3, dtype=np.float32)
    f(x, np.float32(2))
    assert f._fast.leaves((x, np.float32(5))) is not None
    assert f._fast.leaves((x, np.float64(5))) is None
    np.testing.assert_array_equal(f(x, np.float64(5)), x * np.float64(5))


def test_donated_training_step_through_the_fast_path():
    from nncompile import optim

    rng = np.random.default_rng(2)
    params = {"w": rng.standard_normal((3, 2)).astype(np.float32)}
    x, y = rng.standard_normal((8, 3)).astype(np.float32), np.zeros(8, np.int64)

    def loss(p, x, y):
        return nc.cross_entropy(x @ p["w"], y)

    opt = optim.SGD(0.1)
    compiled = nc.compile(nc.train_step(loss, opt), donate_argnums=(0, 1))
    eager = nc.train_step(loss, opt)
    p_ref = {k: v.copy() for k, v in params.items()}
    s, s_ref = opt.init(params), opt.init(p_ref)
    for _ in range(4):
        params, s, loss_value, _ = compiled(params, s, x, y, np.float32(0.1))
        p_ref, s_ref, loss_ref, _ = eager(p_ref, s_ref, x, y, np.float32(0.1))
        np.testing.assert_allclose(loss_value, loss_ref, rtol=1e-5)
    np.testing.assert_allclose(params["w"], p_ref["w"], rtol=1e-5, atol=1e-6)
    assert compiled._fast is not None


def test_tensor_leaves_build_no_fast_path():
    f = nc.compile(lambda x: x * 2)
    x = np.ones(3, np.float32)
    np.testing.assert_array_equal(f(nc.Tensor(x)), x * 2)
    assert f._fast is None  # (it would never match: a Tensor always goes the general way)
    np.testing.assert_array_equal(f(x), x * 2)
    assert f._fast is not None and f.compile_count == 1
