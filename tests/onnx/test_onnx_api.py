"""nc.onnx's API on small models built with onnx.helper: load (path, bytes, ModelProto),
calling by position and by name, params and apply, dim_param consistency, the errors,
save round trips checked with onnxruntime, and check reports."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompile as nc  # noqa: E402
from nncompile.errors import ConfigError, DTypeError, SerializationError, ShapeError  # noqa: E402

RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((4, 8)).astype(np.float32)
B1 = RNG.standard_normal(8).astype(np.float32)
W2 = RNG.standard_normal((8, 3)).astype(np.float64)


def mlp(opset: int = 17):
    """y = reshape(relu(x @ w1 + b1), (-1, 2, 4)); z = float64 branch from a second
    input: (u @ w2) of a float64 input. 'shape' is a Reshape constant, not a parameter."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["y"]),
        helper.make_node("MatMul", ["u", "w2"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("u", TensorProto.DOUBLE, ["batch", 8]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("z", TensorProto.DOUBLE, None),
        ],
        [
            numpy_helper.from_array(W1, "w1"),
            numpy_helper.from_array(B1, "b1"),
            numpy_helper.from_array(W2, "w2"),
            numpy_helper.from_array(np.array([-1, 2, 4], np.int64), "shape"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def reference(x, u, w1=W1, b1=B1, w2=W2):
    y = np.maximum(x @ w1 + b1, 0).reshape(-1, 2, 4)
    return y, u @ w2


X = RNG.standard_normal((5, 4)).astype(np.float32)
U = RNG.standard_normal((5, 8))


@pytest.mark.parametrize("form", ["proto", "bytes", "path"])
def test_load_from_a_proto_bytes_or_path_and_call(form, tmp_path):
    m = mlp()
    source = {"proto": m, "bytes": m.SerializeToString(), "path": tmp_path / "m.onnx"}[form]
    if form == "path":
        onnx.save(m, str(source))
    f = nc.onnx.load(source)
    assert f.input_names == ["x", "u"] and f.output_names == ["y", "z"]
    assert f.input_specs[0].shape == ("batch", 4) and f.input_specs[1].dtype == np.float64
    y, z = f(X, U)
    want_y, want_z = reference(X, U)
    np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z.numpy(), want_z, rtol=1e-12)
    assert y.dtype == np.float32 and z.dtype == np.float64
    by_name = f(u=U, x=X)
    np.testing.assert_array_equal(by_name[0].numpy(), y.numpy())
    mixed = f(X, u=U)
    np.testing.assert_array_equal(mixed[1].numpy(), z.numpy())
    assert "mlp" in repr(f) and "3 parameters" in repr(f)


def test_params_are_the_float_initializers_read_as_data():
    f = nc.onnx.load(mlp())
    assert sorted(f.params) == ["b1", "w1", "w2"]  # 'shape' is a Reshape constant
    np.testing.assert_array_equal(f.params["w1"], W1)
    new = {k: v * 2 for k, v in f.params.items()}
    y, z = f.apply(new, X, U)
    want_y, want_z = reference(X, U, W1 * 2, B1 * 2, W2 * 2)
    np.testing.assert_allclose(y.numpy(), want_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z.numpy(), want_z, rtol=1e-12)
    np.testing.assert_array_equal(f.params["w1"], W1)  # apply is pure


def test_gradient_of_apply_wrt_params_matches_the_closed_form():
    f = nc.onnx.load(mlp())

    def loss(p):
        return nc.sum(f.apply(p, X, U)[1])  # z = u @ w2: d/dw2 = u^T 1

    g = nc.grad(loss)(f.params)
    np.testing.assert_allclose(g["w2"].numpy(), U.T @ np.ones((5, 3)), rtol=1e-12)
    np.testing.assert_array_equal(g["w1"].numpy(), np.zeros_like(W1))


def test_compiled_equals_eager():
    f = nc.onnx.load(mlp())
    fast = nc.compile(f, backend="llvm")
    for got, want in zip(fast(X, U), f(X, U), strict=True):
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-5, atol=1e-6)


def test_input_errors():
    f = nc.onnx.load(mlp())
    with pytest.raises(ShapeError, match="size 'batch' is 5 in another input, got 3"):
        f(X, U[:3])
    with pytest.raises(ShapeError, match=r"model input 'x' has shape \(batch, 4\)"):
        f(X[:, :3], U)
    with pytest.raises(DTypeError, match="model input 'u' must be float64, got float32"):
        f(X, U.astype(np.float32))
    with pytest.raises(ConfigError, match=r"missing model inputs \['u'\]"):
        f(X)
    with pytest.raises(ConfigError, match="takes 2 inputs"):
        f(X, U, U)
    with pytest.raises(ConfigError, match="no input 'v'"):
        f(X, v=U)
    with pytest.raises(ConfigError, match="given twice"):
        f(X, U, x=X)
    with pytest.raises(ConfigError, match=r"missing \['w2'\]"):
        f.apply({"w1": W1, "b1": B1}, X, U)
    with pytest.raises(ShapeError, match="parameter 'w1' must be float32"):
        f.apply({**f.params, "w1": W1[:2]}, X, U)


def test_python_data_takes_the_input_dtype_and_junk_is_a_dtype_error():
    f = nc.onnx.load(mlp())
    y, _ = f(X.tolist(), U.tolist())
    assert y.dtype == np.float32
    with pytest.raises(DTypeError, match="model input 'x'"):
        f(object(), U)


def test_save_round_trip_checked_with_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    f = nc.onnx.load(mlp())
    new = {"w1": (W1 + 1).astype(np.float64), "w2": W2 - 1}  # cast back to float32 for w1
    path = tmp_path / "tuned.onnx"
    nc.onnx.save(f, new, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"x": X, "u": U})
    ours = f.apply({**f.params, "w1": (W1 + 1), "w2": W2 - 1}, X, U)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-5)
    reloaded = nc.onnx.load(path)
    assert reloaded.params["w1"].dtype == np.float32
    np.testing.assert_array_equal(reloaded.params["b1"], B1)  # not given: unchanged
    assert [p.name for p in reloaded.model.graph.input] == ["x", "u"]


def test_save_errors_leave_no_file(tmp_path):
    f = nc.onnx.load(mlp())
    path = tmp_path / "m.onnx"
    with pytest.raises(ConfigError, match=r"no initializer \['w9'\]"):
        nc.onnx.save(f, {"w9": W1}, path)
    with pytest.raises(ShapeError, match=r"'w1' has shape \(4, 8\), the new value has \(8, 4\)"):
        nc.onnx.save(f, {"w1": W1.T}, path)
    with pytest.raises(ConfigError, match="OnnxFunction"):
        nc.onnx.save(lambda x: x, {}, path)
    assert list(tmp_path.iterdir()) == []


def test_check_report_of_a_supported_model():
    report = nc.onnx.check(mlp())
    assert report.supported
    ops = sorted(n.op_type for n in report.nodes)  # in the order they run
    assert ops == ["Add", "MatMul", "MatMul", "Relu", "Reshape"]
    assert {n.status for n in report.nodes} == {"supported"}
    assert "5 nodes, supported" in str(report)


def test_check_report_names_each_unsupported_node_and_why():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("NoSuchOp", ["a"], ["b"], name="mystery"),
        helper.make_node("Relu", ["b"], ["c"], name="after"),
        helper.make_node("Softmax", ["x"], ["d"], name="odd", bogus=1),
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Add", ["s", "s"], ["t"], name="folded"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("c", "d", "t")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    report = nc.onnx.check(m)
    by_name = {n.name: n for n in report.nodes}
    assert not report.supported
    assert (by_name["relu"].status, by_name["relu"].opset) == ("supported", 17)
    assert (by_name["mystery"].status, by_name["mystery"].reason) == (
        "unsupported",
        "no converter",
    )
    assert by_name["after"].status == "unreached" and "mystery" in by_name["after"].reason
    assert by_name["odd"].status == "unsupported" and "bogus=1" in by_name["odd"].reason
    assert by_name["folded"].status == "folds"
    assert report.unsupported_ops() == ["NoSuchOp", "Relu", "Softmax"]
    text = str(report)
    assert "NOT supported" in text and "mystery" in text and "no converter" in text
    with pytest.raises(nc.onnx.UnsupportedError, match="NoSuchOp"):
        nc.onnx.load(m)


def test_check_of_a_foreign_domain_and_an_unreadable_file():
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], domain="com.example")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 3)],
    )
    report = nc.onnx.check(m)
    assert not report.supported
    node = report.nodes[0]
    assert (node.status, node.domain, node.opset) == ("unsupported", "com.example", 3)
    assert "com.example.Gelu" in str(report)
    with pytest.raises(SerializationError):
        nc.onnx.check(b"not a model")
