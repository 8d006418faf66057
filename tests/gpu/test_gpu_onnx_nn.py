"""An imported ONNX graph of neural-network ops (Conv with asymmetric pads, ceil-mode
AveragePool, bilinear Resize with constant scales, a GRU) on the CUDA backend (a GPU, or
the CPU emulation, see conftest.py): output and parameter gradients equal eager in float32."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompile as nc  # noqa: E402

F32 = TensorProto.FLOAT


def _model(rng):
    hidden = 3
    inits = {
        "cw": rng.standard_normal((2, 1, 3, 3)),
        "scales": np.array([1, 1, 1.5, 2]),
        "shape": np.array([2, 6, 4]),  # (N, C*H, W) -> time-major (W, N, C*H) below
        "gw": rng.standard_normal((1, 3 * hidden, 6)) * 0.5,
        "gr": rng.standard_normal((1, 3 * hidden, hidden)) * 0.5,
    }
    nodes = [
        helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 0, 0, 1]),
        helper.make_node(
            "AveragePool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1
        ),
        helper.make_node("Resize", ["p", "", "scales"], ["r"], mode="linear"),
        helper.make_node("Reshape", ["r", "shape"], ["s"]),
        helper.make_node("Transpose", ["s"], ["t"], perm=[2, 0, 1]),
        helper.make_node("GRU", ["t", "gw", "gr"], ["", "y"], hidden_size=hidden),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F32, (2, 1, 5, 4))],
        [helper.make_tensor_value_info("y", F32, None)],
        [
            numpy_helper.from_array(v.astype(np.int64 if k == "shape" else np.float32), k)
            for k, v in inits.items()
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_nn_graph_on_cuda():
    rng = np.random.default_rng(0)
    f = nc.onnx.load(_model(rng))
    x = rng.standard_normal((2, 1, 5, 4)).astype(np.float32)
    want = f(x).numpy()
    np.testing.assert_allclose(
        np.asarray(nc.compile(f, backend="cuda")(x)), want, rtol=1e-5, atol=1e-6
    )

    def loss(params, x):
        return nc.sum(nc.square(f.apply(params, x)))

    eager = nc.grad(loss)(f.params, x)
    compiled = nc.compile(nc.grad(loss), backend="cuda")(f.params, x)
    assert set(eager) == {"cw", "gw", "gr"}
    for k in eager:
        np.testing.assert_allclose(
            np.asarray(compiled[k]), np.asarray(eager[k]), rtol=1e-4, atol=1e-5, err_msg=k
        )
