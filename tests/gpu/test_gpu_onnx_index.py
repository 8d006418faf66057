"""An imported ONNX graph of indexing ops (Slice with a negative step, reflect Pad,
Gather and ScatterElements on indices from the graph, with duplicates) on the CUDA
backend (a GPU, or the CPU emulation, see conftest.py): outputs and the compiled gradient
equal the eager run in float32."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompile as nc  # noqa: E402

F32, I64 = TensorProto.FLOAT, TensorProto.INT64


def _model():
    def const(name, value):
        return helper.make_node(
            "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value))
        )

    nodes = [
        const("st", [-1]),
        const("en", [-(2**63)]),
        const("ax", [1]),
        const("sp", [-2]),
        helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["a"]),
        const("pads", [0, 2, 0, 1]),
        helper.make_node("Pad", ["a", "pads"], ["b"], mode="reflect"),
        helper.make_node("Gather", ["b", "i"], ["c"], axis=1),
        helper.make_node("ScatterElements", ["c", "j", "u"], ["y"], axis=1),
    ]
    inputs = [("x", F32, [3, 6]), ("i", I64, [4]), ("j", I64, [3, 2]), ("u", F32, [3, 2])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info("y", F32, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_indexing_graph_on_cuda():
    f = nc.onnx.load(_model())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    u = rng.standard_normal((3, 2)).astype(np.float32)
    i, j = np.array([0, -1, 3, 5]), np.array([[1, 1], [0, -1], [3, 2]])
    want = f(x, i, j, u).numpy()
    got = nc.compile(f, backend="cuda")(x, i, j, u)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    w = rng.standard_normal(want.shape).astype(np.float32)
    grad = nc.grad(lambda x, u: nc.sum(nc.multiply(f(x, i, j, u), w)), argnums=(0, 1))
    eager = grad(x, u)
    compiled = nc.compile(grad, backend="cuda")(x, u)
    for e, c in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(np.asarray(c), e.numpy(), rtol=1e-5, atol=1e-6)
