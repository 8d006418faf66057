"""An imported ONNX graph of elementwise and reduction converters (Softmax, CumSum
exclusive/reverse, ReduceLogSumExp/ReduceProd with constant axes, Einsum, exact Round,
Clip) and of integer ones (Mod, truncating Div, BitShift with wrapping and sign fill) on
the CUDA backend (a GPU, or the CPU emulation, see conftest.py): outputs and the compiled
gradient equal the eager run."""

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

    node = helper.make_node
    nodes = [
        const("ax1", np.array([1])),
        const("ax", np.array(2)),
        const("lo", np.float32(-0.5)),
        node("Softmax", ["x"], ["s"], axis=1),
        node("CumSum", ["s", "ax"], ["c"], exclusive=1, reverse=1),
        node("ReduceLogSumExp", ["c", "ax1"], ["r"], keepdims=0),
        node("ReduceProd", ["x", "ax1"], ["p"], keepdims=0),
        node("Einsum", ["r", "p"], ["e"], equation="ij,ij->j"),
        node("Round", ["x"], ["rx"]),
        node("Clip", ["x", "lo", ""], ["cx"]),
        node("Mul", ["rx", "cx"], ["m"]),
        node("ReduceSum", ["m", "ax1"], ["q"], keepdims=0),
        node("Add", ["q", "e"], ["y"]),  # (3, 4) + (4,)
        node("Mod", ["a", "b"], ["md"]),
        node("Div", ["a", "b"], ["dv"]),
        node("BitShift", ["a", "k"], ["sl"], direction="LEFT"),
        node("BitShift", ["a", "k"], ["sr"], direction="RIGHT"),
        node("Sum", ["md", "dv", "sl", "sr"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", F32, [3, 5, 4]),
            helper.make_tensor_value_info("a", I64, [6]),
            helper.make_tensor_value_info("b", I64, [6]),
            helper.make_tensor_value_info("k", I64, [6]),
        ],
        [helper.make_tensor_value_info(n, t, None) for n, t in (("y", F32), ("z", I64))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 28)])


def test_onnx_math_and_reduction_graph_on_cuda():
    f = nc.onnx.load(_model())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    x[0, 0, :] = [0.5, -0.5, 2.5, -1.5]  # Round's halves go to even
    a = np.array([7, -7, -(2**63), 2**62 + 3, -1, 9])
    b = np.array([3, 3, -5, 4, 2, -4])
    k = np.array([1, 2, 63, 1, 64, -1])
    want = [np.asarray(o) for o in f(x, a, b, k)]
    got = nc.compile(f, backend="cuda")(x, a, b, k)
    np.testing.assert_allclose(np.asarray(got[0]), want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(got[1]), want[1])
    w = rng.standard_normal(want[0].shape).astype(np.float32)
    grad = nc.grad(lambda x: nc.sum(nc.multiply(f(x, a, b, k)[0], w)))
    np.testing.assert_allclose(
        np.asarray(nc.compile(grad, backend="cuda")(x)), np.asarray(grad(x)), rtol=1e-4, atol=1e-5
    )
