"""Deep graphs compile (issue #13): long fused chains, wide concats and RNNs unrolled over
hundreds of steps lower without recursion on their depth, in time about linear in it,
and match eager execution."""

import numpy as np
import pytest
from nncompile.ir import dtypes as dt
from nncompile.ir.kernel import (
    INDEX,
    MAX_DEPTH,
    Assign,
    Binary,
    Const,
    Kernel,
    Let,
    Load,
    Local,
    Loop,
    Store,
    Var,
    postorder,
)
from nncompile.ir.kernel_depth import bound_depth, max_depth
from nncompile.ir.kernel_printer import format_expr, format_kernel

import nncompile as nc
from nncompile import nn
from nncompile.passes import optimize
from nncompile.passes.concat_tree import MAX_CONCAT_INPUTS


@pytest.fixture(autouse=True)
def cold_cache(tmp_path, monkeypatch):
    """Every compile here is cold: the on-disk object cache starts empty."""
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path / "cache"))


def affine_chain(n):
    def f(x):
        for _ in range(n):
            x = x * 0.5 + 0.25
        return x

    return f


def test_a_2000_op_elementwise_chain_compiles_and_matches_eager():
    f = affine_chain(1000)  # 2000 ops, one fused loop nest per 256 of them
    x = np.linspace(-3, 3, 301, dtype=np.float32)
    np.testing.assert_allclose(nc.compile(f)(x), np.asarray(f(x)), rtol=1e-6, atol=1e-6)


def test_no_kernel_expression_is_deeper_than_max_depth():
    f = affine_chain(1000)
    lowered = nc.lower(f, np.ones(64, np.float32))
    depths = [max_depth(k) for k in lowered.program.kernels]
    assert max(depths) <= MAX_DEPTH
    assert len(lowered.program.kernels) >= 2000 // 256  # fusion groups are capped


def test_kernel_printer_and_cuda_emitter_handle_a_deep_chain():
    f = affine_chain(1000)
    lowered = nc.lower(f, np.ones(64, np.float32), backend="cuda")  # no GPU needed
    assert "__global__" in lowered.source
    assert "let " in lowered.program.text()  # deep subexpressions are let-bound


def test_gradient_of_a_deep_chain():
    f = affine_chain(600)

    def loss(x):
        return nc.sum(f(x) * x)

    x = np.linspace(-1, 1, 17, dtype=np.float32)
    want = np.asarray(nc.grad(loss)(x))
    np.testing.assert_allclose(nc.compile(nc.grad(loss))(x), want, rtol=1e-5, atol=1e-6)


def test_a_deep_chain_feeding_a_reduction_and_updated_in_place():
    def f(x, w):
        y = x
        for _ in range(150):
            y = nc.tanh(y) * w + 0.1
        return y, nc.sum(y, axis=1)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 40)).astype(np.float32)
    w = rng.normal(size=(40,)).astype(np.float32)
    want = [np.asarray(v) for v in f(x, w)]
    got = nc.compile(f, donate_argnums=(0,))(x.copy(), w)  # y may overwrite x in place
    for g, e in zip(got, want, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_a_1000_way_concatenate_compiles_and_matches_eager():
    xs = [np.full((2, 3), i, np.float32) + np.arange(3, dtype=np.float32) for i in range(1000)]
    f = lambda xs: nc.concatenate(xs, axis=1)  # noqa: E731
    np.testing.assert_array_equal(nc.compile(f)(xs), np.concatenate(xs, axis=1))
    graph = optimize(nc.trace(f, xs))
    widths = [len(n.inputs) for n in graph.nodes if n.op == "concat"]
    assert max(widths) <= MAX_CONCAT_INPUTS and sum(widths) >= 1000


def test_chains_of_reshapes_and_transposes():
    def f(x):
        for _ in range(150):
            x = nc.transpose(nc.reshape(x, (6, 4)), (1, 0)) * 1.001
            x = nc.reshape(x, (3, 8))
        return x

    def g(x):
        for _ in range(150):
            x = nc.concatenate([x[1:], x[:1]], axis=0) + 0.5
        return x

    x = np.arange(24, dtype=np.float32).reshape(3, 8)
    for fn in (f, g):
        np.testing.assert_allclose(nc.compile(fn)(x), np.asarray(fn(x)), rtol=1e-5)


def test_repeated_squaring_is_a_dag_not_an_exponential_tree():
    def f(x):
        for _ in range(60):
            x = x * x
        return x, nc.sum(x, axis=0)

    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    assert "__global__" in nc.lower(f, x, backend="cuda").source
    got, want = nc.compile(f)(x), f(x)
    for g, e in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, np.asarray(e))


def recurrent(cell, steps, units=16, features=4, batch=3):
    model = nn.Sequential([cell(units, input_shape=(steps, features))])
    state = model.state()
    x = np.random.default_rng(0).normal(size=(batch, steps, features)).astype(np.float32)
    return (lambda p, x: model.apply(p, state, x)[0]), model.params(), x


@pytest.mark.parametrize("cell", [nn.SimpleRNN, nn.LSTM])
def test_recurrent_layers_over_400_steps_compile_and_match_eager(cell):
    f, params, x = recurrent(cell, 400)
    compiled = nc.compile(f)
    np.testing.assert_allclose(compiled(params, x), np.asarray(f(params, x)), atol=2e-5)
    lowered, _, _ = compiled.compiled_for(params, x)
    # The steps differ only in where they read the input projection: one function each.
    assert lowered.source.count("\ndefine ") < 40


def test_simple_rnn_gradient_over_400_steps():
    f, params, x = recurrent(nn.SimpleRNN, 400, units=8)

    def loss(p, x):
        return nc.sum(nc.square(f(p, x)))

    step = nc.value_and_grad(loss)
    got_loss, got = nc.compile(step)(params, x)
    want_loss, want = step(params, x)
    np.testing.assert_allclose(got_loss, np.asarray(want_loss), rtol=1e-4)
    for name, g in got["simple_rnn"].items():
        np.testing.assert_allclose(g, np.asarray(want["simple_rnn"][name]), rtol=1e-3, atol=1e-4)


# ---- the kernel IR itself -------------------------------------------------------------------


def chain_expr(n, leaf):
    e, half = leaf, Const(0.5, dt.float32)
    for _ in range(n):
        e = Binary("add", Binary("mul", e, half, dt.float32), leaf, dt.float32)
    return e


def test_deep_expressions_hash_compare_and_print_without_recursion():
    leaf = Load("x", Var("i", INDEX), dt.float32)
    a, b = chain_expr(20000, leaf), chain_expr(20000, leaf)
    assert a is not b and a == b and hash(a) == hash(b) and a != chain_expr(19999, leaf)
    text = format_expr(a)  # the leaf, used at every level, is printed once and named
    assert text.count("{$0: x[i]}") == 1 and text.count("$0") == 20001
    assert len(list(postorder([a]))) == 2 * 20000 + 3  # the leaf, its index and 0.5 once


def test_bound_depth_keeps_sharing_accumulations_and_order():
    i = Var("i", INDEX)
    deep = chain_expr(100, Load("x", i, dt.float32))
    acc = Var("acc", dt.float32)
    body = [
        Store("y", i, deep),  # y may be x's memory (donated): z must read x first
        Store("z", i, Binary("add", deep, Const(1.0, dt.float32), dt.float32)),
        Assign("acc", Binary("add", acc, deep, dt.float32)),
    ]
    kernel = Kernel("k", [], [Local("acc", dt.float32, Const(0.0, dt.float32)), Loop("i", 8, body)])
    out = bound_depth(kernel)
    assert max_depth(out) <= MAX_DEPTH < max_depth(kernel)
    loop = out.body[1]
    stores = [s for s in loop.body if isinstance(s, Store)]
    lets = [s for s in loop.body if isinstance(s, Let)]
    assert loop.body.index(stores[0]) > max(loop.body.index(s) for s in lets)  # before use
    assert stores[0].value is stores[1].value.a  # one shared expression, computed once
    accumulate = loop.body[-1]
    assert isinstance(accumulate, Assign) and isinstance(accumulate.value, Binary)
    assert accumulate.value.a == acc  # the accumulation stays an expression
    assert "let b1 = " in format_kernel(out)


def test_an_error_in_a_late_kernel_of_a_long_program_stops_it():
    def f(h, w, i):
        for _ in range(300):  # a kernel each: the entry calls them in parts
            h = nc.tanh(h @ w)
        bad = nc.take(h, i, axis=1)
        return bad @ w[:2], h

    rng = np.random.default_rng(0)
    h, w = rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(4, 4)).astype(np.float32)
    compiled = nc.compile(f)
    lowered, _, _ = compiled.compiled_for(h, w, np.array([0, 1]))
    assert lowered.source.count("nc_entry.run.part") > 2
    got, want = compiled(h, w, np.array([0, 3]))[1], np.asarray(f(h, w, [0, 3])[1])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(nc.ExecutionError, match="out of range"):
        compiled(h, w, np.array([0, 7]))
