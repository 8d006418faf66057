"""An exported ONNX model (the seed CNN, tests/onnx/exported_models.py) imported and
compiled for the CUDA backend (a GPU, or the CPU emulation of the generated CUDA C, see
conftest.py): outputs equal ONNX Runtime's and the fine-tuning gradients equal the LLVM
build's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

import nncompile as nc  # noqa: E402

from ..onnx import exported_models  # noqa: E402


def test_exported_cnn_on_cuda(tmp_path):
    spec = exported_models.MODELS["cnn"]
    path = exported_models.export(spec.build(), spec, "torchscript", str(tmp_path))
    f = nc.onnx.load(path)
    x, y = spec.inputs(2, seed=7), spec.targets(2, seed=8)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x})[0]
    got = np.asarray(nc.compile(f, backend="cuda")(x))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    grad = nc.grad(lambda p, x, y: nc.cross_entropy(f.apply(p, x), y))
    on_cuda = nc.compile(grad, backend="cuda")(f.params, x, y)
    on_llvm = nc.compile(grad, backend="llvm")(f.params, x, y)
    for k in f.params:
        scale = float(np.abs(on_llvm[k]).max())
        np.testing.assert_allclose(
            np.asarray(on_cuda[k]), on_llvm[k], rtol=1e-4, atol=1e-4 * scale, err_msg=k
        )
