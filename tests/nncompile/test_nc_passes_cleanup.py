"""Constant folding, CSE, DCE and layout (fold.py, cse.py, dce.py, layout.py), one pass at
a time: each fires where it should, not where it must not, and the results stay the same.
"""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile import functional as F
from nncompile import passes
from nncompile.errors import ExecutionError

from .passes_rules_support import arr, hand_graph, ops, same, simplified

# ---- constant folding -----------------------------------------------------------------------


def test_small_constant_subgraphs_fold():
    c = np.array([0.5, -1.0, 2.0], np.float32)
    x = arr(2, 3)
    g = nc.trace(lambda x: x * (nc.exp(c) + nc.tanh(c) * 2.0), x)
    assert ops(g).get("exp") == 1
    f = passes.fold_constants(g)
    o = nc.optimize(g, 1)
    for h in (f, o):
        assert same(nc.run(h, x), nc.run(g, x))
    assert ops(o) == {"constant": 1, "mul": 1}
    assert same(o.nodes[0].attrs["value"], (np.exp(c) + np.tanh(c) * np.float32(2.0)))


def test_folding_keeps_dtypes_and_zero_dim_constants():
    g = hand_graph(
        [((), nc.float64)],
        lambda g, x: g.add(
            "add", x, g.add("exp", g.add("constant", value=np.array(1.0, np.float64)))
        ),
    )
    o = passes.fold_constants(g)
    const = [n for n in o.nodes if n.op == "constant" and n.outputs[0] in o.nodes[-1].inputs]
    assert const and isinstance(const[0].attrs["value"], np.ndarray)
    assert const[0].attrs["value"].dtype == np.float64 and const[0].attrs["value"].shape == ()
    x = np.array(0.25)
    assert same(nc.run(o, x), nc.run(g, x))


def test_folding_does_not_materialize_a_big_expand_of_a_scalar():
    x = np.zeros((1000, 1000), np.float32)
    g = nc.trace(lambda x: x + nc.broadcast_to(np.float32(0.5), (1000, 1000)), x)
    assert ops(g).get("expand") == 1
    for o in (passes.fold_constants(g), nc.optimize(g, 1), nc.optimize(g, 2)):
        assert ops(o).get("expand") == 1
        biggest = max(n.attrs["value"].nbytes for n in o.nodes if n.op == "constant")
        assert biggest <= 4096
    # but a small expand of a scalar is folded (result <= 4 KiB)
    y = arr(8, 16)
    _, o = simplified(lambda y: y + nc.broadcast_to(np.float32(0.5), (8, 16)), y)
    assert "expand" not in ops(o)


def test_folding_leaves_an_out_of_range_gather_to_run_time():
    table = np.arange(4.0, dtype=np.float32)
    x = arr(2)
    g = nc.trace(lambda x: x + nc.take(table, np.array([1, 7])), x)
    for level in (1, 2):
        o = nc.optimize(g, level)  # no error while optimizing
        assert ops(o).get("gather") == 1
        with pytest.raises(ExecutionError, match="out of range"):
            nc.run(o, x)
    with pytest.raises(ExecutionError, match="out of range"):
        nc.run(g, x)
    # in range: folded
    _, o = simplified(lambda x: x + nc.take(table, np.array([1, -1])), x)
    assert "gather" not in ops(o)


# ---- CSE ------------------------------------------------------------------------------------


def test_duplicate_subexpressions_merge():
    x = arr(3, 4)

    def f(x):
        a = nc.tanh(x) * nc.sum(x, axis=0)
        b = nc.tanh(x) * nc.sum(x, axis=0)
        return a + b, nc.sum(x, axis=1), nc.transpose(x), nc.transpose(x)

    g = nc.trace(f, x)
    o = passes.eliminate_common_subexpressions(g)
    assert ops(g)["tanh"] == 2 and ops(o)["tanh"] == 1
    assert ops(o)["reduce_sum"] == 2  # axis 0 once, axis 1 once (different attrs)
    assert ops(o)["mul"] == 1 and ops(o)["transpose"] == 1
    assert o.outputs[2] is o.outputs[3]
    assert same(nc.run(o, x)[0], nc.run(g, x)[0])
    o1 = nc.optimize(g, 1)
    assert ops(o1) == ops(o)  # nothing else to do here


def test_different_ops_inputs_or_attributes_do_not_merge():
    x, y = arr(3, 4), arr(3, 4)
    g, o = simplified(
        lambda x, y: (x + y, y + x, x - y, nc.max(x, 0), nc.max(x, 0, True), nc.min(x, 0)), x, y
    )
    assert ops(o) == {"add": 2, "sub": 1, "reduce_max": 2, "reduce_min": 1}


def test_constants_merge_by_value_but_not_across_dtype_or_zero_sign():
    big = np.linspace(0, 1, 32, dtype=np.float32)
    x = arr(32)
    g = nc.trace(lambda x: (x + big.copy(), x * big.copy(), x - big.copy()), x)
    assert ops(g)["constant"] == 3  # big arrays are not deduplicated while tracing
    o = passes.eliminate_common_subexpressions(g)
    assert ops(o)["constant"] == 1
    assert same(nc.run(o, x)[1], nc.run(g, x)[1])

    def build(g, x):
        c = [
            g.add("constant", value=np.zeros(3, np.float32)),
            g.add("constant", value=np.zeros(3, np.float32)),
            g.add("constant", value=np.full(3, -0.0, np.float32)),
            g.add("constant", value=np.zeros(3, np.int32)),
        ]
        return [g.add("div", x, c[0]), g.add("div", x, c[1]), g.add("div", x, c[2]), c[3]]

    h = hand_graph([((3,), nc.float32)], build)
    o = passes.eliminate_common_subexpressions(h)
    assert ops(o) == {"constant": 3, "div": 2}
    ones = np.ones(3, np.float32)
    got = nc.run(o, ones)
    assert np.all(got[0] == np.inf) and np.all(got[2] == -np.inf)


# ---- DCE ------------------------------------------------------------------------------------


def test_dead_nodes_go_and_outputs_and_inputs_stay():
    x, y = arr(3, 4), arr(3, 4)

    def f(x, y):
        nc.tanh(x) * 2.0  # dead
        dead = nc.exp(y)
        nc.sum(dead)  # dead too
        live = nc.relu(x)
        return live, x, live

    g = nc.trace(f, x, y)
    o = passes.eliminate_dead_code(g)
    assert ops(o) == {"relu": 1}
    assert len(o.inputs) == 2  # the unused y stays an input
    assert o.outputs[1] is o.inputs[0] and o.outputs[0] is o.outputs[2]
    assert o.out_tree == g.out_tree and o.in_tree == g.in_tree
    for a, b in zip(nc.run(o, x, y), nc.run(g, x, y), strict=True):
        assert same(a, b)


def test_dce_keeps_everything_an_output_needs():
    x = arr(3)
    g = nc.trace(lambda x: nc.exp(nc.tanh(nc.abs(x))), x)
    assert str(passes.eliminate_dead_code(g)) == str(g)


# ---- layout ---------------------------------------------------------------------------------


TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def conv_block(x, w, b):
    """Channels-last data through the NCHW ops, each wrapped in transposes."""
    y = nc.relu(nc.transpose(nc.conv2d(nc.transpose(x, TO_NCHW), w, b), TO_NHWC))
    return nc.transpose(nc.max_pool2d(nc.transpose(y, TO_NCHW), 2), TO_NHWC)


def conv_block_inputs():
    return arr(2, 8, 8, 3), arr(4, 3, 3, 3), arr(4)


def test_layout_cancels_the_transposes_around_relu_in_a_channels_last_block():
    x, w, b = conv_block_inputs()
    g = nc.trace(conv_block, x, w, b)
    relu = next(n for n in g.nodes if n.op == "relu")
    pool = next(n for n in g.nodes if n.op == "max_pool2d")
    assert pool.inputs[0].producer.op == "transpose"
    assert relu.inputs[0].producer.op == "transpose"
    o = nc.optimize(g, 2)
    pool = next(n for n in o.nodes if n.op == "max_pool2d")
    relu = pool.inputs[0].producer
    assert relu.op == "relu", "the transpose between relu and max_pool2d is gone"
    assert relu.inputs[0].producer.op == "add"  # relu reads the conv (+ bias) directly
    # the transposes at the input and the output stay (the ops' layouts are fixed in the graph)
    assert ops(o)["transpose"] == 2 and ops(g)["transpose"] == 4
    assert same(nc.run(o, x, w, b), nc.run(g, x, w, b))
    # level 1 has no layout pass: the transposes stay
    assert ops(nc.optimize(g, 1))["transpose"] == 4


def test_channels_last_layers_use_nhwc_ops_without_transposes():
    x, w, b = conv_block_inputs()
    layers = lambda x, w, b: F.max_pool(F.conv2d_layer(x, w, b, act="relu"), 2)  # noqa: E731
    g = nc.trace(layers, x, w, b)
    assert "transpose" not in ops(g)
    assert {n.attrs["layout"] for n in g.nodes if n.op in ("conv2d", "max_pool2d")} == {"NHWC"}
    assert same(nc.run(g, x, w, b), nc.run(nc.trace(conv_block, x, w, b), x, w, b))


def test_layout_moves_a_transpose_below_binary_ops_with_scalars_and_equal_transposes():
    x, y = arr(2, 3, 4), arr(2, 3, 4)
    perm = (2, 0, 1)
    inv = (1, 2, 0)

    def f(x, y):
        t = nc.transpose(x, perm) * 2.0 + nc.transpose(y, perm)
        return nc.transpose(nc.exp(t), inv)

    g, o = simplified(f, x, y, level=2)
    assert "transpose" not in ops(o)


def test_layout_leaves_a_transpose_that_has_other_readers():
    x = arr(2, 3)

    def f(x):
        t = x.T
        return nc.relu(t).T, t

    g, o = simplified(f, x, level=2)
    assert ops(o)["transpose"] == 2
    l1 = passes.sink_transposes(g)
    assert str(l1) == str(g)


def test_layout_does_not_move_a_transpose_past_a_differently_transposed_operand():
    x, y = arr(2, 3), arr(3, 2)
    g, o = simplified(lambda x, y: (x.T + y).T, x, y, level=2)
    assert ops(o)["transpose"] == 2
