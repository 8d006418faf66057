"""The CUDA backend on a real GPU: every primitive and gradient case against the NumPy
reference, device-resident arrays and donation, errors, and the seed CNN trained for five
steps against the reference. Without a GPU they run on the CPU emulation of the
generated CUDA C (see conftest.py)."""

from __future__ import annotations

import importlib
import pathlib
import sys
import types

import numpy as np
import pytest

import nncompile as nc
from nncompile import optim

TESTS = pathlib.Path(__file__).resolve().parents[1]


def _backend_tests(name: str):
    """A module of tests/backends (the op cases are shared with the CPU tests)."""
    for package, path in (("tests", TESTS), ("tests.backends", TESTS / "backends")):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(path)]
            sys.modules[package] = module
    return importlib.import_module(f"tests.backends.{name}")


S = _backend_tests("llvm_support")
CASES = _backend_tests("test_llvm_ops").CASES


def gpu_tolerance(tol):
    """CUDA's math library and FMA contraction differ from libm / LLVM in the last bits."""

    def widen(t):
        if t == "exact":
            return "exact"
        if t in ("arith", "math"):
            return (1e-5, 1e-6)
        return t

    # looked up when checked: some cases add entries to their dict while being traced
    return lambda name: widen(S.tol_for(name, tol))


@pytest.mark.parametrize("key", sorted(CASES))
def test_op_matches_reference_on_gpu(key):
    fn, args, tol = CASES[key]()
    S.check(fn, *args, tol=gpu_tolerance(tol), compiled=nc.compile(fn, backend="cuda"))


def test_device_arrays_stay_on_the_device_and_donation_updates_in_place():
    from nncompile.backends.cuda.executable import DeviceArray

    def step(w, x):
        return w - 0.5 * x, (w * x).sum()

    w = np.arange(6, dtype=np.float32)
    x = np.ones(6, np.float32)
    f = nc.compile(step, backend="cuda", donate_argnums=(0,), device_outputs=True)
    dw = DeviceArray.from_numpy(w)
    for _ in range(3):
        dw, total = f(dw, x)
        assert isinstance(dw, DeviceArray)
    np.testing.assert_allclose(dw.numpy(), w - 1.5)
    np.testing.assert_allclose(np.asarray(total), ((w - 1.0) * x).sum())


def test_numpy_donated_inputs_are_written_back_like_on_the_cpu():
    f = nc.compile(lambda w: w * 2.0, backend="cuda", donate_argnums=(0,))
    w = np.arange(4, dtype=np.float32)
    out = f(w)
    assert out is w
    np.testing.assert_array_equal(w, [0, 2, 4, 6])


def test_bad_inputs_and_data_errors():
    x = np.arange(6, dtype=np.float32)
    exe = nc.lower(lambda x, i: nc.take(x, i, axis=0), x, np.array([0]), backend="cuda").compile()
    with pytest.raises(nc.DTypeError, match="float32"):
        exe([x.astype(np.float64), np.array([0])])
    with pytest.raises(nc.ShapeError, match="shape"):
        exe([x[:5], np.array([0])])
    with pytest.raises(nc.ExecutionError, match="out of range"):
        exe([x, np.array([7])])
    np.testing.assert_array_equal(exe([x, np.array([-1])])[0], [5])
    f = nc.compile(lambda x, i: nc.take(x, i, axis=0), backend="cuda")
    np.testing.assert_array_equal(f(x, np.array([5, -1])), [5, 5])
    wide = f(x.astype(np.float64), np.array([2]))  # another dtype: compiled anew
    assert wide.dtype == np.float64 and wide.tolist() == [2.0]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_seed_cnn_trains_like_the_reference_for_five_steps(optimizer):
    """Five training steps against the reference interpreter. Parameters are compared
    after SGD steps (within 1e-4 of each array's scale); Adam divides by sqrt(v) + eps,
    which turns float32 rounding of near-zero gradients into visible parameter
    differences (as on the CPU, test_llvm_training.py), so with Adam the losses are."""
    params, loss, x = S.graph_sizes().cnn()
    y = np.random.default_rng(1).integers(0, 10, x.shape[0])
    opt = optim.SGD(0.05, momentum=0.9) if optimizer == "sgd" else optim.Adam(1e-3)
    step = nc.train_step(loss, opt)
    gpu = nc.compile(step, backend="cuda")
    ref = nc.compile(step, backend="numpy")
    p_gpu, s_gpu = params, opt.init(params)
    p_ref, s_ref = params, opt.init(params)
    lr = np.float32(opt.lr)
    losses = []
    for _ in range(5):
        p_gpu, s_gpu, loss_gpu, _ = gpu(p_gpu, s_gpu, x, y, lr)
        p_ref, s_ref, loss_ref, _ = ref(p_ref, s_ref, x, y, lr)
        np.testing.assert_allclose(loss_gpu, loss_ref, rtol=1e-4)
        losses.append(float(loss_ref))
    assert losses[-1] < losses[0]
    if optimizer == "sgd":
        for name in p_ref:
            want = np.asarray(p_ref[name])
            scale = float(np.abs(want).max())
            np.testing.assert_allclose(p_gpu[name], want, rtol=0, atol=1e-4 * scale, err_msg=name)


def test_keras_model_fits_on_the_gpu():
    from nncompile import nn

    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1), dtype=np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    model = nn.Sequential(
        [
            nn.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
            nn.Flatten(),
            nn.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optim.Adam(1e-2), "sparse_categorical_crossentropy", ["accuracy"], backend="cuda")
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_keras_fit_keeps_state_on_the_device_and_matches_the_cpu():
    """fit on the GPU holds parameters and optimizer state as DeviceArrays during an epoch
    and ends with the weights a CPU fit gets (SGD with momentum, no shuffling)."""
    from nncompile import nn

    rng = np.random.default_rng(0)
    x = rng.random((48, 6, 6, 1), dtype=np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    weights = {}
    for backend in ("cuda", "llvm"):
        model = nn.Sequential(
            [
                nn.Conv2D(3, 3, activation="relu", input_shape=(6, 6, 1)),
                nn.MaxPooling2D(2),
                nn.Flatten(),
                nn.Dense(2, activation="softmax"),
            ],
            seed=3,
        )
        model.compile(
            optim.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy", backend=backend
        )
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        weights[backend] = model.get_weights()
        if backend == "cuda":
            from nncompile.backends.cuda.executable import DeviceArray

            assert model.trainer.function("train").device_outputs
            assert all(isinstance(w, np.ndarray) for w in weights[backend])
            assert not any(isinstance(w, DeviceArray) for w in weights[backend])
    for got, want in zip(weights["cuda"], weights["llvm"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_donated_state_read_after_its_update_sees_the_old_value():
    """Bug found under emulation: with the momentum buffer donated, the update
    ``p - lr * (m * buf + g)`` re-read ``buf`` after ``buf = m * buf + g`` had been stored
    over it. A shared expression is now computed once for every statement using it."""

    def loss(p, x, y):
        return ((x @ p["w"] + p["b"] - y) ** 2).mean()

    x = np.random.default_rng(0).random((16, 5), dtype=np.float32)
    y = np.ascontiguousarray(x[:, :3])
    opt = optim.SGD(0.1, momentum=0.9)
    step = nc.train_step(loss, opt)
    results = {}
    for backend in ("cuda", "numpy"):
        p = {"w": np.ones((5, 3), np.float32), "b": np.zeros(3, np.float32)}
        f = nc.compile(step, backend=backend, donate_argnums=(0, 1))
        state = opt.init(p)
        for _ in range(2):
            p, state, _, _ = f(p, state, x, y, np.float32(0.1))
        results[backend] = p
    for name in ("w", "b"):
        np.testing.assert_allclose(results["cuda"][name], results["numpy"][name], rtol=1e-5)


def test_check_mode_runs_with_the_cuda_backend():
    """check=True compares every buffer the CUDA kernels store with the reference."""
    x = np.random.default_rng(0).standard_normal((6, 40)).astype(np.float32)
    f = nc.compile(
        lambda x: nc.softmax(x @ nc.transpose(x), axis=-1).sum(0), backend="cuda", check=True
    )
    e = np.exp((x @ x.T) - (x @ x.T).max(-1, keepdims=True))
    np.testing.assert_allclose(f(x), (e / e.sum(-1, keepdims=True)).sum(0), rtol=1e-4)
    from nncompile.checking import Checker

    assert isinstance(f.compiled_for(x)[1], Checker)


def test_check_mode_on_cuda_names_a_divergent_kernel(monkeypatch):
    """The CUDA executable runs kernel by kernel and the checker reads each one's buffers:
    a reference that disagrees (here: made wrong on purpose) is reported."""
    from nncompile import checking

    real = checking.evaluate_graph

    def wrong(graph, arrays):
        env = real(graph, arrays)
        return {k: v + 1 if k not in map(id, graph.inputs) else v for k, v in env.items()}

    monkeypatch.setattr(checking, "evaluate_graph", wrong)
    x = np.random.default_rng(0).standard_normal((6, 40)).astype(np.float32)
    f = nc.compile(lambda x: nc.exp(x) * 2 + 1, backend="cuda", check=True)
    with pytest.raises(checking.CheckError, match="diverges from the reference"):
        f(x)
