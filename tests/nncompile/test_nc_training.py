"""nc.train_step and functional.dropout (no torch needed)."""

import numpy as np
import pytest

import nncompile as nc
from nncompile import functional as fn
from nncompile import losses, optim


def logistic_data(seed=0, n=128):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    y = (x @ np.array([2.0, -1.0]) + 0.3 > 0).astype(np.float32)[:, None]
    params = {"k": np.zeros((2, 1), np.float32), "b": np.zeros(1, np.float32)}
    return x, y, params


def logistic_loss(p, x, y):
    logits = fn.dense(x, p["k"], p["b"])
    loss = losses.binary_crossentropy(y, logits, from_logits=True)
    acc = nc.mean(nc.astype(nc.equal(logits > 0, y > 0.5), "float32"))
    return loss, {"accuracy": acc}


def test_train_step_returns_params_state_loss_metrics():
    x, y, params = logistic_data()
    opt = optim.SGD(lr=0.5)
    out = nc.train_step(logistic_loss, opt)(params, opt.init(params), x, y, np.float32(0.5))
    assert isinstance(out, tuple) and len(out) == 4
    p, state, loss, metrics = out
    assert set(p) == {"k", "b"} and np.shape(p["k"]) == (2, 1)
    assert np.asarray(p["k"]).dtype == np.float32
    assert set(state) == {"step"} and float(np.asarray(state["step"])) == 1
    assert np.shape(loss) == () and float(np.asarray(loss)) == pytest.approx(np.log(2))
    assert isinstance(metrics, dict) and set(metrics) == {"accuracy"}


def test_train_step_without_metrics_gives_empty_dict():
    x, y, params = logistic_data()
    opt = optim.Adam()
    step = nc.train_step(lambda p, x, y: logistic_loss(p, x, y)[0], opt)
    *_, metrics = step(params, opt.init(params), x, y, np.float32(1e-3))
    assert metrics == {}


def test_train_step_update_equals_manual_sgd():
    x, y, params = logistic_data(1)
    opt = optim.SGD(lr=0.25)
    p, _, loss, _ = nc.train_step(logistic_loss, opt)(
        params, opt.init(params), x, y, np.float32(0.25)
    )
    (want_loss, _), g = nc.value_and_grad(lambda q: logistic_loss(q, x, y), has_aux=True)(params)
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(want_loss))
    for k in params:
        np.testing.assert_allclose(
            np.asarray(p[k]), params[k] - 0.25 * np.asarray(g[k]), rtol=1e-6, atol=1e-7
        )


def test_logistic_regression_trains():
    x, y, params = logistic_data()
    opt = optim.SGD(lr=0.5)
    step = nc.train_step(logistic_loss, opt)
    state, history = opt.init(params), []
    for _ in range(50):
        params, state, loss, metrics = step(params, state, x, y, np.float32(0.5))
        history.append(float(np.asarray(loss)))
    assert history[-1] < 0.5 * history[0]
    assert all(b <= a + 1e-6 for a, b in zip(history, history[1:], strict=False))
    assert float(np.asarray(metrics["accuracy"])) > 0.9
    k = np.asarray(params["k"]).ravel()
    assert k[0] > 0 > k[1]  # recovers the sign pattern of the true boundary


def test_traced_train_step_verifies_round_trips_and_equals_eager():
    x, y, params = logistic_data(2)
    opt = optim.Adam(lr=0.05)
    step = nc.train_step(logistic_loss, opt)
    lr = np.float32(0.05)
    graph = nc.trace(step, params, opt.init(params), x, y, lr)
    assert graph.verify() is graph
    graph2 = nc.ir.Graph.from_json(graph.to_json())
    assert graph2.verify() is graph2
    assert graph2.to_json() == graph.to_json()

    pe, se = params, opt.init(params)
    pt, st = params, opt.init(params)
    for _ in range(10):
        pe, se, le, me = step(pe, se, x, y, lr)
        pr, _, lr_, _ = nc.run(graph, pt, st, x, y, lr)
        pt, st, lt, mt = nc.run(graph2, pt, st, x, y, lr)
        np.testing.assert_array_equal(lr_, lt)
        np.testing.assert_array_equal(pr["k"], pt["k"])
        np.testing.assert_array_equal(np.asarray(le), lt)
        np.testing.assert_array_equal(np.asarray(me["accuracy"]), mt["accuracy"])
        for k in params:
            np.testing.assert_array_equal(np.asarray(pe[k]), pt[k])
            np.testing.assert_array_equal(np.asarray(se["exp_avg"][k]), st["exp_avg"][k])
    assert float(lt) < float(np.log(2))


def test_traced_train_step_lr_is_an_input():
    x, y, params = logistic_data(3)
    opt = optim.SGD(lr=0.1)
    step = nc.train_step(logistic_loss, opt)
    state = opt.init(params)
    graph = nc.trace(step, params, state, x, y, np.float32(0.1))
    p1 = nc.run(graph, params, state, x, y, np.float32(0.1))[0]
    p2 = nc.run(graph, params, state, x, y, np.float32(0.2))[0]
    np.testing.assert_allclose(p2["k"], 2 * p1["k"], rtol=1e-6)  # from zero params
    e2 = step(params, state, x, y, np.float32(0.2))[0]
    np.testing.assert_array_equal(np.asarray(e2["k"]), p2["k"])


# ----------------------------------------------------------------------------- dropout


def test_dropout_deterministic_per_key_and_keys_differ():
    x = np.ones((64, 64), np.float32)
    a = np.asarray(fn.dropout(x, 0.5, np.int64(1)))
    np.testing.assert_array_equal(a, np.asarray(fn.dropout(x, 0.5, np.int64(1))))
    b = np.asarray(fn.dropout(x, 0.5, np.int64(2)))
    assert not np.array_equal(a == 0, b == 0)
    # masks for different keys are unrelated: agreement near 50%
    assert 0.4 < np.mean((a == 0) == (b == 0)) < 0.6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.1, 0.3, 0.75])
def test_dropout_rate_and_scaling(rate, dtype):
    x = np.random.default_rng(0).uniform(1, 2, (200, 500)).astype(dtype)
    y = np.asarray(fn.dropout(x, rate, np.int64(42)))
    assert y.dtype == dtype and y.shape == x.shape
    dropped = y == 0
    assert abs(dropped.mean() - rate) < 0.01
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - rate), rtol=1e-6)


def test_dropout_identity_when_not_training_or_rate_zero():
    x = np.random.default_rng(1).standard_normal((5, 6))
    np.testing.assert_array_equal(np.asarray(fn.dropout(x, 0.5, np.int64(0), training=False)), x)
    np.testing.assert_array_equal(np.asarray(fn.dropout(x, 0.0, np.int64(0))), x)
    with pytest.raises(ValueError):
        fn.dropout(x, 1.0, np.int64(0))
    with pytest.raises(ValueError):
        fn.dropout(x, -0.1, np.int64(0))


def test_dropout_gradient_flows_only_through_kept_elements():
    rng = np.random.default_rng(2)
    x = rng.uniform(1, 2, (20, 30))
    c = rng.standard_normal((20, 30))
    rate, key = 0.4, np.int64(9)
    kept = np.asarray(fn.dropout(x, rate, key)) != 0
    g = np.asarray(nc.grad(lambda x: nc.sum(fn.dropout(x, rate, key) * c))(x))
    np.testing.assert_allclose(g, np.where(kept, c / (1 - rate), 0.0), rtol=1e-12)
    assert np.all(g[~kept] == 0)


def test_dropout_traced_key_is_an_input():
    x = np.ones((32, 32), np.float32)
    graph = nc.trace(lambda x, key: fn.dropout(x, 0.5, key), x, np.int64(5))
    np.testing.assert_array_equal(
        nc.run(graph, x, np.int64(5)), np.asarray(fn.dropout(x, 0.5, np.int64(5)))
    )
    assert not np.array_equal(nc.run(graph, x, np.int64(5)), nc.run(graph, x, np.int64(6)))
    round_tripped = nc.ir.Graph.from_json(graph.to_json())
    np.testing.assert_array_equal(
        nc.run(round_tripped, x, np.int64(6)), nc.run(graph, x, np.int64(6))
    )
