"""Constant folding through ONNX's reference implementation, and where it is not used."""

import numpy as np
import pytest

pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompile as nc  # noqa: E402


def test_constant_pre13_softmax_coerces_to_2d_as_the_spec_says():
    """ONNX's reference ignores opset < 13's coerce-to-2-D rule; such nodes are not folded
    through it but computed by the converter."""
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(x)),
        helper.make_node("Softmax", ["c"], ["y"], axis=1),
    ]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph(nodes, "g", [], [out]), opset_imports=[helper.make_opsetid("", 11)]
    )
    flat = np.exp(x.reshape(1, 6))
    want = (flat / flat.sum()).reshape(1, 2, 3)
    np.testing.assert_allclose(nc.onnx.load(model)().numpy(), want, rtol=1e-6)
