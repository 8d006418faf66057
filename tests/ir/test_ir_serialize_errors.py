"""Malformed JSON must raise SerializationError with a clear message, never anything else."""

from __future__ import annotations

import base64
import json
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nncompile.ir import Graph

import nncompile as nc


def _base(x, y):
    z = x + y
    s = nc.sum(z, axis=1, keepdims=True)
    p = nc.pad(x, 1, constant_values=float("nan"))
    c = nc.astype(x, "int32")
    w = nc.where(np.array([True, False, True]), y, 0.0)  # bool constant
    big = x @ np.zeros((3, 100), np.float32)  # a zlib-compressed constant
    return s, p, c, w, big


BASE_GRAPH = nc.trace(_base, np.ones((2, 3), np.float32), np.ones(3, np.float32))
BASE_TEXT = BASE_GRAPH.to_json()


@pytest.fixture
def doc() -> dict:
    return json.loads(BASE_TEXT)


def _load(doc_or_text) -> Graph:
    text = doc_or_text if isinstance(doc_or_text, (str, bytes)) else json.dumps(doc_or_text)
    return Graph.from_json(text)


# ---- helpers that locate parts of the document ---------------------------------------


def node(d: dict, op: str) -> dict:
    return next(n for n in d["nodes"] if n["op"] == op)


def const(d: dict, dtype: str) -> dict:
    """The array entry of the first constant of ``dtype``."""
    return next(
        n["attrs"]["value"]
        for n in d["nodes"]
        if n["op"] == "constant" and n["attrs"]["value"]["dtype"] == dtype
    )


def big(d: dict) -> dict:
    return next(n["attrs"]["value"] for n in d["nodes"] if n["outputs"][0]["shape"] == [3, 100])


def raw_bytes(entry: dict) -> bytes:
    data = base64.b64decode(entry["data"])
    return zlib.decompress(data) if entry["encoding"] == "zlib" else data


def set_data(entry: dict, raw: bytes, encoding: str = "raw") -> None:
    entry["encoding"] = encoding
    entry["data"] = base64.b64encode(raw).decode()


def make_cycle(d: dict) -> None:
    # add reads reduce_sum's output, and reduce_sum reads add's: a 2-cycle.
    node(d, "add")["inputs"][1] = node(d, "reduce_sum")["outputs"][0]["name"]
    node(d, "add")["outputs"][0]["shape"] = [2, 1]


def _base_sanity():
    d = json.loads(BASE_TEXT)
    assert _load(d).to_json() == BASE_TEXT
    assert node(d, "add")["name"] == "t0" and node(d, "reduce_sum")["name"] == "t1"
    assert const(d, "bool")["encoding"] == "raw" and big(d)["encoding"] == "zlib"


def test_base_document_loads():
    _base_sanity()
    assert issubclass(nc.SerializationError, nc.GraphError)
    assert nc.SerializationError is nc.ir.SerializationError


# Each case: (mutation of the parsed document, regex the message must contain).
CASES = [
    # envelope
    pytest.param(lambda d: d.update(format="onnx"), "not an nncompile graph", id="format-tag"),
    pytest.param(lambda d: d.pop("format"), "not an nncompile graph", id="format-missing"),
    pytest.param(lambda d: d.update(version=2), "unsupported graph version 2", id="version-2"),
    pytest.param(lambda d: d.update(version="1"), "unsupported graph version", id="version-str"),
    pytest.param(lambda d: d.update(version=True), "unsupported graph version", id="version-true"),
    pytest.param(lambda d: d.pop("version"), "unsupported graph version", id="version-missing"),
    # missing fields
    pytest.param(lambda d: d.pop("name"), "missing field 'name'", id="missing-graph-name"),
    pytest.param(lambda d: d.pop("inputs"), "missing field 'inputs'", id="missing-inputs"),
    pytest.param(lambda d: d.pop("nodes"), "missing field 'nodes'", id="missing-nodes"),
    pytest.param(lambda d: d.pop("outputs"), "missing field 'outputs'", id="missing-outputs"),
    pytest.param(lambda d: node(d, "add").pop("op"), "missing field 'op'", id="missing-op"),
    pytest.param(
        lambda d: node(d, "add").pop("name"), "missing field 'name'", id="missing-node-name"
    ),
    pytest.param(
        lambda d: node(d, "add").pop("inputs"), "missing field 'inputs'", id="missing-node-in"
    ),
    pytest.param(
        lambda d: node(d, "add").pop("outputs"), "missing field 'outputs'", id="missing-node-out"
    ),
    pytest.param(
        lambda d: node(d, "add")["outputs"][0].pop("name"),
        "missing field 'name'",
        id="missing-out-name",
    ),
    pytest.param(
        lambda d: node(d, "add")["outputs"][0].pop("dtype"),
        "missing field 'dtype'",
        id="missing-out-dtype",
    ),
    pytest.param(
        lambda d: d["inputs"][0].pop("shape"), "missing field 'shape'", id="missing-in-shape"
    ),
    pytest.param(
        lambda d: d["inputs"][0].pop("dtype"), "missing field 'dtype'", id="missing-in-dtype"
    ),
    pytest.param(
        lambda d: node(d, "reduce_sum")["attrs"].pop("axes"),
        "missing required attribute 'axes'",
        id="missing-attr",
    ),
    # wrong field types
    pytest.param(lambda d: d.update(name=7), "field 'name' has the wrong type", id="name-int"),
    pytest.param(
        lambda d: d.update(inputs={}), "field 'inputs' has the wrong type", id="inputs-dict"
    ),
    pytest.param(
        lambda d: d.update(nodes="t0"), "field 'nodes' has the wrong type", id="nodes-str"
    ),
    pytest.param(lambda d: d["nodes"].insert(0, 5), "missing field", id="node-not-object"),
    pytest.param(
        lambda d: node(d, "add").update(op=None), "field 'op' has the wrong type", id="op-null"
    ),
    pytest.param(
        lambda d: node(d, "add").update(name=True),
        "field 'name' has the wrong type",
        id="name-bool",
    ),
    pytest.param(
        lambda d: node(d, "add").update(inputs="x"),
        "field 'inputs' has the wrong type",
        id="node-in-str",
    ),
    pytest.param(
        lambda d: node(d, "add")["inputs"].__setitem__(1, 0),
        "input 1 is not a value name",
        id="in-int",
    ),
    pytest.param(
        lambda d: node(d, "add").update(outputs={}),
        "field 'outputs' has the wrong type",
        id="outs-dict",
    ),
    pytest.param(
        lambda d: node(d, "add").update(attrs=[]), "attrs must be an object", id="attrs-list"
    ),
    pytest.param(
        lambda d: node(d, "add").update(loc=3), "loc must be a string or null", id="loc-int"
    ),
    pytest.param(
        lambda d: d["inputs"][0].update(shape="2,3"),
        "field 'shape' has the wrong type",
        id="shape-str",
    ),
    pytest.param(
        lambda d: d["inputs"][0].update(dtype=32),
        "field 'dtype' has the wrong type",
        id="dtype-int",
    ),
    pytest.param(
        lambda d: d["outputs"].__setitem__(0, 1), "graph output 0 names undefined", id="output-int"
    ),
    # ops, arity, attributes
    pytest.param(lambda d: node(d, "add").update(op="addd"), "unknown op 'addd'", id="unknown-op"),
    pytest.param(
        lambda d: node(d, "add")["inputs"].pop(), "expects 2 inputs, got 1", id="too-few-inputs"
    ),
    pytest.param(
        lambda d: node(d, "add")["inputs"].append("x"),
        "expects 2 inputs, got 3",
        id="too-many-inputs",
    ),
    pytest.param(
        lambda d: node(d, "add")["attrs"].update(alpha=1), "unknown attribute", id="unknown-attr"
    ),
    pytest.param(
        lambda d: node(d, "reduce_sum")["attrs"].update(axes="1"),
        "'axes' must be a list of ints",
        id="ints-str",
    ),
    pytest.param(
        lambda d: node(d, "reduce_sum")["attrs"].update(axes=[1.0]),
        "'axes' must be a list of ints",
        id="ints-f",
    ),
    pytest.param(
        lambda d: node(d, "reduce_sum")["attrs"].update(keepdims=1),
        "'keepdims' must be a bool",
        id="bool-int",
    ),
    pytest.param(
        lambda d: node(d, "pad")["attrs"].update(value="nan"),
        "'value' must be a number",
        id="float-str",
    ),
    pytest.param(
        lambda d: node(d, "pad")["attrs"].update(value=True),
        "'value' must be a number",
        id="float-bool",
    ),
    pytest.param(
        lambda d: node(d, "pad")["attrs"].update(mode="wrap"),
        "'mode' must be one of",
        id="str-choice",
    ),
    pytest.param(
        lambda d: node(d, "cast")["attrs"].update(to="float16"),
        "'to' must be a dtype",
        id="dtype-attr",
    ),
    pytest.param(
        lambda d: node(d, "cast")["attrs"].update(to=[1]),
        "'to' must be a dtype",
        id="dtype-attr-list",
    ),
    pytest.param(
        lambda d: node(d, "constant")["attrs"].update(value=[True, False, True]),
        "an array needs exactly dtype, shape, encoding, data",
        id="array-attr-list",
    ),
    pytest.param(
        lambda d: const(d, "bool").update(extra=1), "an array needs exactly", id="array-extra-key"
    ),
    pytest.param(
        lambda d: const(d, "bool").pop("encoding"), "an array needs exactly", id="array-no-enc"
    ),
    pytest.param(
        lambda d: const(d, "bool").update(encoding="gzip"),
        "unknown encoding 'gzip'",
        id="array-unknown-enc",
    ),
    # graph structure
    pytest.param(make_cycle, r"cycle: (t0 -> t1 -> t0|t1 -> t0 -> t1)", id="cycle"),
    pytest.param(
        lambda d: node(d, "add")["inputs"].__setitem__(1, "t0"), "cycle: t0 -> t0", id="self-loop"
    ),
    pytest.param(
        lambda d: node(d, "add")["inputs"].__setitem__(1, "ghost"),
        "node 't0' reads undefined value 'ghost'",
        id="dangling",
    ),
    pytest.param(
        lambda d: d["outputs"].append("ghost"),
        "names undefined value 'ghost'",
        id="output-dangling",
    ),
    pytest.param(
        lambda d: d["inputs"][1].update(name="x"), "duplicate value name 'x'", id="dup-inputs"
    ),
    pytest.param(
        lambda d: node(d, "add")["outputs"][0].update(name="y"),
        "duplicate value name 'y'",
        id="dup-in-out",
    ),
    pytest.param(
        lambda d: node(d, "cast")["outputs"][0].update(name="t1"),
        "duplicate value name 't1'",
        id="dup-outs",
    ),
    pytest.param(
        lambda d: node(d, "cast").update(name="x"), "duplicate value name 'x'", id="dup-node-name"
    ),
    # shapes and dtypes
    pytest.param(
        lambda d: d["inputs"][0].update(shape=[-2, 3]), "non-negative ints", id="shape-negative"
    ),
    pytest.param(
        lambda d: d["inputs"][0].update(shape=[2.0, 3]), "non-negative ints", id="shape-float"
    ),
    pytest.param(
        lambda d: d["inputs"][0].update(shape=["2", 3]), "non-negative ints", id="shape-str-dim"
    ),
    pytest.param(
        lambda d: d["inputs"][0].update(shape=[True, 3]), "non-negative ints", id="shape-bool"
    ),
    pytest.param(
        lambda d: d["inputs"][0].update(shape=[None, 3]), "non-negative ints", id="shape-null"
    ),
    pytest.param(
        lambda d: node(d, "add")["outputs"][0].update(shape=[2, 4]),
        r"output 't0' is recorded as float32\[2,4\] but the op gives float32\[2,3\]",
        id="recorded-shape",
    ),
    pytest.param(
        lambda d: node(d, "add")["outputs"][0].update(dtype="float64"),
        "recorded as float64",
        id="recorded-dtype",
    ),
    pytest.param(
        lambda d: d["inputs"][0].update(shape=[2, 4]), "do not broadcast", id="input-shape"
    ),
    pytest.param(
        lambda d: d["inputs"][0].update(dtype="float16"),
        "unknown dtype name 'float16'",
        id="dtype16",
    ),
    pytest.param(
        lambda d: d["inputs"][0].update(dtype="f4"), "unknown dtype name 'f4'", id="dtype-alias"
    ),
    pytest.param(
        lambda d: node(d, "add")["outputs"][0].update(dtype="complex64"),
        "unknown dtype",
        id="out-dtype",
    ),
    pytest.param(
        lambda d: const(d, "bool").update(dtype="uint8"),
        "unknown dtype name 'uint8'",
        id="const-u8",
    ),
    pytest.param(
        lambda d: const(d, "bool").update(shape=[-3]), "non-negative ints", id="const-shape-neg"
    ),
    pytest.param(
        lambda d: const(d, "bool").update(shape=[2**40]), "too large", id="const-too-large"
    ),
    # constant data
    pytest.param(
        lambda d: const(d, "bool").update(data="!!!!"), "not valid base64", id="b64-chars"
    ),
    pytest.param(
        lambda d: const(d, "bool").update(data="AQAB\u00e9"), "not valid base64", id="b64-unicode"
    ),
    pytest.param(
        lambda d: const(d, "bool").update(data="AQA"), "not valid base64", id="b64-padding"
    ),
    pytest.param(lambda d: const(d, "bool").update(data=[1, 0, 1]), "base64 string", id="b64-list"),
    pytest.param(
        lambda d: set_data(const(d, "bool"), b"\x01\x00"),
        r"2 data bytes .*\(3 expected\)",
        id="truncated",
    ),
    pytest.param(
        lambda d: set_data(const(d, "bool"), b"\x01\x00\x01\x00"),
        r"4 data bytes",
        id="too-many-bytes",
    ),
    pytest.param(
        lambda d: set_data(const(d, "float32"), b"\x00\x00\x80"),
        r"3 data bytes",
        id="truncated-f32",
    ),
    pytest.param(
        lambda d: set_data(const(d, "bool"), b"\x01\x02\x01"),
        "bool data must be bytes 0 or 1",
        id="bool-2",
    ),
    pytest.param(
        lambda d: set_data(const(d, "bool"), b"\x01\x00\xff"),
        "bool data must be bytes 0 or 1",
        id="bool-ff",
    ),
    pytest.param(
        lambda d: set_data(big(d), zlib.compress(bytes(1201)), "zlib"),
        r"1201 data bytes .*\(1200 expected\)",
        id="zlib-too-long",
    ),
    pytest.param(
        lambda d: set_data(big(d), zlib.compress(bytes(10**7)), "zlib"),
        r"1201 data bytes",  # inflation stops one byte past the declared size
        id="zlib-bomb",
    ),
    pytest.param(
        lambda d: set_data(big(d), zlib.compress(bytes(1199)), "zlib"),
        r"1199 data bytes",
        id="zlib-short",
    ),
    pytest.param(
        lambda d: set_data(big(d), zlib.compress(bytes(1200))[:-6], "zlib"),
        "data bytes",
        id="zlib-truncated-stream",
    ),
    pytest.param(
        lambda d: set_data(big(d), b"not zlib at all", "zlib"),
        "corrupt zlib data",
        id="zlib-garbage",
    ),
    pytest.param(
        lambda d: (
            set_data(big(d), raw_bytes(big(d)), "raw")
            or node(d, "matmul")["outputs"][0].update(shape=[2, 99])
        ),
        "recorded as",
        id="raw-ok-but-recorded-shape",
    ),
]


@pytest.mark.parametrize("mutate, match", CASES)
def test_malformed_document_raises_serialization_error(doc, mutate, match):
    mutate(doc)
    with pytest.raises(nc.SerializationError, match=match):
        _load(doc)


def test_node_errors_name_the_node(doc):
    node(doc, "pad")["attrs"]["mode"] = "wrap"
    with pytest.raises(nc.SerializationError) as info:
        _load(doc)
    assert "node 't2' (pad)" in str(info.value)


def test_cycle_message_names_every_node_on_the_cycle():
    g = Graph("c")
    x = g.add_input(nc.ir.TensorType((2,), nc.float32), "x")
    a = g.add_node("neg", [x], name="first").output
    b = g.add_node("relu", [a], name="second").output
    c = g.add_node("abs", [b], name="third").output
    g.set_outputs([c])
    d = json.loads(g.to_json())
    d["nodes"][0]["inputs"] = ["third"]
    with pytest.raises(nc.SerializationError, match="cycle") as info:
        _load(d)
    msg = str(info.value)
    assert all(name in msg for name in ("first", "second", "third"))


def test_nodes_out_of_order_but_acyclic_still_load(doc):
    # Definition order in the file does not matter as long as there is no cycle.
    doc["nodes"].reverse()
    g = _load(doc)
    assert {n.name for n in g.nodes} == {n.name for n in BASE_GRAPH.nodes}
    x, y = np.ones((2, 3), np.float32), np.arange(3, dtype=np.float32)
    for a, b in zip(nc.run(g, x, y), nc.run(BASE_GRAPH, x, y), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "nncompile",
        "{'format': 'nncompile.graph'}",
        "[]",
        "null",
        "42",
        '"nncompile.graph"',
        b"\xff\xfe\x00\x01",
        BASE_TEXT[: len(BASE_TEXT) // 2],
        BASE_TEXT + "}",
    ],
)
def test_not_a_graph_document(text):
    with pytest.raises(nc.SerializationError, match="not valid JSON|not an nncompile graph"):
        Graph.from_json(text)


# ---- inputs that currently escape as other exception types -------------------------------


def test_deeply_nested_json_is_a_serialization_error():
    with pytest.raises(nc.SerializationError):
        Graph.from_json("[" * 100_000 + "]" * 100_000)


def test_empty_value_name_is_a_serialization_error(doc):
    node(doc, "add")["outputs"][0]["name"] = ""
    node(doc, "reduce_sum")["inputs"] = [""]
    with pytest.raises(nc.SerializationError):
        _load(doc)


@pytest.mark.parametrize("shape", [[0, 10**30], [0, 2**62, 2**62]])
def test_zero_size_constant_with_huge_dims_is_a_serialization_error(shape):
    d = json.loads(nc.trace(lambda: np.zeros((0, 3), np.float32)).to_json())
    d["nodes"][0]["attrs"]["value"]["shape"] = shape
    d["nodes"][0]["outputs"][0]["shape"] = shape
    with pytest.raises(nc.SerializationError):
        _load(d)


def test_empty_names_are_not_silently_renamed(doc):
    # Loading must either keep the names in the file or reject them.
    node(doc, "add")["name"] = ""
    try:
        g = _load(doc)
    except nc.SerializationError:
        return
    assert json.loads(g.to_json())["nodes"][0]["name"] == ""


# ---- fuzzing -----------------------------------------------------------------------------


def _load_or_reject(data: str | bytes) -> None:
    try:
        g = Graph.from_json(data)
    except nc.SerializationError:
        return
    # Whatever loads is a valid graph that round-trips stably.
    g.verify()
    text = g.to_json()
    assert Graph.from_json(text).to_json() == text


_BASE_BYTES = BASE_TEXT.encode()


_KINDS = ["token"] * 6 + ["flip", "set", "delete", "insert", "truncate", "dup"]
_ALNUM = list(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/")


@st.composite
def byte_mutations(draw) -> bytes:
    data = bytearray(_BASE_BYTES)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(_KINDS))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "token" and data and chr(data[i]).isalnum():
            # Swap a letter or digit for another: the JSON usually stays well formed, so
            # these reach the validation of names, numbers and base64 data.
            data[i] = draw(st.sampled_from(_ALNUM))
        elif kind == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            # Mostly JSON-ish characters, so mutations often still parse.
            data[i] = draw(
                st.sampled_from(list(b'0123456789-.,:[]{}"etnrfalsuNI ')) | st.integers(0, 255)
            )
        elif kind == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "truncate":
            del data[i:]
        elif kind == "dup":
            data[i:i] = data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(byte_mutations())
def test_fuzz_byte_mutations(data):
    _load_or_reject(data)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return
    _load_or_reject(text)


def _paths(x, prefix=()):
    yield prefix
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _paths(v, prefix + (i,))


_BASE_PATHS = [p for p in _paths(json.loads(BASE_TEXT)) if p]
_NASTY = st.sampled_from(
    [None, True, False, 0, 1, -1, 2, 1.5, float("nan"), 2**70, "", "x", "t0", [], {}, [0], [-1]]
)


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.sampled_from(_BASE_PATHS), _NASTY), min_size=1, max_size=3))
def test_fuzz_structural_mutations(edits):
    d = json.loads(BASE_TEXT)
    for path, value in edits:
        target = d
        try:
            for k in path[:-1]:
                target = target[k]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this path
    _load_or_reject(json.dumps(d))
