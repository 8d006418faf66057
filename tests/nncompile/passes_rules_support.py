"""Helpers of the graph-pass tests: data, bit-exact comparison, hand-built graphs."""

from __future__ import annotations

import numpy as np
from nncompile.ir import Graph, TensorType

import nncompile as nc

RNG = np.random.default_rng(0)


def arr(*shape, dtype=np.float32, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def same(a, b) -> bool:
    """Bit-exact up to NaN == NaN and -0.0 == 0.0, with equal dtypes and shapes."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def simplified(fn, *arrays, level=1):
    """(traced graph, optimized graph); asserts the results are bit-exact."""
    g = nc.trace(fn, *arrays)
    o = nc.optimize(g, level)
    exp, act = nc.run(g, *arrays), nc.run(o, *arrays)
    exp = exp if isinstance(exp, tuple) else (exp,)
    act = act if isinstance(act, tuple) else (act,)
    for e, a in zip(exp, act, strict=True):
        assert same(e, a), (e, a)
    return g, o


def ops(g) -> dict[str, int]:
    return g.op_counts()


def output_is_input(o, k=0, i=0) -> bool:
    return o.outputs[k] is o.inputs[i]


def hand_graph(types, build):
    """A hand-built graph: ``build(g, *inputs)`` returns the output values."""
    g = Graph("hand")
    ins = [g.add_input(TensorType(s, d), f"x{k}") for k, (s, d) in enumerate(types)]
    outs = build(g, *ins)
    g.set_outputs(outs if isinstance(outs, (list, tuple)) else [outs])
    return g.verify()
