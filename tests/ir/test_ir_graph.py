"""Building graphs by hand and by tracing, and the printed text form."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest
from nncompile.ir import Graph, TensorType, bool_, float32, int64

import nncompile as nc


def _small_graph() -> Graph:
    g = Graph("small")
    x = g.add_input(TensorType((2, 3), float32), "x")
    y = g.add_input(TensorType((3,), float32), "y")
    s = g.add("add", x, y)
    r = g.add("relu", s)
    t = g.add("reduce_sum", r, axes=[1], keepdims=True)
    g.set_outputs([t, s])
    return g.verify()


# ---- building ----------------------------------------------------------------------------


def test_build_infers_types_and_names():
    g = _small_graph()
    assert [v.name for v in g.inputs] == ["x", "y"]
    assert [n.op for n in g.nodes] == ["add", "relu", "reduce_sum"]
    add, relu, red = g.nodes
    assert add.output.type == TensorType((2, 3), float32)
    assert red.output.shape == (2, 1) and red.output.dtype == float32
    # Every output points back to its node.
    for n in g.nodes:
        assert all(v.producer is n and v.index == i for i, v in enumerate(n.outputs))
    assert g.inputs[0].producer is None
    assert len({v.name for v in g.values()}) == len(g.values()) == 5
    assert g.op_counts() == {"add": 1, "relu": 1, "reduce_sum": 1}
    assert g.consumers()[add.output] == [relu]
    assert g.consumers()[red.output] == []


def test_attrs_are_canonicalized_and_defaults_filled():
    g = Graph()
    x = g.add_input(TensorType((1, 2, 5, 5), float32), "x")
    w = g.add_input(TensorType((4, 2, 3, 3), float32), "w")
    conv = g.add_node("conv2d", [x, w], {"pads": [1, 1, 1, 1]})
    # Lists become tuples; omitted attributes get their schema defaults.
    assert conv.attrs == {
        "strides": (1, 1),
        "pads": (1, 1, 1, 1),
        "dilations": (1, 1),
        "groups": 1,
        "layout": "NCHW",
    }
    assert conv.output.shape == (1, 4, 5, 5)
    cast = g.add_node("cast", [x], {"to": "int64"})
    assert cast.attrs["to"] is int64
    pad = g.add_node("pad", [x], {"pads": (0,) * 8, "value": 3})
    assert pad.attrs["value"] == 3.0 and isinstance(pad.attrs["value"], float)


def test_explicit_node_and_output_names():
    g = Graph()
    x = g.add_input(TensorType((2,), float32), "x")
    n = g.add_node("neg", [x], name="negate", output_names=["minus_x"])
    assert n.name == "negate" and n.output.name == "minus_x"
    g.set_outputs([n.output])
    g.verify()
    # Both the node name and the output name are taken.
    with pytest.raises(nc.GraphError, match="duplicate"):
        g.add_input(TensorType((2,), float32), "negate")
    with pytest.raises(nc.GraphError, match="duplicate"):
        g.add_node("neg", [x], output_names=["minus_x"])


def test_fresh_names_skip_taken_names():
    g = Graph()
    x = g.add_input(TensorType((2,), float32), "t0")
    v = g.add("neg", x)
    assert v.name != "t0"
    assert g.fresh_name() not in {v.name for v in g.values()}


@pytest.mark.parametrize(
    "op, types, attrs, exc, match",
    [
        ("no_such_op", [(2,)], {}, nc.GraphError, "unknown op"),
        ("add", [(2,)], {}, nc.GraphError, "expects 2 inputs, got 1"),
        ("relu", [(2,), (2,)], {}, nc.GraphError, "expects 1 inputs, got 2"),
        ("relu", [(2,)], {"alpha": 1.0}, nc.OpAttributeError, "unknown attribute"),
        ("reduce_sum", [(2,)], {"keepdims": False}, nc.OpAttributeError, "missing required"),
        ("reduce_sum", [(2,)], {"axes": 0, "keepdims": False}, nc.OpAttributeError, "list of ints"),
        ("reduce_sum", [(2,)], {"axes": (0,), "keepdims": 0}, nc.OpAttributeError, "a bool"),
        ("reduce_sum", [(2,)], {"axes": (3,), "keepdims": False}, nc.ShapeError, "out of range"),
        ("add", [(2,), (3,)], {}, nc.ShapeError, "do not broadcast"),
        ("matmul", [(2, 3), (2, 3)], {}, nc.ShapeError, "contracted dims"),
        ("reshape", [(2, 3)], {"shape": (4,)}, nc.ShapeError, "cannot reshape"),
        ("transpose", [(2, 3)], {"perm": (0, 0)}, nc.ShapeError, "not a permutation"),
    ],
)
def test_add_node_rejects_bad_nodes(op, types, attrs, exc, match):
    g = Graph()
    ins = [g.add_input(TensorType(s, float32)) for s in types]
    with pytest.raises(exc, match=match):
        g.add_node(op, ins, attrs)
    assert g.nodes == []  # a rejected node leaves the graph unchanged


def test_add_node_dtype_errors():
    g = Graph()
    b = g.add_input(TensorType((2,), bool_), "b")
    f = g.add_input(TensorType((2,), float32), "f")
    with pytest.raises(nc.DTypeError, match="numeric"):
        g.add("add", b, b)
    with pytest.raises(nc.DTypeError, match="share one dtype"):
        g.add("add", f, g.add("cast", f, to=int64))


def test_inference_error_names_op_operands_and_location():
    g = Graph()
    a = g.add_input(TensorType((2, 3), float32), "a")
    with pytest.raises(nc.ShapeError) as info:
        g.add("matmul", a, a, loc="model.py:12 in forward")
    msg = str(info.value)
    assert "matmul(float32[2,3], float32[2,3])" in msg
    assert "at model.py:12 in forward" in msg


# ---- the printer -----------------------------------------------------------------------

# "%out = op(%in, ...) {attrs}   : dtype[shape]  # loc"
_LINE = re.compile(
    r"^  (?P<outs>%[\w.]+(?:, %[\w.]+)*) = (?P<op>\w+)\((?P<args>[^)]*)\)"
    r"(?: \{(?P<attrs>.*)\})? +: (?P<types>\S+(?:, \S+)*)(?:  # (?P<loc>.+))?$"
)


def _node_lines(g: Graph) -> list[str]:
    lines = str(g).splitlines()
    assert lines[0].startswith(f"graph {g.name}(") and lines[-1] == "}"
    assert lines[-2].startswith("  return ")
    return lines[1:-2]


def _check_printed(g: Graph) -> list[re.Match]:
    lines = _node_lines(g)
    assert len(lines) == len(g.nodes)  # one line per node
    matches = []
    for line, node in zip(lines, g.nodes, strict=True):
        m = _LINE.match(line)
        assert m, line
        assert m["op"] == node.op
        assert m["outs"] == ", ".join(f"%{v.name}" for v in node.outputs)
        assert m["args"] == ", ".join(f"%{v.name}" for v in node.inputs)
        assert m["types"] == ", ".join(
            f"{v.dtype}[{','.join(map(str, v.shape))}]" for v in node.outputs
        )
        for k in node.attrs:
            assert f"{k}=" in (m["attrs"] or ""), (k, line)
        assert m["loc"] == node.loc
        matches.append(m)
    return matches


def test_printer_one_line_per_node():
    g = _small_graph()
    text = str(g)
    assert text.splitlines()[0] == (
        "graph small(%x: float32[2,3], %y: float32[3]) -> (%t2: float32[2,1], %t0: float32[2,3]) {"
    )
    assert text.splitlines()[-2] == "  return %t2, %t0"
    m = _check_printed(g)
    assert m[2]["attrs"] == "axes=[1], keepdims=true"
    assert m[0]["attrs"] is None  # no braces for attribute-free ops


def test_printer_formats_attribute_kinds():
    g = Graph("attrs")
    x = g.add_input(TensorType((2, 3), float32), "x")
    g.add("cast", x, to=int64)
    g.add("pad", x, pads=(1, 0, 0, 1), value=float("nan"))
    g.add_node("constant", [], {"value": np.array([True, False])})
    g.add_node("constant", [], {"value": np.zeros((10, 10), np.float32)})
    g.add_node("constant", [], {"value": np.array(2.5)})
    lines = _node_lines(g)
    _check_printed(g)
    assert "{to=int64}" in lines[0]
    assert "pads=[1,0,0,1], mode=constant, value=nan" in lines[1]
    assert "value=[ True,False]" in lines[2]
    assert "value=<float32[10, 10]>" in lines[3]  # large constants print a summary only
    assert "value=2.5" in lines[4]


def test_printer_shows_node_name_when_it_differs_from_output_name():
    # The node name is part of the graph (it survives JSON), so the text form must show it.
    g = Graph()
    x = g.add_input(TensorType((2,), float32), "x")
    n = g.add_node("relu", [x], name="block1_act", output_names=["h"])
    g.set_outputs([n.output])
    (line,) = _node_lines(g)
    assert "block1_act" in line, line


# ---- traced graphs record the user's source line ---------------------------------------

_LINES: dict[str, int] = {}


def _model(x, w):
    _LINES["matmul"] = sys._getframe().f_lineno + 1
    h = x @ w
    _LINES["relu"] = sys._getframe().f_lineno + 1
    y = nc.relu(h)
    _LINES["sum"] = sys._getframe().f_lineno + 1
    return y.sum(axis=0)


def _loc_parts(loc: str) -> tuple[str, int, str]:
    m = re.fullmatch(r"(.+):(\d+) in (\w+)", loc)
    assert m, loc
    return m[1], int(m[2]), m[3]


def test_traced_nodes_record_user_source_lines():
    g = nc.trace(_model, np.ones((2, 3), np.float32), np.ones((3, 4), np.float32))
    by_op = {n.op: n for n in g.nodes}
    for op, key in [("matmul", "matmul"), ("relu", "relu"), ("reduce_sum", "sum")]:
        file, line, func = _loc_parts(by_op[op].loc)
        assert os.path.abspath(file) == os.path.abspath(__file__)
        assert (line, func) == (_LINES[key], "_model")
    _check_printed(g)
    for n in g.nodes:
        if n.loc:
            assert f"  # {n.loc}" in str(g)


def test_trace_error_points_at_user_line():
    def bad(x):
        line = sys._getframe().f_lineno + 1
        return x @ x, line

    with pytest.raises(nc.ShapeError) as info:
        nc.trace(bad, np.ones((2, 3), np.float32))
    line = bad.__code__.co_firstlineno + 2
    assert f"{os.path.basename(__file__)}:{line} in bad" in str(info.value)


def test_traced_graph_shapes_match_eager():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    w = np.ones((3, 4), np.float32)
    g = nc.trace(_model, x, w)
    assert [v.type for v in g.inputs] == [TensorType((2, 3), float32), TensorType((3, 4), float32)]
    eager = _model(nc.Tensor(x), nc.Tensor(w)).numpy()
    out = nc.run(g, x, w)
    assert out.shape == g.outputs[0].shape == eager.shape
    np.testing.assert_array_equal(out, eager)
