"""The verifier rejects graphs whose Node and Value objects were edited into a bad state."""

from __future__ import annotations

import numpy as np
import pytest
from nncompile.ir import Graph, TensorType, Value, float32, float64, int32

import nncompile as nc


def build() -> Graph:
    """x, y -> add -> relu -> reduce_sum; outputs (sum, relu)."""
    g = Graph("v")
    x = g.add_input(TensorType((2, 3), float32), "x")
    y = g.add_input(TensorType((3,), float32), "y")
    a = g.add("add", x, y)
    r = g.add("relu", a)
    s = g.add("reduce_sum", r, axes=(1,), keepdims=False)
    g.set_outputs([s, r])
    return g.verify()


def _nodes(g: Graph):
    return g.nodes  # add, relu, reduce_sum


def test_valid_graphs_verify():
    g = build()
    assert g.verify() is g  # verify returns the graph, for chaining
    nc.trace(lambda a: (a * 2).sum(axis=0), np.ones((2, 2), np.float32)).verify()
    Graph("empty").verify()


def _fails(g: Graph, match: str) -> str:
    with pytest.raises(nc.GraphError, match=match) as info:
        g.verify()
    return str(info.value)


def test_unknown_op():
    g = build()
    g.nodes[1].op = "relu6"
    msg = _fails(g, "unknown op 'relu6'")
    assert g.nodes[1].name in msg


def test_dropped_input():
    g = build()
    add = g.nodes[0]
    add.inputs = add.inputs[:1]
    _fails(g, f"node {add.name} \\(add\\).*expects 2 inputs, got 1")


def test_extra_input():
    g = build()
    relu = g.nodes[1]
    relu.inputs = relu.inputs + (g.inputs[0],)
    _fails(g, "expects 1 inputs, got 2")


def test_use_before_definition():
    g = build()
    add, relu, red = g.nodes
    # add now reads relu's output, defined after it (and derived from it: a cycle).
    add.inputs = (relu.output, g.inputs[1])
    _fails(g, f"node {add.name} .*input 0 %{relu.output.name} is not defined before use")


def test_self_loop():
    g = build()
    relu = g.nodes[1]
    relu.inputs = (relu.output,)
    _fails(g, "not defined before use")


def test_nodes_out_of_order():
    g = build()
    g.nodes.reverse()
    _fails(g, "not defined before use")


def test_value_from_another_graph_is_dangling():
    g = build()
    other = Graph("other")
    # Same name and type as g's input, but a different value: still dangling.
    foreign = other.add_input(TensorType((2, 3), float32), "x")
    g.nodes[0].inputs = (foreign, g.inputs[1])
    _fails(g, "input 0 %x is not defined before use")


def test_input_removed_from_graph_is_dangling():
    g = build()
    g.inputs.pop(1)
    _fails(g, "input 1 %y is not defined before use")


def test_node_removed_from_graph_leaves_dangling_reader():
    g = build()
    del g.nodes[1]
    _fails(g, "not defined before use")


@pytest.mark.parametrize(
    "new_type, recorded",
    [
        (TensorType((2, 4), float32), r"float32\[2,4\]"),
        (TensorType((2, 3), float64), r"float64\[2,3\]"),
        (TensorType((6,), float32), r"float32\[6\]"),
        (TensorType((), float32), r"float32\[\]"),
    ],
)
def test_wrong_recorded_output_type(new_type, recorded):
    g = build()
    relu = g.nodes[1]
    relu.outputs[0].type = new_type
    _fails(
        g, f"output %{relu.output.name} is recorded as {recorded} but the op gives float32\\[2,3\\]"
    )


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda n: n.attrs.update(axes=[1]), "not in canonical form"),  # list, not tuple
        (lambda n: n.attrs.pop("keepdims"), "missing required attribute 'keepdims'"),
        (lambda n: n.attrs.update(keepdims="no"), "'keepdims' must be a bool"),
        (lambda n: n.attrs.update(axes=(5,)), "axis 5 is out of range"),
        (lambda n: n.attrs.update(alpha=1.0), "unknown attribute"),
        (lambda n: n.attrs.update(keepdims=True), "recorded as float32\\[2\\] but the op gives"),
    ],
)
def test_bad_attributes(edit, match):
    g = build()
    red = g.nodes[2]
    edit(red)
    _fails(g, match)


def test_numpy_scalar_attributes_are_not_canonical():
    # add_node stores Python ints; a NumPy int compares equal but breaks to_json().
    g = build()
    g.nodes[2].attrs["axes"] = (np.int64(1),)
    _fails(g, "not in canonical form")


def test_omitted_default_attribute_is_not_canonical():
    g = Graph()
    x = g.add_input(TensorType((1, 1, 4, 4), float32), "x")
    w = g.add_input(TensorType((1, 1, 3, 3), float32), "w")
    conv = g.add_node("conv2d", [x, w])
    g.verify()
    del conv.attrs["strides"]
    _fails(g, "not in canonical form")


def test_dtype_attribute_must_be_a_dtype_object():
    g = Graph()
    x = g.add_input(TensorType((2,), float32), "x")
    cast = g.add_node("cast", [x], {"to": int32})
    g.verify()
    cast.attrs["to"] = "int32"
    _fails(g, "not in canonical form")


def test_output_not_in_graph():
    g = build()
    stray = Value(TensorType((2,), float32), "stray")
    g.set_outputs([g.outputs[0], stray])
    _fails(g, "graph output 1 %stray is not defined in the graph")


def test_output_from_another_graph():
    g = build()
    other = build()
    g.set_outputs([other.outputs[0]])
    _fails(g, "graph output 0")


def test_output_of_removed_node():
    g = build()
    g.nodes.pop()  # reduce_sum, still listed as output 0
    _fails(g, "graph output 0")


@pytest.mark.parametrize(
    "rename",
    [
        lambda g: setattr(g.inputs[1], "name", "x"),
        lambda g: setattr(g.nodes[0].outputs[0], "name", "y"),
        lambda g: setattr(g.nodes[2].outputs[0], "name", g.nodes[1].outputs[0].name),
    ],
    ids=["input-input", "input-output", "output-output"],
)
def test_duplicate_value_names(rename):
    g = build()
    rename(g)
    _fails(g, "duplicate value name")


def test_same_input_listed_twice():
    g = build()
    g.inputs.append(g.inputs[0])
    _fails(g, "duplicate value name 'x'")


def test_empty_value_name():
    g = build()
    g.nodes[0].outputs[0].name = ""
    _fails(g, "has no name")


def test_output_does_not_point_back_to_its_node():
    g = build()
    g.nodes[1].outputs[0].producer = g.nodes[0]
    _fails(g, "does not point back")
    g = build()
    g.nodes[1].outputs[0].index = 1
    _fails(g, "does not point back")


def test_missing_outputs():
    g = build()
    g.nodes[1].outputs = ()
    _fails(g, "has 0 outputs, op gives 1")


def test_graph_input_with_producer():
    g = build()
    g.inputs[0].producer = g.nodes[0]
    _fails(g, "graph input %x has a producer")


def test_graph_input_with_bad_shape():
    g = build()
    g.inputs[0].type = TensorType((2, -3), float32)
    _fails(g, "non-negative")


def test_inference_errors_become_graph_errors():
    # A shape problem inside a stored graph is a broken graph, reported as GraphError.
    g = build()
    g.inputs[1].type = TensorType((4,), float32)
    msg = _fails(g, "do not broadcast")
    assert g.nodes[0].name in msg


def test_tensor_type_normalizes_numpy_dtypes():
    # TensorType accepts anything dtype-like and stores the IR's DType.
    assert TensorType((2, 3), np.float32) == TensorType((2, 3), nc.float32)
    g = build()
    g.inputs[0].type = TensorType((2, 3), np.float32)
    g.verify()


def test_graph_input_with_non_tensor_type():
    g = build()
    g.inputs[0].type = ((2, 3), "float32")
    with pytest.raises(nc.GraphError):
        g.verify()
