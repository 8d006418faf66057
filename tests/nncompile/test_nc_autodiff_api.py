"""Reverse-mode autodiff's API: nc.grad / nc.value_and_grad, gradient graphs, higher-order
gradients, and that the backward pass neither recomputes nor computes what is not asked
for.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import nncompile as nc

from .autodiff_support import F32, F64, I64, assert_close_rel, numeric_grad, randn, rng, uniform

# ---- the API ---------------------------------------------------------------------------------


def mlp_loss(params, x, labels):
    h = nc.tanh(x @ params["layers"][0]["w"] + params["layers"][0]["b"])
    return nc.cross_entropy(h @ params["layers"][1]["w"] + params["layers"][1]["b"], labels)


def mlp_params(seed: int = 0):
    r = rng(seed)
    return {
        "layers": [
            {"w": r.standard_normal((4, 5)) * 0.7, "b": r.standard_normal(5) * 0.1},
            {"w": r.standard_normal((5, 3)) * 0.7, "b": r.standard_normal(3) * 0.1},
        ]
    }


X, LABELS = randn(6, 4, seed=40), np.array([0, 2, 1, 1, 0, 2], I64)


def _leaves(tree):
    if isinstance(tree, dict):
        return [x for k in tree for x in _leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [x for c in tree for x in _leaves(c)]
    return [tree]


def _map(fn, tree):
    if isinstance(tree, dict):
        return {k: _map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map(fn, c) for c in tree)
    return fn(tree)


def _assert_same_structure(got, want):
    assert type(got) is type(want) or not isinstance(want, (dict, list, tuple))
    if isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            _assert_same_structure(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _assert_same_structure(g, w)
    else:
        assert isinstance(got, nc.Tensor) and got.shape == np.shape(want), (got, want)


def test_grad_argnums_int_and_tuple() -> None:
    a, b = randn(3, seed=1), randn(3, seed=2)

    def f(a, b):
        return nc.sum(a * a * b)

    ga = nc.grad(f)(a, b)
    assert isinstance(ga, nc.Tensor)
    np.testing.assert_allclose(ga.numpy(), 2 * a * b, rtol=1e-14)
    gb = nc.grad(f, argnums=1)(a, b)
    np.testing.assert_allclose(gb.numpy(), a * a, rtol=1e-14)
    both = nc.grad(f, argnums=(1, 0))(a, b)
    assert isinstance(both, tuple) and len(both) == 2
    np.testing.assert_array_equal(both[0].numpy(), gb.numpy())
    np.testing.assert_array_equal(both[1].numpy(), ga.numpy())
    (only,) = nc.grad(f, argnums=(0,))(a, b)
    np.testing.assert_array_equal(only.numpy(), ga.numpy())
    np.testing.assert_array_equal(nc.grad(f, argnums=-1)(a, b).numpy(), gb.numpy())
    with pytest.raises(ValueError, match="argnums"):
        nc.grad(f, argnums=2)(a, b)


def test_grad_of_nested_params_has_their_structure() -> None:
    params = mlp_params()
    grads = nc.grad(mlp_loss)(params, X, LABELS)
    _assert_same_structure(grads, params)
    # each leaf against finite differences of the loss
    leaves = _leaves(params)
    flat = np.concatenate([p.ravel() for p in leaves])

    def loss_flat(v):
        parts, start = [], 0
        for p in leaves:
            parts.append(np.asarray(v)[start : start + p.size].reshape(p.shape))
            start += p.size
        it = iter(parts)
        return mlp_loss(_map(lambda _: next(it), params), X, LABELS)

    want = numeric_grad(loss_flat, [flat], 0)
    got = np.concatenate([g.numpy().ravel() for g in _leaves(grads)])
    assert_close_rel(got, want)


def test_grad_tuple_and_list_arguments() -> None:
    pair = (randn(2, seed=1), [randn(3, seed=2), randn(1, seed=3)])
    g = nc.grad(lambda p: nc.sum(p[0]) * nc.sum(p[1][0] * p[1][1]))(pair)
    _assert_same_structure(g, pair)
    s0, s1 = pair[0].sum(), (pair[1][0] * pair[1][1]).sum()
    np.testing.assert_allclose(g[0].numpy(), np.full(2, s1), rtol=1e-14)
    np.testing.assert_allclose(g[1][0].numpy(), s0 * pair[1][1].repeat(3), rtol=1e-14)
    np.testing.assert_allclose(g[1][1].numpy(), [s0 * pair[1][0].sum()], rtol=1e-14)


def test_has_aux_and_value_and_grad() -> None:
    params = mlp_params()

    def loss_and_acc(params, x, labels):
        h = nc.tanh(x @ params["layers"][0]["w"] + params["layers"][0]["b"])
        logits = h @ params["layers"][1]["w"] + params["layers"][1]["b"]
        acc = nc.mean(nc.astype(nc.equal(nc.argmax(logits, axis=1), labels), "float64"))
        aux = {"acc": acc, "logits": logits, "pred": nc.argmax(logits, axis=1)}
        return nc.cross_entropy(logits, labels), aux

    plain = nc.grad(mlp_loss)(params, X, LABELS)
    grads, aux = nc.grad(loss_and_acc, has_aux=True)(params, X, LABELS)
    _assert_same_structure(grads, params)
    for a, b in zip(_leaves(grads), _leaves(plain), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert set(aux) == {"acc", "logits", "pred"} and aux["logits"].shape == (6, 3)
    assert aux["pred"].dtype == I64
    _, want_aux = loss_and_acc(params, X, LABELS)
    np.testing.assert_array_equal(aux["acc"].numpy(), want_aux["acc"].numpy())

    value, grads2 = nc.value_and_grad(mlp_loss)(params, X, LABELS)
    np.testing.assert_array_equal(value.numpy(), mlp_loss(params, X, LABELS).numpy())
    for a, b in zip(_leaves(grads2), _leaves(plain), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    (value, aux2), grads3 = nc.value_and_grad(loss_and_acc, has_aux=True)(params, X, LABELS)
    np.testing.assert_array_equal(value.numpy(), mlp_loss(params, X, LABELS).numpy())
    np.testing.assert_array_equal(aux2["logits"].numpy(), aux["logits"].numpy())
    _assert_same_structure(grads3, params)


def test_grad_under_trace_equals_eager_grad_exactly() -> None:
    params = mlp_params(1)
    eager = nc.grad(mlp_loss)(params, X, LABELS)
    graph = nc.trace(nc.grad(mlp_loss), params, X, LABELS)
    graph.verify()
    ran = nc.run(graph, params, X, LABELS)
    for a, b in zip(_leaves(ran), _leaves(eager), strict=True):
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b.numpy())
    # value_and_grad under trace, too
    graph = nc.trace(nc.value_and_grad(mlp_loss, argnums=(0, 1)), params, X, LABELS)
    value, (gp, gx) = nc.run(graph, params, X, LABELS)
    np.testing.assert_array_equal(value, mlp_loss(params, X, LABELS).numpy())
    np.testing.assert_array_equal(gx, nc.grad(mlp_loss, argnums=1)(params, X, LABELS).numpy())


def _mlp_graph():
    params = mlp_params(2)
    args = (params["layers"][0]["w"], params["layers"][0]["b"], X)

    def f(w, b, x):
        return nc.sum(nc.tanh(x @ w + b) ** 2)

    return f, args, nc.trace(f, *args)


def test_grad_graph_is_a_runnable_serializable_graph() -> None:
    f, args, graph = _mlp_graph()
    gg = nc.autodiff.grad(graph, wrt=[0, 1], of=0)
    assert isinstance(gg, nc.ir.Graph)
    assert gg is not graph
    gg.verify()
    assert [v.name for v in gg.inputs] == [v.name for v in graph.inputs]
    assert set(gg.op_counts()) <= set(nc.ir.all_ops())
    text = str(gg)
    assert "vjp of" in text and "matmul" in text
    value, grads = nc.run(gg, *args)
    np.testing.assert_array_equal(value, f(*args).numpy())
    eager = nc.grad(f, argnums=(0, 1))(*args)
    assert len(grads) == 2
    for a, b in zip(grads, eager, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    back = nc.ir.Graph.from_json(gg.to_json())
    back.verify()
    assert str(back) == text
    json.loads(gg.to_json())
    value2, grads2 = nc.run(back, *args)
    np.testing.assert_array_equal(value2, value)
    for a, b in zip(grads2, grads, strict=True):
        np.testing.assert_array_equal(a, b)
    # by name, without the original outputs, and the default (every float input)
    (gb,) = nc.run(nc.autodiff.grad(graph, wrt=["b"], keep_outputs=False), *args)
    np.testing.assert_array_equal(gb, eager[1].numpy())
    _, all_grads = nc.run(nc.autodiff.grad(graph), *args)
    assert len(all_grads) == 3
    np.testing.assert_array_equal(all_grads[2], nc.grad(f, argnums=2)(*args).numpy())


def test_grad_graph_can_be_differentiated_again() -> None:
    x = randn(4, seed=3)
    graph = nc.trace(lambda x: nc.sum(nc.exp(x) * x), x)
    g1 = nc.autodiff.grad(graph, wrt=[0], keep_outputs=False)
    # d/dx sum((e^x (1 + x)) * v) = e^x (2 + x) v
    v = randn(4, seed=4)
    g1_dot_v = nc.trace(lambda x: nc.sum(bind_graph(g1, x) * v), x)
    (g2,) = nc.run(nc.autodiff.grad(g1_dot_v, keep_outputs=False), x)
    np.testing.assert_allclose(g2, np.exp(x) * (2 + x) * v, rtol=1e-13)


def bind_graph(graph: nc.ir.Graph, *xs):
    """Replay a single-output graph on Tensors (eager or traced)."""
    from nncompile.dispatch import apply_op

    env = {id(v): nc.asarray(x) for v, x in zip(graph.inputs, xs, strict=True)}
    for node in graph.nodes:
        outs = apply_op(node.op, [env[id(v)] for v in node.inputs], node.attrs)
        env.update((id(v), t) for v, t in zip(node.outputs, outs, strict=True))
    (out,) = graph.outputs
    return env[id(out)]


def test_inner_grad_closes_over_outer_argument() -> None:
    x0, y0 = np.array([0.5, -1.0, 2.0]), np.array([1.5, 2.0, -0.5])

    def f(y):  # sum(d/dx sum(x^2 y) at x0 * y) = sum(2 x0 y^2): d/dy = 4 x0 y
        return nc.sum(nc.grad(lambda x: nc.sum(x * x * y))(x0) * y)

    np.testing.assert_allclose(nc.grad(f)(y0).numpy(), 4 * x0 * y0, rtol=1e-15)
    graph = nc.trace(nc.grad(f), y0)
    np.testing.assert_array_equal(nc.run(graph, y0), nc.grad(f)(y0).numpy())


def test_grad_graph_of_another_output() -> None:
    x = randn(3, seed=9)
    graph = nc.trace(lambda x: (nc.sum(x), nc.sum(x * x)), x)
    (g,) = nc.run(nc.autodiff.grad(graph, of=1, keep_outputs=False), x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-15)
    name = graph.outputs[1].name
    (g2,) = nc.run(nc.autodiff.grad(graph, of=name, keep_outputs=False), x)
    np.testing.assert_array_equal(g2, g)
    (g3,) = nc.run(nc.autodiff.grad(graph, of=-2, keep_outputs=False), x)
    np.testing.assert_array_equal(g3, np.ones(3))


def test_grad_errors() -> None:
    x = randn(3, seed=1)
    with pytest.raises(nc.ShapeError, match="scalar"):
        nc.grad(lambda x: x * 2)(x)
    with pytest.raises(nc.DTypeError):
        nc.grad(lambda i: nc.sum(nc.astype(i, "float64")))(np.arange(3))
    with pytest.raises(nc.DTypeError):
        nc.grad(lambda x, i: nc.sum(x * i), argnums=1)(x, np.arange(3))
    with pytest.raises(nc.DTypeError):  # a Python number is static: nothing to differentiate
        nc.grad(lambda x, s: nc.sum(x) * s, argnums=1)(x, 2.0)
    with pytest.raises(ValueError, match="has_aux"):
        nc.grad(lambda x: (nc.sum(x), x))(x)
    with pytest.raises(nc.ShapeError, match="scalar"):
        nc.grad(lambda x: (x, nc.sum(x)), has_aux=True)(x)  # the loss must come first
    with pytest.raises(nc.ShapeError, match="scalar"):
        nc.grad(lambda x: nc.sum(nc.astype(x, "int64")))(x)
    graph = nc.trace(lambda x: x * 2, x)
    with pytest.raises(nc.ShapeError):
        nc.autodiff.grad(graph)
    with pytest.raises(nc.GraphError):
        nc.autodiff.grad(nc.trace(lambda x: nc.sum(x), x), wrt=["nope"])
    with pytest.raises(nc.DTypeError):
        nc.autodiff.grad(nc.trace(lambda x, i: nc.sum(x * i), x, np.arange(3)), wrt=[1])


def test_unused_and_passthrough_inputs() -> None:
    x, y = randn(2, 3, seed=1), randn(4, seed=2).astype(F32)
    gx, gy = nc.grad(lambda x, y: nc.sum(x * x), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx.numpy(), 2 * x, rtol=1e-15)
    assert gy.dtype == F32 and gy.shape == (4,)
    np.testing.assert_array_equal(gy.numpy(), np.zeros(4, F32))
    # the output is the input itself; and a constant output
    np.testing.assert_array_equal(nc.grad(lambda s: s)(np.array(2.5)).numpy(), 1.0)
    np.testing.assert_array_equal(nc.grad(lambda s: s * 0 + 1)(np.array(2.5)).numpy(), 0.0)
    g = nc.grad(lambda x: nc.sum(nc.ones_like(x)))(x)
    np.testing.assert_array_equal(g.numpy(), np.zeros_like(x))


def test_float32_gradients_stay_float32() -> None:
    params = _map(lambda p: p.astype(F32), mlp_params(3))
    grads = nc.grad(mlp_loss)(params, X.astype(F32), LABELS)
    want = nc.grad(mlp_loss)(mlp_params(3), X, LABELS)
    for g, w in zip(_leaves(grads), _leaves(want), strict=True):
        assert g.dtype == F32
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-6)


def test_same_value_used_twice_accumulates() -> None:
    x = randn(3, seed=5)
    g = nc.grad(lambda x: nc.sum(x * x + nc.exp(x) * x + x))(x).numpy()
    np.testing.assert_allclose(g, 2 * x + np.exp(x) * (1 + x) + 1, rtol=1e-14)


# ---- higher order --------------------------------------------------------------------------


def scalar_f(x):
    return nc.tanh(x) * x**3 + nc.exp(0.5 * x) - nc.log(1 + x * x)


def scalar_f2(x: np.ndarray) -> np.ndarray:
    t = np.tanh(x)
    s = 1 - t * t  # tanh'
    t2 = -2 * t * s  # tanh''
    log_term = (2 - 2 * x * x) / (1 + x * x) ** 2  # (log(1 + x^2))''
    return t2 * x**3 + 6 * s * x**2 + 6 * t * x + 0.25 * np.exp(0.5 * x) - log_term


def test_second_derivative_of_scalar_function() -> None:
    for x0 in (-1.3, 0.2, 0.9, 2.0):
        x = np.array(x0)
        d2 = nc.grad(nc.grad(scalar_f))(x)
        assert d2.shape == () and d2.dtype == F64
        np.testing.assert_allclose(d2.numpy(), scalar_f2(x), rtol=1e-12)
    # elementwise, on a vector
    xs = uniform(7, low=-2, high=2, seed=3)
    d1 = nc.grad(lambda x: nc.sum(scalar_f(x)))
    d2 = nc.grad(lambda x: nc.sum(d1(x)))(xs)
    np.testing.assert_allclose(d2.numpy(), scalar_f2(xs), rtol=1e-12, atol=1e-14)
    # third derivative of x^4 / 4 is 6x
    d3 = nc.grad(nc.grad(nc.grad(lambda x: x**4 / 4)))(np.array(1.5))
    np.testing.assert_allclose(d3.numpy(), 9.0, rtol=1e-14)


def _flat_params(params) -> np.ndarray:
    return np.concatenate([np.ravel(p) for p in _leaves(params)])


def _unflat(params, v: np.ndarray):
    it, start = iter(_leaves(params)), 0
    out = []
    for p in it:
        out.append(v[start : start + p.size].reshape(p.shape))
        start += p.size
    it2 = iter(out)
    return _map(lambda _: next(it2), params)


def test_hessian_vector_product_of_mlp_loss() -> None:
    params = mlp_params(5)
    v = _unflat(params, rng(6).standard_normal(_flat_params(params).size))
    grad_fn = nc.grad(mlp_loss)

    def g_dot_v(p):
        return sum(
            (
                nc.sum(g * t)
                for g, t in zip(_leaves(grad_fn(p, X, LABELS)), _leaves(v), strict=True)
            ),
            start=nc.asarray(np.array(0.0)),
        )

    hvp = nc.grad(g_dot_v)(params)
    _assert_same_structure(hvp, params)
    got = _flat_params(_map(lambda t: t.numpy(), hvp))
    p0, vf, h = _flat_params(params), _flat_params(v), 1e-5

    def grad_at(flat):
        return _flat_params(_map(lambda t: t.numpy(), grad_fn(_unflat(params, flat), X, LABELS)))

    want = (grad_at(p0 + h * vf) - grad_at(p0 - h * vf)) / (2 * h)
    assert_close_rel(got, want)
    # and the same HVP from a traced graph
    traced = nc.run(nc.trace(nc.grad(g_dot_v), params), params)
    np.testing.assert_array_equal(_flat_params(traced), got)


# ---- the backward pass does only the work it must ---------------------------------------------


def _layer(x, w, w2):
    return nc.sum(nc.tanh(x @ w) @ w2)


def test_grad_wrt_weight_computes_no_input_gradient() -> None:
    x, w, w2 = randn(3, 4, seed=1), randn(4, 5, seed=2), randn(5, 2, seed=3)
    graph = nc.trace(_layer, x, w, w2)
    gg = nc.autodiff.grad(graph, wrt=[1])
    produced = [(n.op, n.outputs[0].shape) for n in gg.nodes]
    assert ("matmul", x.shape) not in produced  # the dx matmul
    assert ("matmul", w2.shape) not in produced  # the dw2 matmul: w2 was not asked for
    assert not any(shape == x.shape for _, shape in produced), produced
    forward = [n for n in gg.nodes if n.op == "matmul" and n.inputs[0] is gg.inputs[0]]
    assert len(forward) == 1  # x @ w once: the backward reuses the forward values
    assert gg.op_counts()["tanh"] == 1
    assert gg.op_counts()["matmul"] == 4  # two forward, dh = g @ w2^T, dw = x^T @ dpre
    # and those gradients are right
    _, (gw,) = nc.run(gg, x, w, w2)
    np.testing.assert_array_equal(gw, nc.grad(_layer, argnums=1)(x, w, w2).numpy())


def test_grad_wrt_input_computes_no_weight_gradient() -> None:
    x, w, w2 = randn(3, 4, seed=1), randn(4, 5, seed=2), randn(5, 2, seed=3)
    gg = nc.autodiff.grad(nc.trace(_layer, x, w, w2), wrt=[0])
    produced = [(n.op, n.outputs[0].shape) for n in gg.nodes]
    assert ("matmul", w.shape) not in produced and ("matmul", w2.shape) not in produced
    assert gg.op_counts()["matmul"] == 4  # two forward, dh = g @ w2^T, dx = dpre @ w^T


def test_no_backward_step_for_branches_that_do_not_reach_wrt() -> None:
    x, w = randn(3, 4, seed=1), randn(3, 4, seed=2)

    def f(x, w):
        return nc.sum(nc.tanh(nc.exp(x)) * w)

    graph = nc.trace(f, x, w)
    gg = nc.autodiff.grad(graph, wrt=[1], keep_outputs=False)
    x_only = {n.name for n in graph.nodes if n.op in ("exp", "tanh")}
    for n in gg.nodes:
        assert not any(f"vjp of {name})" in (n.loc or "") for name in x_only), n
    assert len(gg.nodes) <= len(graph.nodes) + 4, str(gg)
    (gw,) = nc.run(gg, x, w)
    np.testing.assert_array_equal(gw, np.tanh(np.exp(x)))


def test_eager_grad_does_not_recompute_the_forward_pass(monkeypatch) -> None:
    import nncompile.dispatch as dispatch

    computed: list[str] = []
    real = dispatch.call_reference

    def counting(op, arrays, attrs):
        computed.append(op)
        return real(op, arrays, attrs)

    monkeypatch.setattr(dispatch, "call_reference", counting)
    x, w, w2 = randn(3, 4, seed=1), randn(4, 5, seed=2), randn(5, 2, seed=3)
    nc.grad(_layer, argnums=1)(x, w, w2)
    assert computed.count("tanh") == 1
    assert computed.count("matmul") == 4, computed


def test_backward_nodes_name_the_forward_node() -> None:
    _, _, graph = _mlp_graph()
    gg = nc.autodiff.grad(graph, wrt=[0])
    forward = {n.name: n for n in graph.nodes}
    backward = [n for n in gg.nodes if n.loc and "vjp of" in n.loc]
    assert backward
    for n in gg.nodes:
        if n.name in forward or n.op == "constant":
            continue
        assert n.loc and "(vjp of " in n.loc, (n.name, n.op, n.loc)
        fwd_name = n.loc.rsplit("(vjp of ", 1)[1].rstrip(")")
        assert fwd_name in forward, n.loc
        assert n.loc.startswith(forward[fwd_name].loc), (n.loc, forward[fwd_name].loc)
    ops_of = {forward[n.loc.rsplit("(vjp of ", 1)[1].rstrip(")")].op for n in backward}
    assert {"matmul", "tanh", "pow", "reduce_sum"} <= ops_of
    assert "test_nc_autodiff_api.py" in backward[0].loc  # (the user's file: this one)
