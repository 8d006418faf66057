"""One-node ONNX models for the converter tests (a node, its graph inputs and initializers
as an nc function) and seeded float64 data."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompile as nc  # noqa: E402

F64, F32, I64 = TensorProto.DOUBLE, TensorProto.FLOAT, TensorProto.INT64
RNG = np.random.default_rng(0)


def _model(node, inputs, n_outputs=1, inits=(), opset=24):
    """One node; ``inputs`` are (name, elem type, shape) graph inputs, ``inits`` (name,
    array) initializers."""
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, e, s) for n, e, s in inputs],
        [helper.make_tensor_value_info(o, F64, None) for o in node.output[:n_outputs] if o],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits],
    )
    return nc.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def _rand(*shape):
    return RNG.standard_normal(shape)
