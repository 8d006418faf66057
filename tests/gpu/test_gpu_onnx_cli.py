"""`nncompile run model.onnx --backend cuda` (a GPU, or the CPU emulation, see conftest.py)
writes the outputs the eager run gives."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from nncompile.cli import main  # noqa: E402


def test_run_on_the_cuda_backend_equals_eager(tmp_path, capsys):
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Softmax", ["h"], ["y"], axis=-1),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for backend in ("eager", "cuda"):
        out = tmp_path / f"{backend}.npz"
        argv = ["run", str(model), "--input", str(tmp_path / "x.npy"), "--backend", backend]
        assert main(argv + ["--output", str(out)]) == 0, capsys.readouterr().err
        with np.load(out) as f:
            outs[backend] = f["y"]
    e = np.exp(x @ w - (x @ w).max(-1, keepdims=True))
    np.testing.assert_allclose(outs["eager"], e / e.sum(-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(outs["cuda"], outs["eager"], rtol=1e-5, atol=1e-6)
