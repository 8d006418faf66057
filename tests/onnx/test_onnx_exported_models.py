"""Real exported models (tests/onnx/exported_models.py, both torch exporters) through the
importer: outputs eager and LLVM-compiled equal ONNX Runtime's at batch 1 and 32; the
gradients of a fine-tuning loss w.r.t. the imported parameters (and the input) equal
PyTorch's on the original module; Adam fine-tuning through nc.optim takes the same steps
as torch.optim.Adam where every torch parameter is an ONNX initializer, and lowers the
loss everywhere. A missing converter fails here with its UnsupportedError message."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

import nncompile as nc  # noqa: E402

from .exported_models import EXPORTERS, MODELS, ModelSpec, dynamo_available, export  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
GRAD_RTOL = 1e-4  # relative to the largest gradient of each parameter
NOISE_FLOOR = 1e-4  # gradients below this times the largest are float noise to Adam
BATCHES = (1, 32)

CASES = [
    pytest.param(name, exporter, id=f"{name}-{exporter}")
    for name in MODELS
    for exporter in EXPORTERS
]


class Exported:
    """One exported model: the torch module, the .onnx path and its ORT session."""

    def __init__(self, spec: ModelSpec, exporter: str, directory: str):
        self.spec = spec
        self.module = spec.build()
        self.path = export(self.module, spec, exporter, directory)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])

    def ort(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(model, exporter) -> Exported, exported once per session on first use."""
    directory = str(tmp_path_factory.mktemp("onnx_exported"))
    cache: dict[tuple[str, str], Exported] = {}

    def get(name: str, exporter: str) -> Exported:
        if exporter == "dynamo" and not dynamo_available():
            pytest.skip("the dynamo exporter needs onnxscript")
        if (name, exporter) not in cache:
            cache[name, exporter] = Exported(MODELS[name], exporter, directory)
        return cache[name, exporter]

    return get


def nc_loss(spec: ModelSpec, out, target):
    if spec.task == "classify":
        return nc.cross_entropy(out, target)
    return nc.mean((out - target) ** 2)


def torch_loss(spec: ModelSpec, out, target):
    if spec.task == "classify":
        return torch.nn.functional.cross_entropy(out, torch.from_numpy(target))
    return torch.nn.functional.mse_loss(out, torch.from_numpy(target))


def trainable(f, module) -> list[str]:
    """ONNX parameters that are torch parameters by name (the exporters keep the names;
    a BatchNorm's running statistics are not among them)."""
    names = dict(module.named_parameters())
    return sorted(k for k in f.params if k in names)


def comparable(f, module) -> list[str]:
    """Trainable parameters whose values are the torch parameter's too: a weight the
    exporter folded (BatchNorm into Conv) keeps its name but not its values."""
    names = dict(module.named_parameters())
    return [
        k
        for k in trainable(f, module)
        if f.params[k].shape == tuple(names[k].shape)
        and np.array_equal(f.params[k], names[k].detach().numpy())
    ]


def assert_close_scaled(got, want, rtol: float, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(float(np.abs(want).max()), 1e-30) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)


@pytest.mark.parametrize("name, exporter", CASES)
def test_outputs_equal_onnx_runtime(exported, name, exporter):
    e = exported(name, exporter)
    f = nc.onnx.load(e.path)
    fast = nc.compile(f, backend="llvm")
    for batch in BATCHES:
        x = e.spec.inputs(batch, seed=batch)
        want = e.ort(x)
        eager = np.asarray(f(x))
        assert eager.dtype == want.dtype == np.float32
        np.testing.assert_allclose(eager, want, rtol=RTOL, atol=ATOL, err_msg=f"eager {batch}")
        compiled = np.asarray(fast(x))
        np.testing.assert_allclose(
            compiled, want, rtol=RTOL, atol=ATOL, err_msg=f"compiled {batch}"
        )


# Models whose graphs compute with the batch size itself (Shape -> Gather -> Concat ->
# Reshape, ConstantOfShape for an initial state): not yet compiled with a symbolic batch.
SHAPE_ARITHMETIC = {"lstm", "transformer"}


@pytest.mark.parametrize("name, exporter", CASES)
def test_one_compile_serves_every_batch_size(exported, name, exporter):
    """The files declare a dynamic batch axis: ``dynamic_batch=True`` compiles once for
    batches of 1, 3 and 32, each equal to ONNX Runtime."""
    e = exported(name, exporter)
    fast = nc.compile(nc.onnx.load(e.path), dynamic_batch=True)
    x = e.spec.inputs(3)
    if name in SHAPE_ARITHMETIC:
        with pytest.raises(nc.ShapeError, match="symbolic batch"):
            fast(x)
        return
    for batch in (1, 3, 32):
        x = e.spec.inputs(batch, seed=batch)
        got = np.asarray(fast(x))
        np.testing.assert_allclose(got, e.ort(x), rtol=RTOL, atol=ATOL, err_msg=f"{batch}")
    assert fast.compile_count == 1


@pytest.mark.parametrize("name, exporter", CASES)
def test_fine_tuning_gradients_equal_torch(exported, name, exporter):
    """d loss / d (parameters, input) through f.apply vs autograd on the original module,
    for every parameter whose values survived the export; eager, and compiled for the
    TorchScript exports (compiling a backward graph takes seconds: the dynamo exports,
    the same ops, run eagerly only to keep the module fast)."""
    e = exported(name, exporter)
    f = nc.onnx.load(e.path)
    x, y = e.spec.inputs(4, seed=3), e.spec.targets(4, seed=4)

    def loss(params, x, y):
        return nc_loss(e.spec, f.apply(params, x), y)

    grad_fn = nc.grad(loss, argnums=(0, 1))
    results = [("eager", grad_fn(f.params, x, y))]
    if exporter == "torchscript":
        results.append(("compiled", nc.compile(grad_fn, backend="llvm")(f.params, x, y)))

    tx = torch.tensor(x, requires_grad=True)
    e.module.zero_grad()
    torch_loss(e.spec, e.module(tx), y).backward()
    tparams = dict(e.module.named_parameters())
    names = comparable(f, e.module)
    assert names, f"no ONNX initializer keeps a torch parameter: {sorted(f.params)[:8]}"
    for label, (gp, gx) in results:
        assert set(gp) == set(f.params)
        assert_close_scaled(gx, tx.grad.numpy(), GRAD_RTOL, f"{label} d/dx")
        for k in names:
            assert_close_scaled(gp[k], tparams[k].grad.numpy(), GRAD_RTOL, f"{label} d/d{k}")


@pytest.mark.parametrize("name, exporter", CASES)
def test_adam_fine_tuning(exported, name, exporter, tmp_path):
    """Three nc.optim.Adam steps on the torch-named parameters (running statistics and
    folded weights stay frozen) lower the loss, and the model saved with them runs in ONNX
    Runtime as here; where every torch parameter came through unchanged the steps equal
    torch.optim.Adam's. The steps are LLVM-compiled for the TorchScript exports and eager
    for the dynamo ones (compiling a training step takes seconds)."""
    e = exported(name, exporter)
    f = nc.onnx.load(e.path)
    x, y = e.spec.inputs(8, seed=5), e.spec.targets(8, seed=6)
    names = trainable(f, e.module)
    frozen = {k: v for k, v in f.params.items() if k not in names}

    def loss(train, x, y):
        return nc_loss(e.spec, f.apply({**frozen, **train}, x), y)

    lr = 1e-3
    step = nc.train_step(loss, nc.optim.Adam(lr=lr))
    if exporter == "torchscript":
        step = nc.compile(step, backend="llvm")
    params = {k: f.params[k] for k in names}
    state = nc.optim.Adam(lr=lr).init(params)
    losses = []
    for _ in range(3):
        params, state, value, _ = step(params, state, x, y, lr)
        losses.append(float(np.asarray(value)))
    final = float(np.asarray(loss(params, x, y)))
    assert final < losses[0], (losses, final)

    # The tuned model saved back to ONNX runs in ONNX Runtime as it does here.
    tuned = str(tmp_path / "tuned.onnx")
    nc.onnx.save(f, params, tuned)
    session = ort.InferenceSession(tuned, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, {session.get_inputs()[0].name: x})[0],
        np.asarray(f.apply({**frozen, **params}, x)),
        rtol=RTOL,
        atol=ATOL,
    )

    module = copy.deepcopy(e.module)  # the session's copy stays as exported
    tparams = dict(module.named_parameters())
    if comparable(f, module) != sorted(tparams):
        return
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    start = {k: v.detach().numpy().copy() for k, v in tparams.items()}
    noisy = {k: np.zeros(v.shape, bool) for k, v in tparams.items()}
    tlosses = []
    for _ in range(3):
        opt.zero_grad()
        value = torch_loss(e.spec, module(torch.from_numpy(x)), y)
        value.backward()
        for k, v in tparams.items():
            g = np.abs(v.grad.numpy())
            noisy[k] |= g < NOISE_FLOOR * max(float(g.max()), 1e-30)
        opt.step()
        tlosses.append(value.item())
    np.testing.assert_allclose(losses, tlosses, rtol=1e-4)
    for k in names:
        # Adam scales a gradient of float noise (a dead ReLU's, attention's key bias's,
        # which is zero in exact arithmetic) to a full step of random sign: compare the
        # updates where the gradient is above the noise.
        got = (np.asarray(params[k]) - start[k])[~noisy[k]]
        want = (tparams[k].detach().numpy() - start[k])[~noisy[k]]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-2 * lr, err_msg=f"Adam {k}")
