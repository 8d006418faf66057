"""ir/ops/binary.py is the one declaration of the binary elementwise ops: the OpDefs, the
reference, lowering and roofline read it, and a missing entry raises instead of being
skipped."""

import numpy as np
import pytest
from nncompile.backends.numpy.reference import BINARY_REFERENCE
from nncompile.ir.ops.binary import BINARY, binary_op
from nncompile.ir.registry import all_ops

import nncompile as nc
from nncompile.autodiff.rules import NOT_DIFFERENTIABLE, VJP
from nncompile.roofline import node_flops


def test_every_binary_elementwise_op_is_declared():
    binary = {
        name
        for name, op in all_ops().items()
        if op.category == "elementwise" and op.num_inputs == 2
    }
    assert binary == set(BINARY)
    assert {name: fn for name, fn in BINARY_REFERENCE.items()} == {
        name: b.reference for name, b in BINARY.items()
    }


def test_declared_gradients_match_autodiff():
    for name, b in BINARY.items():
        assert (b.vjp is None) == (name in NOT_DIFFERENTIABLE), name
        assert (name in VJP) == (b.vjp is not None), name


def test_roofline_reads_the_declaration_and_a_missing_entry_raises(monkeypatch):
    x = np.zeros((4, 5), np.float32)
    graph = nc.trace(lambda a: nc.maximum(a * a, a), x)
    flops = {n.op: node_flops(n) for n in graph.nodes}
    assert flops["mul"] == 20 and flops["maximum"] == 20
    monkeypatch.delitem(BINARY, "mul")
    with pytest.raises(KeyError, match="not a declared binary op"):
        node_flops(next(n for n in graph.nodes if n.op == "mul"))
    with pytest.raises(KeyError):
        binary_op("mul")


@pytest.mark.parametrize("fn", [nc.divide, nc.power, nc.minimum, nc.less])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_compiled_binary_ops_match_eager_bit_for_bit(fn, dtype):
    rng = np.random.default_rng(0)
    a = rng.integers(-5, 6, (3, 4)).astype(dtype)
    b = rng.integers(1, 4, (3, 4)).astype(dtype)
    np.testing.assert_array_equal(nc.compile(fn)(a, b), fn(a, b).numpy())
