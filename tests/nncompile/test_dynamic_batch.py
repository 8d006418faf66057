"""One compile for every batch size (nc.compile(..., dynamic_batch=...)): compiled results
equal the eager NumPy reference at batch sizes 1, 2, 7, 64 and 257 with a single native
compilation, and what cannot be expressed with one symbolic size fails clearly."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from nncompile.ir.errors import ConfigError, ShapeError
from nncompile.ir.serialize import graph_from_json, graph_to_json
from nncompile.ir.symbolic import SymbolicShapeError

import nncompile as nc
from nncompile import nn, optim, pytree
from nncompile.demo import seed_cnn
from nncompile.nn.fit_data import copied, eager
from nncompile.tracing import is_array_leaf, trace

SIZES = (64, 1, 2, 7, 257)  # the first call's size is the one heuristics assume


def leaves(tree):
    return [np.asarray(a) for a in pytree.flatten(tree, is_array_leaf)[0]]


def assert_trees_close(got, want, rtol=1e-4, atol=1e-5):
    got, want = leaves(got), leaves(want)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def mlp_loss(w1, b1, w2, b2, x, y):
    h = nc.relu(x @ w1 + b1)
    return nc.mean((h @ w2 + b2 - y) ** 2)


def mlp_weights(rng):
    shapes = [(8, 16), (16,), (16, 3), (3,)]
    return [rng.standard_normal(s).astype(np.float32) * 0.5 for s in shapes]


def test_value_and_grad_is_compiled_once_for_every_batch_size():
    rng = np.random.default_rng(0)
    weights = mlp_weights(rng)
    step = nc.value_and_grad(mlp_loss, argnums=(0, 1, 2, 3))
    f = nc.compile(step, dynamic_batch=(4, 5))
    for n in (*SIZES, 3, 4, 5, 6, 64):  # (each few-rows GEMM form; smaller after growing)
        x = rng.standard_normal((n, 8)).astype(np.float32)
        y = rng.standard_normal((n, 3)).astype(np.float32)
        assert_trees_close(f(*weights, x, y), step(*weights, x, y))
    assert f.compile_count == 1


def _model(name: str) -> nn.Sequential:
    if name == "mlp":
        layers = [nn.Dense(32, "relu", input_shape=(20,)), nn.Dense(10, "softmax")]
        return nn.Sequential(layers)
    if name == "cnn":
        return seed_cnn((12, 12, 1))
    return nn.Sequential([nn.LSTM(16, input_shape=(6, 5)), nn.Dense(10, "softmax")])


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm"])
def test_training_step_matches_eager_at_every_batch_size(name):
    """SGD (linear in the gradients), so float rounding is not amplified as by Adam."""
    model = _model(name)
    model.compile(optim.SGD(0.1), "sparse_categorical_crossentropy")
    trainer = model.trainer
    step = nc.compile(trainer._train_fn, dynamic_batch=(4, 5))
    reference = eager(trainer._train_fn)
    rng = np.random.default_rng(1)
    for n in SIZES:
        x = rng.random((n, *model.input_shape)).astype(np.float32)
        args = trainer.step_arguments(x, rng.integers(0, 10, n))
        want = reference(*copied(args))
        assert_trees_close(step(*args), want)
    assert step.compile_count == 1


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm"])
def test_inference_graph_matches_eager_at_every_batch_size(name):
    model = _model(name)
    model.compile(optim.SGD(0.1), "sparse_categorical_crossentropy")
    trainer = model.trainer
    predict = nc.compile(trainer._predict_fn, dynamic_batch=(2,))
    params, state = model.params(), model.state()
    rng = np.random.default_rng(2)
    for n in SIZES:
        x = rng.random((n, *model.input_shape)).astype(np.float32)
        got = predict(params, state, x)
        assert got.shape == (n, 10)
        assert_trees_close(got, trainer._predict_fn(params, state, x).numpy())
    assert predict.compile_count == 1


def test_batch_norm_and_dropout_train_with_a_symbolic_batch():
    layers = [
        nn.Dense(16, input_shape=(6,)),
        nn.BatchNormalization(),
        nn.Dropout(0.3),
        nn.Dense(4, "softmax"),
    ]
    model = nn.Sequential(layers)
    model.compile(optim.SGD(0.1), "sparse_categorical_crossentropy")
    trainer = model.trainer
    step = nc.compile(trainer._train_fn, dynamic_batch=(4, 5))
    rng = np.random.default_rng(3)
    for n in (5, 2, 9):  # (n = 1 has no unbiased variance: PyTorch refuses it too)
        x = rng.random((n, 6)).astype(np.float32)
        args = trainer.step_arguments(x, rng.integers(0, 4, n))
        assert_trees_close(step(*args), eager(trainer._train_fn)(*copied(args)))
    assert step.compile_count == 1


def test_the_numpy_backend_runs_a_dynamic_graph_too():
    rng = np.random.default_rng(4)
    weights = mlp_weights(rng)
    f = nc.compile(mlp_loss, backend="numpy", dynamic_batch={"x": 0, "y": 0})
    for n in (3, 11):
        x, y = rng.random((n, 8)).astype(np.float32), rng.random((n, 3)).astype(np.float32)
        np.testing.assert_allclose(f(*weights, x, y), mlp_loss(*weights, x, y).numpy(), 1e-6)
    assert f.compile_count == 1


# ---- which arguments carry the batch ------------------------------------------------------


def test_dynamic_batch_true_batches_arrays_with_the_first_ones_leading_size():
    def f(x, y, scale, params):
        return nc.sum(x * scale[0], axis=1) + y + nc.sum(params["w"])

    g = nc.compile(f, dynamic_batch=True)
    rng = np.random.default_rng(5)
    params = {"w": np.ones((4, 2), np.float32)}  # a container: never batched
    for n in (4, 9, 1):
        x = rng.random((n, 3)).astype(np.float32)
        y = rng.random(n).astype(np.float32)
        scale = np.full(2, 2.0, np.float32)  # leading size 2, not n: static
        np.testing.assert_allclose(g(x, y, scale, params), f(x, y, scale, params).numpy(), 1e-6)
    # (at n = 2 the scale's leading size equals x's: it is batched too, a second graph)
    assert g.compile_count == 1


def test_dynamic_batch_by_name_and_by_argnum_agree():
    rng = np.random.default_rng(6)
    weights = mlp_weights(rng)
    by_name = nc.compile(mlp_loss, dynamic_batch={"x": 0, "y": 0})
    by_argnum = nc.compile(mlp_loss, dynamic_batch=(-2, -1))
    for n in (2, 5):
        x, y = rng.random((n, 8)).astype(np.float32), rng.random((n, 3)).astype(np.float32)
        np.testing.assert_array_equal(by_name(*weights, x, y), by_argnum(*weights, x, y))
    assert by_name.compile_count == by_argnum.compile_count == 1


@pytest.mark.parametrize(
    "spec, error",
    [
        ({"x": 1}, NotImplementedError),
        ({"x": "0"}, ConfigError),
        ("yes", ConfigError),
        ((1.5,), ConfigError),
    ],
)
def test_bad_specs_are_refused_when_compiling(spec, error):
    with pytest.raises(error):
        nc.compile(mlp_loss, dynamic_batch=spec)


def test_bad_names_and_argnums_are_refused_on_the_call():
    rng = np.random.default_rng(7)
    args = [*mlp_weights(rng), np.ones((2, 8), np.float32), np.ones((2, 3), np.float32)]
    with pytest.raises(ConfigError, match="not parameters"):
        nc.compile(mlp_loss, dynamic_batch={"z": 0})(*args)
    with pytest.raises(ConfigError, match="out of range"):
        nc.compile(mlp_loss, dynamic_batch=(9,))(*args)


def test_batched_inputs_must_agree_on_the_batch_size():
    rng = np.random.default_rng(8)
    f = nc.compile(mlp_loss, dynamic_batch=(4, 5))
    weights = mlp_weights(rng)
    f(*weights, np.ones((3, 8), np.float32), np.ones((3, 3), np.float32))
    with pytest.raises(ShapeError, match=r"input 5 .*\(n, 3\), got \(4, 3\)"):
        f(*weights, np.ones((3, 8), np.float32), np.ones((4, 3), np.float32))
    with pytest.raises(ShapeError):  # an empty batch: n >= 1
        f(*weights, np.ones((0, 8), np.float32), np.ones((0, 3), np.float32))


# ---- what one symbolic size cannot express ------------------------------------------------


def _trace_dynamic(fn, *args):
    return trace(fn, *args, batched_leaves={0})


def test_a_size_that_is_not_affine_in_n_is_an_error_at_the_users_line():
    def gram(x):
        return nc.reshape(x @ x.T, (-1,))  # n * n elements

    with pytest.raises(SymbolicShapeError, match="not affine") as info:
        _trace_dynamic(gram, np.ones((4, 3), np.float32))
    assert "test_dynamic_batch.py" in str(info.value)


def test_slicing_the_batch_axis_is_an_error():
    with pytest.raises(SymbolicShapeError, match="symbolic batch size"):
        _trace_dynamic(lambda x: x[1:] * 2, np.ones((4, 3), np.float32))
    # the whole axis and row 0 are fine
    g = _trace_dynamic(lambda x: x[:, 1] + x[0, 0], np.ones((4, 3), np.float32))
    assert str(g.outputs[0].type) == "float32[n]"


def test_a_constant_sized_by_the_batch_is_an_error():
    with pytest.raises(SymbolicShapeError, match="needs a concrete size"):
        _trace_dynamic(lambda x: x + np.zeros(x.shape, np.float32), np.ones((4, 3), np.float32))


def test_a_mean_over_the_batch_divides_by_the_run_time_size():
    g = _trace_dynamic(lambda x: nc.mean(x, axis=0), np.ones((4, 3), np.float32))
    for n in (1, 6):
        x = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
        np.testing.assert_allclose(nc.run(g, x), x.mean(axis=0), 1e-6)
    grad = nc.compile(nc.grad(lambda x: nc.mean(x)), dynamic_batch=True)
    np.testing.assert_allclose(grad(np.ones((5, 2), np.float32)), np.full((5, 2), 0.1), 1e-6)


# ---- what shows the symbol, and real conditions ---------------------------------------------


def test_the_graph_kernels_and_llvm_source_name_the_batch_size():
    rng = np.random.default_rng(9)
    args = (*mlp_weights(rng), np.ones((4, 8), np.float32), np.ones((4, 3), np.float32))
    lowered = nc.lower(nc.grad(mlp_loss), *args, dynamic_batch=(4, 5))
    assert "float32[n,8]" in str(lowered.graph)
    assert "in n" in lowered.program.text() or "0..n" in lowered.program.text()
    assert '%"n" = load i64' in lowered.source


def test_a_dynamic_graph_round_trips_through_json():
    rng = np.random.default_rng(10)
    args = (*mlp_weights(rng), np.ones((4, 8), np.float32), np.ones((4, 3), np.float32))
    graph = trace(nc.grad(mlp_loss), *args, batched_leaves={4, 5})
    again = graph_from_json(graph_to_json(graph))
    assert str(again) == str(graph)
    x, y = rng.random((6, 8)).astype(np.float32), rng.random((6, 3)).astype(np.float32)
    np.testing.assert_array_equal(nc.run(again, *args[:4], x, y), nc.run(graph, *args[:4], x, y))


def test_threads_calling_with_different_batch_sizes_get_their_own_results():
    rng = np.random.default_rng(11)
    weights = mlp_weights(rng)
    f = nc.compile(mlp_loss, dynamic_batch=(4, 5))
    data = {
        n: (rng.random((n, 8)).astype(np.float32), rng.random((n, 3)).astype(np.float32))
        for n in (1, 33, 200, 7)
    }
    want = {n: mlp_loss(*weights, *xy).numpy() for n, xy in data.items()}
    errors = []

    def work(n):
        for _ in range(30):
            got = f(*weights, *data[n])
            if not np.allclose(got, want[n], rtol=1e-5):
                errors.append((n, got, want[n]))

    threads = [threading.Thread(target=work, args=(n,)) for n in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and f.compile_count == 1


def test_check_mode_compares_every_buffer_at_the_calls_batch_size():
    rng = np.random.default_rng(12)
    weights = mlp_weights(rng)
    f = nc.compile(nc.grad(mlp_loss), dynamic_batch=(4, 5), check=True)
    for n in (3, 10):
        x, y = rng.random((n, 8)).astype(np.float32), rng.random((n, 3)).astype(np.float32)
        np.testing.assert_allclose(f(*weights, x, y), nc.grad(mlp_loss)(*weights, x, y), 1e-4)


@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_bounds_checked_code_stays_in_bounds_at_every_batch_size(monkeypatch, name):
    """Generated code checking every index (and lowering verifying every kernel) at sizes
    around the chunk and slot counts: no access leaves its buffer."""
    monkeypatch.setenv("NNCOMPILE_BOUNDS_CHECK", "1")
    monkeypatch.setenv("NNCOMPILE_VERIFY", "1")
    model = _model(name)
    model.compile(optim.SGD(0.1), "sparse_categorical_crossentropy")
    trainer = model.trainer
    step = nc.compile(trainer._train_fn, dynamic_batch=(4, 5))
    rng = np.random.default_rng(13)
    for n in (9, 1, 17, 3):
        x = rng.random((n, *model.input_shape)).astype(np.float32)
        args = trainer.step_arguments(x, rng.integers(0, 10, n))
        assert_trees_close(step(*args), eager(trainer._train_fn)(*copied(args)))


def test_a_batch_times_a_weight_takes_its_form_by_row_count_at_run_time():
    """One row, register tiles for a few rows, the packed GEMM for many: each equals NumPy."""
    rng = np.random.default_rng(14)
    w = rng.standard_normal((300, 24)).astype(np.float32)
    f = nc.compile(lambda x, w: x @ w, dynamic_batch=(0,))
    x3 = np.zeros((3, 300), np.float32)
    assert "rows1" in nc.lower(lambda x, w: x @ w, x3, w, dynamic_batch=(0,)).source
    for n in range(1, 10):
        x = rng.standard_normal((n, 300)).astype(np.float32)
        np.testing.assert_allclose(f(x, w), x.astype(np.float64) @ w, rtol=1e-4, atol=1e-4)
    assert f.compile_count == 1
