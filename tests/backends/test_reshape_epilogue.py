"""An anchor (pooling, convolution, matmul) whose result is only reshaped - a pooled image
flattened for a dense layer - stores straight into the reshaped output: one store per
element in its kernel, no pass copying the anchor's buffer into the reshaped one; and the
values match the reference, also when the reshaped value feeds a pointwise op (which keeps
the separate pass). A GEMM (a matmul, an im2col convolution) writes the reshaped buffer
as its C."""

from __future__ import annotations

import re

import numpy as np
import pytest

import nncompile as nc

from .llvm_support import acc, check

CASES = {
    "max_pool_nhwc": lambda x, w, m: nc.reshape(
        nc.max_pool2d(x, (2, 2), (2, 2), layout="NHWC"), (4, -1)
    ),
    "relu_conv_nhwc": lambda x, w, m: nc.reshape(nc.relu(nc.conv2d(x, w, layout="NHWC")), (4, -1)),
    "matmul": lambda x, w, m: nc.reshape(nc.transpose(m) @ m, (-1,)),
    "conv_nchw": lambda x, w, m: nc.reshape(nc.conv2d(nc.transpose(x, (0, 3, 1, 2)), w), (4, -1)),
}


def _operands():
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (4, 10, 10, 3)).astype(np.float32)
    w = rng.uniform(-1, 1, (10, 3, 3, 3)).astype(np.float32)
    m = rng.uniform(-1, 1, (30, 6)).astype(np.float32)
    return x, w, m


def _stores(text: str) -> list[str]:
    """The buffers the program's kernels store into (store statements and GEMMs' C)."""
    return re.findall(r"^\s+(?:gemm )?(\w+)\[.*\] = ", text, flags=re.MULTILINE)


@pytest.mark.parametrize("name", CASES)
def test_anchor_result_stored_straight_into_its_reshape(name):
    fn = CASES[name]
    args = _operands()
    program = nc.lower(fn, *args).program
    (kernel,) = [k for k in program.text().split("\n\n") if "=reshape" in k]
    # (the kernel may fill its own scratch - transposed weights - but not the anchor's
    # arena buffer t_*: it stores the reshaped output itself)
    stores = _stores(kernel)
    assert any(s.startswith("out") for s in stores), kernel
    assert not [s for s in stores if s.startswith("t_")], kernel
    check(fn, *args, tol=acc("float32", 30, 2.0))


def test_a_pointwise_op_after_the_reshape_keeps_the_separate_pass():
    args = _operands()

    def fn(x, w, m):
        return nc.reshape(nc.max_pool2d(x, (2, 2), (2, 2), layout="NHWC"), (4, -1)) * 2.0

    assert any(s.startswith("t_") for s in _stores(nc.lower(fn, *args).program.text()))
    check(fn, *args, tol="arith")


RESHAPED_OPERANDS = {
    "input_flattened": lambda x, w, m: nc.reshape(x, (40, 30)) @ m,
    "batched": lambda x, w, m: nc.reshape(x, (4, 100, 3)) @ nc.reshape(m, (3, 60)),
    "computed_then_flattened": lambda x, w, m: nc.reshape(nc.relu(x), (40, 30)) @ m,
}


@pytest.mark.parametrize("name", RESHAPED_OPERANDS)
def test_a_matmul_reads_a_reshaped_operand_in_place(name):
    """A reshape only a matmul reads (an image batch flattened for a dense layer) is the
    same buffer: the GEMM reads its input with the reshaped strides, nothing is copied."""
    fn = RESHAPED_OPERANDS[name]
    args = _operands()
    text = nc.lower(fn, *args).program.text()
    comments = re.findall(r"^# (t\d+=.*)$", text, flags=re.MULTILINE)
    # no kernel only copies the reshape: the GEMM reads it in place (or its producer's
    # kernel stores straight into the reshaped layout)
    assert not [c for c in comments if set(re.findall(r"=(\w+)", c)) == {"reshape"}], text
    check(fn, *args, tol=acc("float32", 300, 2.0))
