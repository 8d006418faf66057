"""Hostile and broken ONNX files: each is refused with one of nncompile's errors naming
the problem (SerializationError, ShapeError, UnsupportedError), never a crash of another
type, and nothing is allocated beyond the file's own size on the way."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper  # noqa: E402

import nncompile as nc  # noqa: E402
from nncompile.errors import SerializationError, ShapeError  # noqa: E402
from nncompile.onnx import UnsupportedError  # noqa: E402

BIG = 10**12
PEAK_LIMIT = 64 << 20  # bytes; every model here is a few hundred bytes


def model(nodes, inputs=(), outputs=("y",), initializers=(), opset=17, **kw):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kw)


def refused(source, error, match, call=None):
    """Loading ``source`` (and calling it with ``call``'s inputs) raises ``error``
    matching ``match``, with a small allocation peak."""
    tracemalloc.start()
    try:
        with pytest.raises(error, match=match):
            f = nc.onnx.load(source)
            if call is not None:
                f(*call)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, peak


def identity_model(**kw):
    return model([helper.make_node("Identity", ["x"], ["y"])], inputs=[("x", [2])], **kw)


def test_truncated_and_garbage_files(tmp_path):
    data = identity_model().SerializeToString()
    refused(data[: len(data) // 2], SerializationError, "not a readable ONNX model")
    refused(b"\xff" * 64, SerializationError, "not a readable ONNX model")
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:-3])
    refused(str(path), SerializationError, "cut.onnx")
    refused(str(tmp_path / "missing.onnx"), SerializationError, "no ONNX model file")
    refused(12, SerializationError, "path, bytes or onnx.ModelProto")


def weight(name, dims, **fields):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    for key, value in fields.items():
        if key == "raw_data":
            t.raw_data = value
        else:
            getattr(t, key).extend(value)
    return t


def with_weight(t):
    return model([helper.make_node("Identity", [t.name], ["y"])], initializers=[t])


@pytest.mark.parametrize(
    "tensor, match",
    [
        (weight("w", [BIG, BIG], raw_data=b"\0" * 16), "needs .* bytes of data, the file holds 16"),
        (weight("w", [3], raw_data=b"\0" * 8), "needs 12 bytes"),
        (weight("w", [4, 4], float_data=[1.0, 2.0]), "needs 16 values, the file holds 2"),
        (weight("w", [BIG], float_data=[1.0]), f"needs {BIG} values"),
        (weight("w", [2, -3], float_data=[1.0] * 6), "negative dimension"),
    ],
)
def test_initializers_whose_data_does_not_match_their_shape(tensor, match):
    refused(with_weight(tensor), SerializationError, match)


def test_typed_int64_field_sizes_are_checked():
    t = TensorProto(name="s", data_type=TensorProto.INT64, dims=[BIG])
    t.int64_data.extend([1, 2])
    m = model([helper.make_node("Reshape", ["x", "s"], ["y"])], inputs=[("x", [2])])
    m.graph.initializer.append(t)
    refused(m, SerializationError, "needs 1000000000000 values, the file holds 2")


def test_a_constant_attribute_with_a_bad_tensor_is_refused():
    bad = weight("", [BIG], float_data=[0.0])
    m = model([helper.make_node("Constant", [], ["y"], value=bad)])
    refused(m, SerializationError, "needs 1000000000000 values")
    with pytest.raises(SerializationError, match="needs 1000000000000 values"):
        nc.onnx.check(m)


def test_cycles_undefined_inputs_and_duplicate_names():
    cycle = model(
        [helper.make_node("Identity", ["b"], ["a"]), helper.make_node("Identity", ["a"], ["b"])],
        outputs=("a",),
    )
    refused(cycle, SerializationError, "cycle")
    undefined = model([helper.make_node("Identity", ["nowhere"], ["y"])])
    refused(undefined, SerializationError, "reads 'nowhere', which nothing defines")
    twice = model(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Identity", ["x"], ["y"])],
        inputs=[("x", [2])],
    )
    refused(twice, SerializationError, "'y' is defined twice")
    shadow = model([helper.make_node("Identity", ["x"], ["x"])], inputs=[("x", [2])])
    refused(shadow, SerializationError, "'x' is defined twice")
    both = with_weight(weight("w", [1], float_data=[1.0]))
    both.graph.initializer.append(weight("w", [1], float_data=[2.0]))
    refused(both, SerializationError, "initializer 'w' is given twice")
    inputs_twice = model(
        [helper.make_node("Identity", ["x"], ["y"])], inputs=[("x", [2]), ("x", [3])]
    )
    refused(inputs_twice, SerializationError, "graph input 'x' is declared twice")


def test_unknown_domains_and_opsets():
    foreign = model([helper.make_node("Gelu", ["x"], ["y"], domain="com.example")], [("x", [2])])
    refused(foreign, UnsupportedError, "domain 'com.example'")
    refused(identity_model(opset=5), UnsupportedError, "older than the oldest supported")
    none = identity_model()
    del none.opset_import[:]
    refused(none, UnsupportedError, "imports no version of the default ONNX domain")
    unknown = model([helper.make_node("NoSuchOp", ["x"], ["y"])], [("x", [2])])
    refused(unknown, UnsupportedError, "op NoSuchOp")


def ints(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


@pytest.mark.parametrize(
    "nodes, initializers",
    [
        ([helper.make_node("ConstantOfShape", ["s"], ["y"])], [ints("s", [BIG, BIG])]),
        ([helper.make_node("Expand", ["one", "s"], ["y"])], [ints("s", [BIG]), ints("one", [1])]),
        ([helper.make_node("Tile", ["one", "s"], ["y"])], [ints("s", [BIG]), ints("one", [1])]),
        (
            [helper.make_node("Range", ["a", "b", "c"], ["y"])],
            [
                helper.make_tensor(n, TensorProto.INT64, [], [v])
                for n, v in (("a", 0), ("b", BIG), ("c", 1))
            ],
        ),
    ],
    ids=["ConstantOfShape", "Expand", "Tile", "Range"],
)
def test_huge_constant_sizes_are_refused_before_allocating(nodes, initializers):
    refused(model(nodes, initializers=initializers), ShapeError, "would make an", call=())


@pytest.mark.parametrize("op", ["Expand", "Tile"])
def test_huge_constant_sizes_applied_to_an_input_are_refused(op):
    nodes = [helper.make_node(op, ["x", "s"], ["y"])]
    m = model(nodes, [("x", [1])], initializers=[ints("s", [BIG])])
    refused(m, ShapeError, "would make an array of", call=[np.ones(1, np.float32)])
    report = nc.onnx.check(m)
    assert not report.supported and "would make an array of" in report.nodes[0].reason


def test_huge_declared_input_shapes_allocate_nothing():
    m = model([helper.make_node("Identity", ["x"], ["y"])], inputs=[("x", [BIG, 8])])
    tracemalloc.start()
    try:
        f = nc.onnx.load(m)
        report = nc.onnx.check(m)  # the dry run traces zero-stride inputs
        with pytest.raises(ShapeError, match="has shape"):
            f(np.ones((2, 2), np.float32))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT
    assert report.supported, str(report)
    assert f.input_specs[0].shape == (BIG, 8)
    beyond = model([helper.make_node("Identity", ["x"], ["y"])], inputs=[("x", [BIG, BIG])])
    report = nc.onnx.check(beyond)  # more elements than any array: reported, not raised
    assert not report.supported and "graph input 'x'" in report.problems[0]


def test_negative_declared_input_dims_are_refused():
    m = identity_model()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -4
    refused(m, SerializationError, "negative")


def image_model(nodes, initializers, opset=19):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


GROWING = {
    "Pad": ([helper.make_node("Pad", ["x", "p"], ["y"])], [ints("p", [0, 0, 0, BIG] + [0] * 4)]),
    "Resize": (
        [helper.make_node("Resize", ["x", "", "", "s"], ["y"])],
        [ints("s", [1, 1, BIG, 2])],
    ),
    "Resize-scales": (
        [helper.make_node("Resize", ["x", "", "s"], ["y"], name="Resize_0")],
        [helper.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 1e6, 1e6])],
    ),
    "OneHot": (
        [
            helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT64),
            helper.make_node("OneHot", ["i", "d", "v"], ["y"], name="OneHot_0"),
        ],
        [ints("d", [BIG]), helper.make_tensor("v", TensorProto.FLOAT, [2], [0, 1])],
    ),
    "ConvTranspose": (
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[10**7, 10**7])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])],
    ),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("op", sorted(GROWING))
def test_ops_growing_to_sizes_from_the_file_are_refused(op, compiled):
    """Pads, sizes, scales, depths and strides that ask for terabytes: a ShapeError naming
    the node before anything is allocated (checked from the constants before converting;
    otherwise from the traced result's shape, which an eager call traces first)."""
    f = nc.onnx.load(image_model(*GROWING[op]))
    f = nc.compile(f, backend="llvm") if compiled else f
    x = np.ones((1, 1, 2, 2), np.float32)
    tracemalloc.start()
    try:
        node = op.split("-")[0]
        with pytest.raises(ShapeError, match=f"ONNX node '{node}_0'.*(memory|would make an)"):
            f(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT
