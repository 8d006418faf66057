"""ONNX narrow integer types (int8, uint32) in their int32/int64 containers on the CUDA
backend (a GPU, or the CPU emulation, see conftest.py): the wrapping arithmetic and casts
of tests/onnx/test_onnx_narrow_ints.py equal ONNX's reference evaluator."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

import nncompile as nc  # noqa: E402

from ..onnx import test_onnx_narrow_ints as cases  # noqa: E402

# the models and reference of the CPU test (a test module, not a package: loaded by path)


@pytest.mark.parametrize("dtype", [np.int8, np.uint32], ids=lambda d: np.dtype(d).name)
def test_narrow_ints_on_cuda_equal_onnx_reference(dtype):
    model, inputs = cases._model(dtype), cases._inputs(dtype)
    want = cases._reference(model, inputs)
    f = nc.onnx.load(model)
    outs = nc.compile(f, backend="cuda")(*nc.onnx.to_containers(*inputs))
    got = nc.onnx.to_onnx_dtypes(outs, f)
    for name, g, w in zip(f.output_names, got, want, strict=True):
        assert g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)
