"""The CUDA implicit GEMM follows the intent lowering states on the Gemm (``implicit``),
not the names lowering happens to give its scratch buffers."""

from __future__ import annotations

import dataclasses

import numpy as np
from nncompile.backends.cuda.gemm import implicit_operands
from nncompile.ir.kernel import Gemm, Kernel, Store, walk

import nncompile as nc


def _conv_kernel() -> Kernel:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8, 7, 7)).astype(np.float32)
    w = rng.standard_normal((4, 8, 5, 5)).astype(np.float32)
    lowered = nc.lower(lambda x, w: nc.conv2d(x, w, None, 1, 2), x, w, backend="cuda")
    return next(k for k in lowered.program.kernels if any(isinstance(s, Gemm) for s in k.body))


def test_lowering_marks_the_im2col_operand_and_the_backend_uses_it():
    k = _conv_kernel()
    (gemm,) = [s for s in k.body if isinstance(s, Gemm)]
    assert gemm.implicit == "b"  # NCHW: out = W @ col
    assert set(implicit_operands(k.body, {})) == {gemm.b}


def test_an_unmarked_gemm_reads_its_operand_from_memory():
    k = _conv_kernel()
    body = [dataclasses.replace(s, implicit=None) if isinstance(s, Gemm) else s for s in k.body]
    assert implicit_operands(body, {}) == {}


def test_the_scratch_name_does_not_matter():
    k = _conv_kernel()
    (gemm,) = [s for s in k.body if isinstance(s, Gemm)]

    def rename(s):
        if isinstance(s, Gemm):
            return dataclasses.replace(s, b="im2col_matrix")
        return s

    body = [rename(s) for s in k.body]
    producer = next(s for s in body if not isinstance(s, Gemm) and gemm.b in _stored(s))
    _rename_stores(producer, gemm.b, "im2col_matrix")
    assert set(implicit_operands(body, {})) == {"im2col_matrix"}


def _stored(s) -> set[str]:
    return {x.buffer for x in walk([s]) if isinstance(x, Store)}


def _rename_stores(s, old: str, new: str) -> None:
    for x in walk([s]):
        if isinstance(x, Store) and x.buffer == old:
            x.buffer = new
