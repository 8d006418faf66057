"""ir/ops/unary.py is the one declaration of the unary elementwise ops: every table that
needs them reads it, and a missing entry raises instead of being skipped."""

import numpy as np
import pytest
from nncompile.ir.ops.unary import UNARY, unary_op
from nncompile.ir.registry import all_ops

import nncompile as nc
from nncompile.autodiff.rules import NOT_DIFFERENTIABLE, VJP
from nncompile.roofline import node_flops


def test_every_unary_elementwise_op_is_declared():
    unary = {
        name
        for name, op in all_ops().items()
        if op.category == "elementwise" and op.num_inputs == 1
    }
    assert unary - {"cast", "stop_gradient"} == set(UNARY)


def test_declared_gradients_match_autodiff():
    for name, u in UNARY.items():
        assert (u.vjp is None) == (name in NOT_DIFFERENTIABLE), name
        assert (name in VJP) == (u.vjp is not None), name


def test_roofline_reads_the_declaration_and_a_missing_entry_raises(monkeypatch):
    graph = nc.trace(lambda x: nc.hardswish(nc.tanh(x)), np.zeros((4, 5), np.float32))
    flops = {n.op: node_flops(n) for n in graph.nodes}
    assert flops["tanh"] == 20 and flops["hardswish"] == 100  # 5 flops per element
    monkeypatch.delitem(UNARY, "tanh")
    with pytest.raises(KeyError, match="not a declared unary op"):
        node_flops(next(n for n in graph.nodes if n.op == "tanh"))
    with pytest.raises(KeyError):
        unary_op("tanh")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hardswish_reference_is_the_numpy_formula_bit_for_bit(dtype):
    x = np.random.default_rng(0).uniform(-6, 6, 1000).astype(dtype)
    x[:6] = [-3, 3, -0.0, 0.0, np.inf, np.nan]
    want = x * np.minimum(np.maximum(x + dtype(3), dtype(0)), dtype(6)) / dtype(6)
    got = nc.hardswish(x).numpy()
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_hardswish_compiled_matches_eager_and_its_gradient_is_torchs_rule():
    x = np.array([-5, -3.5, -3, -1.5, 0, 1.5, 3, 3.5, 5], np.float32)
    np.testing.assert_array_equal(nc.compile(nc.hardswish)(x), nc.hardswish(x).numpy())
    g = nc.grad(lambda v: nc.sum(nc.hardswish(v)))(x).numpy()
    # PyTorch's hardswish_backward: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above
    want = np.where(x < -3, 0, np.where(x <= 3, x / 3 + 0.5, 1)).astype(np.float32)
    np.testing.assert_allclose(g, want, rtol=1e-6)
    gc = nc.compile(nc.grad(lambda v: nc.sum(nc.hardswish(v))))(x)
    np.testing.assert_allclose(gc, want, rtol=1e-6)
