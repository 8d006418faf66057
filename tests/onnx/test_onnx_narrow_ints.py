"""ONNX's narrow integer types (int8, int16, uint8, uint16, uint32) computed in int32 or
int64 containers and wrapped after every node: wrapping Add/Sub/Mul/Neg/Abs/Sum/
ReduceSum and casts at each type's edges equal ONNX's reference evaluator, eagerly and
LLVM-compiled; inputs are checked and outputs cast back exactly."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import nncompile as nc  # noqa: E402
from nncompile.errors import DTypeError  # noqa: E402

NARROW = [np.int8, np.int16, np.uint8, np.uint16, np.uint32]


def _edges(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Operands whose sums, differences and products overflow the type both ways."""
    info = np.iinfo(dtype)
    a = np.array([info.min, info.max, info.max, 0, 1, info.max // 2 + 1, 7, info.min + 1])
    b = np.array([info.min, info.max, 1, info.max, info.max, 3, info.max // 3, info.max])
    return a.astype(dtype), b.astype(dtype)


def _model(dtype: type) -> onnx.ModelProto:
    t = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    other = TensorProto.INT8 if dtype != np.int8 else TensorProto.UINT16
    nodes = [
        helper.make_node("Add", ["a", "b"], ["add"]),
        helper.make_node("Sub", ["a", "b"], ["sub"]),
        helper.make_node("Mul", ["a", "b"], ["mul"]),
        helper.make_node("Sum", ["a", "b", "a"], ["sum"]),
        helper.make_node("Abs", ["a"], ["abs"]),
        helper.make_node("ReduceSum", ["mul"], ["rsum"], keepdims=0),
        helper.make_node("Cast", ["wide"], ["from_int32"], to=t),
        helper.make_node("Cast", ["x"], ["from_float"], to=t),
        helper.make_node("Cast", ["mul"], ["to_float"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["mul"], ["to_other"], to=other),
    ]
    outputs = ["add", "sub", "mul", "sum", "abs", "rsum", "from_int32", "from_float"]
    if np.dtype(dtype).kind == "i":  # ONNX's Neg takes signed types only
        nodes.append(helper.make_node("Neg", ["a"], ["neg"]))
        outputs.append("neg")
    n = len(_edges(dtype)[0])
    graph = helper.make_graph(
        nodes,
        f"narrow_{np.dtype(dtype).name}",
        [
            helper.make_tensor_value_info("a", t, [n]),
            helper.make_tensor_value_info("b", t, [n]),
            helper.make_tensor_value_info("wide", TensorProto.INT32, [6]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
        ],
        [helper.make_tensor_value_info(o, t, None) for o in outputs]
        + [
            helper.make_tensor_value_info("to_float", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("to_other", other, None),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _inputs(dtype: type) -> list[np.ndarray]:
    a, b = _edges(dtype)
    wide = np.array([300, -1, 70000, -129, 2**31 - 1, -(2**31)], np.int32)
    signed = np.dtype(dtype).kind == "i"
    x = np.array([-3.7, -0.5, 2.9, 100.2] if signed else [0.5, 2.9, 100.2, 255.9], np.float32)
    return [a, b, wide, x]


def _reference(model: onnx.ModelProto, inputs: list[np.ndarray]) -> list[np.ndarray]:
    with np.errstate(over="ignore"):
        feeds = dict(zip("a b wide x".split(), inputs, strict=True))
        return ReferenceEvaluator(model).run(None, feeds)


@pytest.mark.parametrize("dtype", NARROW, ids=lambda d: np.dtype(d).name)
def test_wrapping_arithmetic_and_casts_equal_onnx_reference(dtype):
    model = _model(dtype)
    inputs = _inputs(dtype)
    want = _reference(model, inputs)
    f = nc.onnx.load(model)
    assert f.output_dtypes == tuple(w.dtype for w in want)
    eager = f(*inputs)
    container = np.int64 if dtype == np.uint32 else np.int32
    assert eager[0].dtype == container  # results come back in the container dtype
    compiled = nc.compile(f, backend="llvm")(*nc.onnx.to_containers(*inputs))
    for outs in (eager, compiled):
        got = nc.onnx.to_onnx_dtypes(outs, f)
        for name, out, g, w in zip(f.output_names, outs, got, want, strict=True):
            assert g.dtype == w.dtype, name
            np.testing.assert_array_equal(g, w, err_msg=name)
            # the container itself holds the wrapped value (casting back is no modulo)
            np.testing.assert_array_equal(np.asarray(out), w.astype(np.int64), err_msg=name)


def test_narrow_inputs_are_checked_and_traced_ones_wrapped():
    model = _model(np.uint8)
    f = nc.onnx.load(model)
    a, b, wide, x = _inputs(np.uint8)
    assert f.input_specs[0].dtype == np.uint8
    # container values are accepted when in range, refused eagerly when not
    same = nc.onnx.to_onnx_dtypes(f(a.astype(np.int32), b, wide, x), f)
    np.testing.assert_array_equal(same[0], a + b)
    with pytest.raises(DTypeError, match="out of the range of uint8"):
        f(a.astype(np.int32) + 256, b, wide, x)
    with pytest.raises(DTypeError, match=r"must be uint8 \(or int32\)"):
        f(a.astype(np.int64), b, wide, x)
    # traced, the values are unknown: they are wrapped on entry, as ONNX's uint8 would hold
    compiled = nc.compile(f, backend="llvm")
    rest = nc.onnx.to_containers(b, wide, x)
    got = nc.onnx.to_onnx_dtypes(compiled(a.astype(np.int32) + 256, *rest), f)
    np.testing.assert_array_equal(got[0], a + b)


def test_uint64_stays_unsupported():
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "a"], ["y"])],
        "u64",
        [helper.make_tensor_value_info("a", TensorProto.UINT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.UINT64, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(nc.onnx.UnsupportedError, match="uint64"):
        nc.onnx.load(model)


def test_check_and_cli_run_take_narrow_inputs(tmp_path):
    from nncompile.cli import main

    model = _model(np.int16)
    report = nc.onnx.check(model)
    assert {n.status for n in report.nodes} == {"supported"}, report
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    inputs = _inputs(np.int16)
    want = _reference(model, inputs)
    names = []
    for name, value in zip("a b wide x".split(), inputs, strict=True):
        np.save(tmp_path / f"{name}.npy", value)
        names += ["--input", f"{name}={tmp_path / name}.npy"]
    for backend in ("eager", "llvm"):
        out = tmp_path / f"{backend}.npz"
        assert main(["run", str(path), *names, "--output", str(out), "--backend", backend]) == 0
        saved = np.load(out)
        for name, w in zip(nc.onnx.load(model).output_names, want, strict=True):
            assert saved[name].dtype == w.dtype, name  # written in ONNX's dtypes
            np.testing.assert_array_equal(saved[name], w, err_msg=name)


def test_empty_narrow_max_is_refused_not_wrapped():
    node = helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0, axes=[0])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [0, 2])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(nc.onnx.UnsupportedError, match="empty reduction"):
        nc.onnx.load(model)(np.zeros((0, 2), np.int8))
