"""Newer ONNX converters on the CUDA backend (a GPU, or the CPU emulation, see
conftest.py): RMSNormalization -> Attention (grouped heads, causal) -> GridSample (bicubic,
reflection) -> Sin, with its output and gradients equal to eager in float32."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompile as nc  # noqa: E402

F32 = TensorProto.FLOAT


def _model(rng):
    nodes = [
        helper.make_node("RMSNormalization", ["q", "s"], ["qn"]),
        helper.make_node("Attention", ["qn", "k", "v"], ["a"], is_causal=1),  # (1, 2, 4, 4)
        helper.make_node("GridSample", ["a", "g"], ["gs"], mode="cubic", padding_mode="reflection"),
        helper.make_node("Sin", ["gs"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("q", F32, (1, 2, 4, 4)),
            helper.make_tensor_value_info("k", F32, (1, 1, 5, 4)),
            helper.make_tensor_value_info("v", F32, (1, 1, 5, 4)),
            helper.make_tensor_value_info("g", F32, (1, 3, 3, 2)),
        ],
        [helper.make_tensor_value_info("y", F32, None)],
        [numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "s")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)])


def test_newer_onnx_converters_on_cuda():
    rng = np.random.default_rng(0)
    f = nc.onnx.load(_model(rng))
    shapes = [(1, 2, 4, 4), (1, 1, 5, 4), (1, 1, 5, 4)]
    args = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    args.append(rng.uniform(-1.5, 1.5, (1, 3, 3, 2)).astype(np.float32))
    want = f(*args).numpy()
    np.testing.assert_allclose(
        np.asarray(nc.compile(f, backend="cuda")(*args)), want, rtol=1e-5, atol=1e-5
    )

    def loss(params, *a):
        return nc.sum(nc.square(f.apply(params, *a)))

    argnums = (0, 1, 2, 3, 4)
    eager = nc.grad(loss, argnums=argnums)(f.params, *args)
    compiled = nc.compile(nc.grad(loss, argnums=argnums), backend="cuda")(f.params, *args)
    np.testing.assert_allclose(
        np.asarray(compiled[0]["s"]), np.asarray(eager[0]["s"]), rtol=1e-4, atol=1e-5
    )
    for got, want_grad in zip(compiled[1:], eager[1:], strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want_grad), rtol=1e-4, atol=1e-5)
