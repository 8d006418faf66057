"""nc.trace + nc.run: the traced graph, run on the reference interpreter, equals the eager
result exactly; argument and result structures; static arguments; tracing misuse."""

import numpy as np
import pytest

import nncompile as nc

RNG = np.random.default_rng(1)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def f64(*shape):
    return RNG.standard_normal(shape)


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for c in tree for leaf in _leaves(c)]
    if isinstance(tree, dict):
        return [leaf for k in tree for leaf in _leaves(tree[k])]
    return [tree]


def assert_same_structure(got, want):
    """Same nesting of tuples/lists/dicts (containers of the same type) with equal leaves."""
    assert type(got) is type(want) or not isinstance(want, (tuple, list, dict)), (got, want)
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same_structure(g, w)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            assert_same_structure(got[k], want[k])
    else:
        assert isinstance(got, np.ndarray), type(got)
        w = np.asarray(want)
        assert got.dtype == w.dtype, (got.dtype, w.dtype)
        assert got.shape == w.shape, (got.shape, w.shape)
        assert np.array_equal(got, w, equal_nan=got.dtype.kind == "f"), (got, w)


def check_traced_equals_eager(fn, *args):
    eager = fn(*args)
    for leaf in _leaves(eager):
        assert isinstance(leaf, nc.Tensor), type(leaf)
        assert not leaf.is_traced
    g = nc.trace(fn, *args)
    assert isinstance(g, nc.ir.Graph)
    g.verify()
    assert_same_structure(nc.run(g, *args), eager)
    return g


# ---- traced == eager, exactly -------------------------------------------------------------


def elementwise_chain(x, y):
    x = nc.asarray(x)
    z = nc.tanh(x) * nc.exp(-nc.abs(y)) + nc.sqrt(nc.abs(x)) / (1 + nc.sigmoid(y))
    z = z - x**2 + 0.5 * nc.maximum(x, y) - nc.minimum(x, 0.25) + nc.sign(y)
    z = nc.where(z > 0, z, nc.log(nc.abs(z) + 1e-3)) + nc.clip(y, -0.5, 0.5)
    return nc.relu(z) + nc.erf(x) - nc.reciprocal(nc.abs(y) + 1)


def reductions(x):
    x = nc.asarray(x)
    return (
        x.sum(),
        x.sum(axis=1),
        nc.sum(x, axis=(0, 2), keepdims=True),
        x.mean(axis=-1),
        nc.mean(x),
        x.max(axis=0),
        nc.max(x, axis=(1, 2), keepdims=True),
        x.min(),
        nc.min(x, axis=1),
        x.argmax(axis=2),
        nc.argmin(x, axis=0),
        x.argmax(),
    )


def mlp(x, w1, b1, w2, b2, labels):
    h = nc.relu(x @ w1 + b1)
    logits = h @ w2 + b2
    return nc.cross_entropy(logits, labels), nc.softmax(logits)


def cnn(x, w1, b1, w2, b2, wd, bd):
    h = nc.relu(nc.conv2d(x, w1, b1, padding=1))
    h = nc.max_pool2d(h, 2)
    h = nc.relu(nc.conv2d(h, w2, b2, stride=1, padding="valid"))
    h = nc.avg_pool2d(h, 2, stride=1)
    h = h.reshape(h.shape[0], -1)
    return nc.log_softmax(h @ wd + bd, axis=1)


def indexing(x):
    x = nc.asarray(x)
    return [
        x[1],
        x[-1, ::-1],
        x[:, 1:3, ::2],
        x[None, ..., 0],
        x[..., None],
        x[:, [2, 0, 1]],
        x[[1, 0]],
        x[::-1, -2:, 3:0:-2],
        x[0, 1, 2],
    ]


def movement(x, y, idx, labels):
    x = nc.asarray(x)
    return {
        "concat": nc.concatenate([x, y], axis=1),
        "concat0": nc.concatenate([x, x, y]),
        "stack": nc.stack([x, y], axis=-1),
        "stack0": nc.stack([x, y]),
        "pad": nc.pad(x, ((1, 0), (2, 1))),
        "pad_value": nc.pad(x, 1, constant_values=-2.5),
        "pad_reflect": nc.pad(x, ((1, 1), (2, 2)), mode="reflect"),
        "pad_edge": nc.pad(x, ((0, 2), (1, 0)), mode="edge"),
        "take": nc.take(x, idx, axis=1),
        "take_flat": nc.take(x, idx),
        "take_along": nc.take_along_axis(x, labels.reshape(-1, 1), axis=1),
        "one_hot": nc.one_hot(labels, 5),
        "one_hot_f64": nc.one_hot(labels, 5, dtype=np.float64),
        "where": nc.where(x > y, x, y),
        "where_scalar": nc.where(x > 0, x, 0.0),
        "transpose": x.T,
        "broadcast": nc.broadcast_to(y[0], (3, 3, 5)),
        "expand_squeeze": nc.squeeze(nc.expand_dims(x, 1), 1),
        "zeros_ones": nc.zeros_like(x) + nc.ones_like(y, dtype=np.float32),
    }


def comparisons_and_logic(x, y):
    x = nc.asarray(x)
    a, b = x > 0, y < 0.5
    return (a & b, a | b, a ^ b, ~a, x == y, x != y, x <= y, x >= 0, nc.logical_not(b))


def integer_arith(i, j):
    i = nc.asarray(i)
    return (
        i + 1,
        i * j,
        i - 3,
        nc.trunc_divide(i, j),
        i / j,
        i**2,
        nc.maximum(i, j),
        i.sum(axis=0),
        nc.abs(i),
        -i,
        i + 0.5,
        i.astype(np.float32),
    )


NP_W = f32(5, 3)
NP_B = f32(1, 4)


def numpy_on_the_left(x):
    # NumPy arrays on the left of operators defer to the Tensor (and become constants).
    x = nc.asarray(x)
    return (NP_W @ x) * NP_B + NP_B - x[:1] / (NP_B + 3.0), NP_B > x


CASES = {
    "numpy_left": (numpy_on_the_left, (f32(3, 4),)),
    "elementwise_f32": (elementwise_chain, (f32(3, 4), f32(3, 4))),
    "elementwise_f64": (elementwise_chain, (f64(3, 4), f64(1, 4))),
    "reductions": (reductions, (f32(2, 3, 4),)),
    "reductions_f64": (reductions, (f64(2, 3, 4),)),
    "reductions_int": (reductions, (RNG.integers(-9, 9, (2, 3, 4)).astype(np.int32),)),
    "mlp": (
        mlp,
        (
            f32(6, 8),
            f32(8, 16),
            f32(16),
            f32(16, 4),
            f32(4),
            RNG.integers(0, 4, 6),
        ),
    ),
    "cnn": (
        cnn,
        (
            f32(2, 1, 8, 8),
            f32(4, 1, 3, 3),
            f32(4),
            f32(6, 4, 2, 2),
            f32(6),
            f32(6 * 2 * 2, 10),
            f32(10),
        ),
    ),
    "indexing": (indexing, (f32(3, 4, 5),)),
    "movement": (movement, (f32(3, 5), f32(3, 5), np.array([4, 0, -1, 2]), np.array([0, 4, 2]))),
    "logic": (comparisons_and_logic, (f32(3, 4), f32(3, 4))),
    "integer": (
        integer_arith,
        (
            RNG.integers(-20, 20, (3, 4)).astype(np.int32),
            RNG.integers(1, 5, (3, 4)).astype(np.int32),
        ),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_traced_run_equals_eager(name):
    fn, args = CASES[name]
    check_traced_equals_eager(fn, *args)


def test_trace_accepts_tensor_examples():
    x = nc.asarray(f32(3, 4))
    g = check_traced_equals_eager(lambda a: nc.relu(a) * 2, x)
    assert len(g.inputs) == 1


def test_graph_has_inputs_outputs_and_prints():
    def f(x, w):
        return nc.relu(x @ w).sum()

    x, w = f32(3, 4), f32(4, 2)
    g = nc.trace(f, x, w)
    assert len(g.inputs) == 2
    assert [v.shape for v in g.inputs] == [(3, 4), (4, 2)]
    assert len(g.outputs) == 1
    text = str(g)
    assert "matmul" in text and "relu" in text
    out = nc.run(g, x, w)
    assert isinstance(out, np.ndarray)
    assert out.shape == ()
    assert out == np.asarray(f(x, w))


def test_graph_json_round_trip_runs_the_same():
    fn, args = CASES["cnn"]
    g = nc.trace(fn, *args)
    g2 = nc.ir.Graph.from_json(g.to_json())
    np.testing.assert_array_equal(nc.run(g2, *args), nc.run(g, *args))


def test_run_does_not_alias_inputs():
    x = f32(3)
    g = nc.trace(lambda a: a, x)
    out = nc.run(g, x)
    out[0] = 123.0
    assert x[0] != 123.0


# ---- structures ---------------------------------------------------------------------------


def test_nested_input_and_output_structures():
    def f(params, batch):
        (w1, b1), layer2 = params
        h = nc.relu(batch["x"] @ w1 + b1)
        y = h @ layer2["w"]
        return {"y": y, "aux": [h.sum(), (y.mean(), h)], "same": nc.asarray(batch["t"]) * 1.0}

    params = ((f32(3, 4), f32(4)), {"w": f32(4, 2)})
    batch = {"x": f32(5, 3), "t": f64(5)}
    g = check_traced_equals_eager(f, params, batch)
    assert len(g.inputs) == 5
    out = nc.run(g, params, batch)
    assert isinstance(out, dict)
    assert isinstance(out["aux"], list)
    assert isinstance(out["aux"][1], tuple)


def test_multiple_outputs_as_tuple():
    x = f32(4)
    g = nc.trace(lambda a: (nc.exp(a), nc.negative(a)), x)
    out = nc.run(g, x)
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_array_equal(out[1], -x)


def test_python_scalar_arguments_are_static():
    def f(x, scale, shift):
        return x * scale + shift

    x = f32(2, 3)
    g = nc.trace(f, x, 2.5, 1)
    assert len(g.inputs) == 1
    want = np.asarray(f(nc.asarray(x), 2.5, 1))
    np.testing.assert_array_equal(nc.run(g, x, 2.5, 1), want)
    # Static arguments are baked in: run may leave them out.
    np.testing.assert_array_equal(nc.run(g, x), want)
    assert nc.run(g, x).dtype == np.float32


def test_non_array_arguments_are_static():
    class Config:
        slope = 0.25

    def f(x, mode, cfg, flag):
        x = nc.asarray(x)
        y = nc.relu(x) if mode == "relu" else nc.tanh(x)
        y = y * cfg.slope
        return -y if flag else y

    x = f32(3, 4)
    cfg = Config()
    for mode in ("relu", "tanh"):
        g = nc.trace(f, x, mode, cfg, True)
        assert len(g.inputs) == 1
        want = np.asarray(f(x, mode, cfg, True))
        np.testing.assert_array_equal(nc.run(g, x, mode, cfg, True), want)
        np.testing.assert_array_equal(nc.run(g, x), want)
        assert ("relu" in str(g)) == (mode == "relu")


def test_python_number_returned_becomes_constant_output():
    x = f32(3)
    g = nc.trace(lambda a: (nc.exp(a), 1.5), x)
    out = nc.run(g, x)
    np.testing.assert_array_equal(out[0], np.asarray(nc.exp(x)))
    assert float(out[1]) == 1.5


def test_closed_over_arrays_become_constants():
    w = f32(4, 2)

    def f(x):
        return x @ w

    x = f32(3, 4)
    g = check_traced_equals_eager(f, nc.asarray(x))
    assert len(g.inputs) == 1
    assert "constant" in str(g)


# ---- misuse while tracing -----------------------------------------------------------------


@pytest.mark.parametrize(
    "convert",
    [
        np.asarray,
        np.array,
        bool,
        float,
        int,
        lambda t: t.numpy(),
        lambda t: t.item(),
        lambda t: t.tolist(),
        lambda t: 1 if t else 0,
        lambda t: [0, 1, 2][t.astype(np.int64)],
    ],
)
def test_traced_values_cannot_become_numpy(convert):
    def f(x):
        s = x.sum()
        convert(s)
        return s

    with pytest.raises(nc.TraceError):
        nc.trace(f, f32(3))


def test_python_if_on_traced_comparison_raises():
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(nc.TraceError) as info:
        nc.trace(f, f32(3))
    assert isinstance(info.value, nc.NCError)


def test_leaked_traced_tensor_raises_after_trace():
    leaked = []

    def f(x):
        y = nc.exp(x)
        leaked.append(y)
        return y

    x = f32(3)
    nc.trace(f, x)
    (t,) = leaked
    assert t.is_traced
    with pytest.raises(nc.TraceError):
        t + 1.0
    with pytest.raises(nc.TraceError):
        nc.exp(t)
    with pytest.raises(nc.TraceError):
        np.asarray(t)
    with pytest.raises(nc.TraceError):
        nc.trace(lambda a: a + t, x)


def test_leaked_traced_tensor_errors_say_it_escaped_not_use_where():
    leaked = []
    nc.trace(lambda x: leaked.append(x * 2) or x, f32(2, 3))
    (t,) = leaked
    for use in (
        lambda: np.asarray(t),
        lambda: float(t.sum()),
        lambda: np.dot(t, f32(3, 2)),
        lambda: np.concatenate([t, t]),
        lambda: np.sin(t),
    ):
        with pytest.raises(nc.TraceError, match="escaped from a finished trace") as info:
            use()
        assert "nc.where" not in str(info.value)


# ---- NumPy functions on Tensors -----------------------------------------------------------


def numpy_written(x, w):
    """A function written with NumPy's names: each has an nc equivalent."""
    h = np.maximum(np.dot(x, w), 0.0)
    both = np.concatenate([h, np.exp(-h)], axis=1)
    stacked = np.stack([np.sum(both, axis=0), np.mean(both, axis=0)])
    picked = np.where(both > 0.5, both, np.zeros_like(both))
    return {
        "sum": np.sum(stacked) + np.max(picked) - np.min(np.abs(picked)),
        "reshaped": np.transpose(np.reshape(both, (-1, 2))),
        "clipped": np.clip(np.sqrt(both), 0.1, 0.9),
        "argmax": np.argmax(both, axis=1),
    }


def test_numpy_functions_on_traced_tensors_run_their_nc_ops():
    x, w = f32(4, 3), f32(3, 5)

    def f(x, w):
        out = numpy_written(x, w)
        out["matmul"] = np.matmul(np.ones((5, 3), np.float32), np.transpose(x))  # ufunc
        out["shape"] = np.sum(x) * np.size(x) * np.ndim(x) * np.shape(x)[0]
        assert np.result_type(x, np.float64) == np.float64  # metadata works while tracing
        mask = np.array([True, False, True])
        out["masked"] = np.where(mask & (x > 0.5) | ~mask, x, 0.0)  # array & traced
        return out

    want = f(x, w)  # NumPy itself
    g = nc.trace(f, x, w)
    assert "concat" in g.op_counts() and "matmul" in g.op_counts()
    got = nc.run(g, x, w)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_numpy_functions_on_eager_tensors_give_the_same_tensors():
    x, w = f32(4, 3), f32(3, 5)
    got = numpy_written(nc.tensor(x), nc.tensor(w))
    want = numpy_written(x, w)
    for key in ("sum", "reshaped", "clipped", "argmax"):
        assert isinstance(got[key], nc.Tensor), key
        np.testing.assert_allclose(got[key].numpy(), want[key], rtol=1e-5, atol=1e-6)
    # no nc equivalent (or an argument it does not take): NumPy computes
    t = nc.tensor(x)
    np.testing.assert_allclose(np.sin(t), np.sin(x))
    assert np.sum(t, dtype=np.float64) == pytest.approx(x.sum(dtype=np.float64))
    assert np.linalg.norm(t) == pytest.approx(np.linalg.norm(x))


@pytest.mark.parametrize(
    "use, names",
    [
        (lambda t: np.sum(t, dtype=np.float64), ["np.sum", "dtype", "nc.sum"]),
        (lambda t: np.sin(t), ["np.sin", "nc.sum, nc.matmul, nc.concatenate"]),
        (lambda t: np.linalg.norm(t), ["np.linalg.norm", "nc ops"]),
        (lambda t: np.add.reduce(t), ["np.add.reduce", "nc.sum"]),
        (lambda t: np.dot(t, np.ones((2, 3, 2), np.float32)), ["np.dot", "nc.matmul"]),
        (lambda t: np.where(t > 0), ["np.where", "nc.where"]),
        (lambda t: np.asarray(t), ["np.asarray()", "nc ops", "np.sum, np.dot"]),
    ],
)
def test_numpy_without_an_nc_equivalent_names_the_function_and_the_alternative(use, names):
    with pytest.raises(nc.TraceError) as info:
        nc.trace(lambda t: use(t) + 0 or t, f32(2, 3))
    message = str(info.value)
    for name in names:
        assert name in message
    assert "out'" not in message and "nc.where instead" not in message
    assert "test_nc_trace.py" in message  # the user's line


def test_numpy_in_place_ops_on_arrays_with_traced_values():
    def f(x):
        acc = np.zeros(3, np.float32)
        acc += x
        return acc

    with pytest.raises(nc.TraceError, match=r"np.add\(\.\.\., out=\.\.\.\).*x = x \+ y"):
        nc.trace(f, f32(3))
    a = np.zeros(3, np.float32)
    a += nc.tensor(np.ones(3, np.float32))  # eager: NumPy's in-place add
    np.testing.assert_array_equal(a, np.ones(3))


# ---- nc.run input checks ------------------------------------------------------------------


def test_run_rejects_wrong_shape_and_dtype():
    x = f32(2, 3)
    g = nc.trace(lambda a, b: a + b, x, x)
    with pytest.raises(nc.ShapeError):
        nc.run(g, f32(2, 4), x)
    with pytest.raises(nc.ShapeError):
        nc.run(g, x, f32(3))
    with pytest.raises(nc.DTypeError):
        nc.run(g, x.astype(np.float64), x)
    with pytest.raises(nc.DTypeError):
        nc.run(g, x, x.astype(np.int32))
    with pytest.raises(nc.NCError):
        nc.run(g, x)
