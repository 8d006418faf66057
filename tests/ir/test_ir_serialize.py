"""JSON round trips are exact: same text, same printed form, same results when run."""

from __future__ import annotations

import json
import math
import struct

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nncompile.ir import Graph, TensorType, float32
from nncompile.ir.serialize import decode_array, encode_array

import nncompile as nc

NAN, INF = float("nan"), float("inf")
rng = np.random.default_rng(1234)


def _leaves(x) -> list[np.ndarray]:
    if isinstance(x, dict):
        return [a for k in x for a in _leaves(x[k])]
    if isinstance(x, (list, tuple)):
        return [a for c in x for a in _leaves(c)]
    return [x]


def _assert_identical(a, b) -> None:
    """Bit-identical results, NaN payloads included."""
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
        assert (x.dtype, x.shape) == (y.dtype, y.shape)
        assert x.tobytes() == y.tobytes()


def _round_trip(g: Graph) -> Graph:
    text = g.to_json()
    g2 = Graph.from_json(text)
    assert g2.to_json() == text
    assert str(g2) == str(g)
    assert Graph.from_json(g.to_json(indent=2)).to_json() == text  # whitespace is irrelevant
    assert Graph.from_json(text.encode()).to_json() == text  # bytes are accepted too
    return g2


# ---- traced graphs -----------------------------------------------------------------------


def elementwise(x, y):
    a = nc.exp(x) * y - 1.5
    b = nc.where(x > y, a, -x)
    c = nc.maximum(nc.tanh(b), nc.sigmoid(x)) / (nc.abs(y) + 1)
    d = nc.power(c, 2) + nc.sqrt(nc.abs(x)) + nc.log(nc.abs(x) + 1) + nc.erf(x)
    d = nc.minimum(d, nc.reciprocal(y + 3)) + nc.sign(x) - nc.relu(-x)
    m = nc.logical_xor(x > 0, ~(y < 0.5)) | (x == y) & (x != 0) | (x <= y) | (x >= 1)
    i = nc.trunc_divide(nc.astype(x * 10, "int32"), 3)
    return {"d": d, "m": m, "i": i, "f64": nc.astype(x, "float64") ** 0.5}


def reductions(x):
    return (
        x.sum(),
        x.mean(axis=(0, 2)),
        x.max(axis=1, keepdims=True),
        x.min(axis=-1),
        x.argmax(axis=2),
        x.argmin(),
        nc.sum(x > 0, axis=0),
        nc.logsumexp(x, axis=1),
    )


def convolutions(x, w, b):
    y = nc.conv2d(x, w, b, stride=2, padding=1, groups=2)
    z = nc.conv2d(x, w[:, :, :2, :], padding="same", dilation=(2, 1), groups=2)
    return [
        nc.max_pool2d(y, 2),
        nc.avg_pool2d(z, 3, stride=1, padding=1, count_include_pad=False),
        nc.max_pool2d(z, (2, 3), stride=(1, 2), dilation=(1, 2)),
    ]


def movement(x, idx):
    return [
        x.reshape(4, 3).T,
        nc.pad(x, ((1, 0), (0, 2)), constant_values=NAN),
        nc.pad(x, 1, constant_values=-0.0),
        nc.pad(x, 2, constant_values=-INF),
        nc.pad(x, ((0, 1), (2, 0)), mode="reflect"),
        nc.pad(x, 1, mode="edge"),
        nc.concatenate([x, x[::-1, 1:3]], axis=1),
        nc.stack([x, x], axis=-1),
        nc.take(x, idx, axis=1),
        nc.one_hot(idx, 5, dtype="int32", axis=0),
        nc.take_along_axis(x, np.zeros((3, 1), np.int64), axis=1),
        nc.broadcast_to(x[:, :1], (2, 3, 4)),
        nc.squeeze(nc.expand_dims(x, 0)),
        x[1, ::-2],
        x[None, ..., -1],
    ]


def constants(x):
    # Every dtype, IEEE specials, extremes, 0-d and zero-size arrays.
    f32 = np.array([NAN, INF, -INF, -0.0, 0.0, 1e-45, 3.4e38, -1.5], np.float32)
    f64 = np.array([NAN, INF, -INF, -0.0, 5e-324, 1.7976931348623157e308, math.pi])
    return {
        "f32": f32,
        "f64": f64,
        "neg_nan": np.array([np.copysign(NAN, -1.0)], np.float32),
        "i32": np.array([-(2**31), 2**31 - 1, 0, -1], np.int32),
        "i64": np.array([-(2**63), 2**63 - 1, 0, -1], np.int64),
        "bool": np.array([[True, False, True], [False, False, True]]),
        "scalar": np.float32(2.5),
        "bool0d": np.bool_(True),
        "empty_i64": np.zeros((0, 3), np.int64),
        "empty_bool": np.zeros((2, 0, 1), bool),
        "empty_f64": np.zeros((0,), np.float64),
        "used": x * f32[:3] + f32[3],
    }


def large_constants(x):
    w = rng.standard_normal((300, 300)).astype(np.float32)
    zeros = np.zeros((1, 300), np.float32)
    ints = np.arange(5000, dtype=np.int64)
    return x @ w + zeros, ints


CASES = {
    "elementwise": (
        elementwise,
        (rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)),
    ),
    "reductions": (reductions, (rng.standard_normal((2, 3, 4)).astype(np.float32),)),
    "convolutions": (
        convolutions,
        (
            rng.standard_normal((2, 4, 9, 9)).astype(np.float32),
            rng.standard_normal((6, 2, 3, 3)).astype(np.float32),
            rng.standard_normal(6).astype(np.float32),
        ),
    ),
    "movement": (
        movement,
        (rng.standard_normal((3, 4)).astype(np.float32), np.array([0, 2, -1, 1, -3], np.int64)),
    ),
    "constants": (constants, (np.ones(3, np.float32),)),
    "large_constants": (large_constants, (rng.standard_normal((2, 300)).astype(np.float32),)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_traced_graph_round_trip_is_exact(case):
    fn, args = CASES[case]
    g = nc.trace(fn, *args)
    g2 = _round_trip(g)
    assert g2.in_tree == g.in_tree and g2.out_tree == g.out_tree
    assert [n.loc for n in g2.nodes] == [n.loc for n in g.nodes]
    _assert_identical(nc.run(g2, *args), nc.run(g, *args))


def test_constants_keep_every_bit():
    g = nc.trace(constants, np.ones(3, np.float32))
    g2 = Graph.from_json(g.to_json())
    for n, n2 in zip(g.nodes, g2.nodes, strict=True):
        if n.op == "constant":
            a, b = n.attrs["value"], n2.attrs["value"]
            assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes())
    out = nc.run(g2, np.ones(3, np.float32))
    assert np.signbit(out["f32"][3]) and np.signbit(out["neg_nan"][0])
    assert out["bool0d"].shape == () and out["bool0d"].dtype == bool
    assert out["empty_bool"].shape == (2, 0, 1)


def test_float_attributes_keep_nan_inf_and_negative_zero():
    g = nc.trace(movement, *CASES["movement"][1])
    g2 = Graph.from_json(g.to_json())
    values = [n.attrs["value"] for n in g2.nodes if n.op == "pad" and n.attrs["mode"] == "constant"]
    assert math.isnan(values[0])
    assert values[1] == 0.0 and math.copysign(1.0, values[1]) == -1.0
    assert values[2] == -INF


def _constant_entries(g: Graph) -> list[dict]:
    doc = json.loads(g.to_json())
    return [n["attrs"]["value"] for n in doc["nodes"] if n["op"] == "constant"]


def test_large_constants_are_compressed_and_compact():
    g = nc.trace(lambda: np.zeros(100_000, np.float32))
    text = g.to_json()
    (entry,) = _constant_entries(g)
    assert entry["encoding"] == "zlib"
    # Decimal text would be at least "0.0, " per element; base64 of raw bytes ~533 kB.
    assert len(text) < 5_000
    out = nc.run(Graph.from_json(text))
    assert out.shape == (100_000,) and out.dtype == np.float32 and not out.any()


def test_incompressible_and_small_constants_stay_raw():
    noise = np.frombuffer(rng.bytes(4000), np.int32).copy()
    g = nc.trace(lambda: (noise, np.arange(8, dtype=np.float64)))
    entries = _constant_entries(g)
    assert [e["encoding"] for e in entries] == ["raw", "raw"]
    # Raw base64 costs 4/3 of the bytes: still far below decimal text of the values.
    assert len(g.to_json()) < 4000 * 4 / 3 + 1000 < len(json.dumps(noise.tolist()))
    _assert_identical(nc.run(Graph.from_json(g.to_json())), nc.run(g))


def test_hand_built_graph_round_trip_keeps_names_and_order():
    g = Graph("hand")
    x = g.add_input(TensorType((2, 3), float32), "input.0")
    a = g.add_node("relu", [x], name="act", output_names=["h"]).output
    b = g.add_node("reduce_max", [a], {"axes": (), "keepdims": False}, name="noop").output
    g.set_outputs([b, x, b])
    g2 = _round_trip(g)
    assert [n.name for n in g2.nodes] == ["act", "noop"]
    assert [v.name for v in g2.outputs] == ["noop", "input.0", "noop"]
    assert g2.outputs[0] is g2.outputs[2]
    assert g2.in_tree is None and g2.out_tree is None


# ---- properties ------------------------------------------------------------------------

_DTYPES = st.sampled_from(["float32", "float64", "int32", "int64", "bool"])


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(
        dtype=_DTYPES.map(np.dtype),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12),
    )
)
def test_array_encoding_is_exact(a):
    entry = json.loads(json.dumps(encode_array(a)))
    assert entry["encoding"] in ("raw", "zlib")
    b = decode_array(entry, "test")
    assert (b.dtype, b.shape, b.tobytes()) == (a.dtype, a.shape, a.tobytes())
    assert b.flags.writeable  # a copy, not a view of the decoded bytes


def _bits(v: float) -> bytes:
    return struct.pack("<d", v)


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True))
def test_float_attribute_round_trip(v):
    g = Graph("pad")
    x = g.add_input(TensorType((2,), float32), "x")
    g.set_outputs([g.add("pad", x, pads=(1, 1), value=v)])
    g2 = _round_trip(g)
    got = g2.nodes[0].attrs["value"]
    if math.isnan(v):
        assert math.isnan(got)  # JSON has one NaN spelling; the payload is not kept
    else:
        assert _bits(got) == _bits(v)
    a = np.array([1.0, 2.0], np.float32)
    # Equal with NaN == NaN: a -NaN attribute loads as +NaN (see above).
    np.testing.assert_array_equal(nc.run(g2, a), nc.run(g, a), strict=True)
