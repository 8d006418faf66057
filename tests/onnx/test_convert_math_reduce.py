"""The elementwise and reduction converters where ONNX's node suite does not reach:
reductions with constant axes (the suite feeds axes as graph inputs, which the importer
refuses), exact Floor/Ceil/Round edges, pre-13 Softmax coercion, Clip's opset-6 defaults,
gradients through the converters vs torch, and compiled vs eager."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import nncompile as nc  # noqa: E402


def make_model(
    op: str,
    inputs: dict[str, np.ndarray],
    consts: dict[str, np.ndarray] | None = None,
    order: list[str] | None = None,
    opset: int = 18,
    **attrs,
):
    """One-node model: ``inputs`` are graph inputs, ``consts`` initializers; the node reads
    them in ``order`` ('' for an absent optional input)."""
    consts = consts or {}
    order = order if order is not None else [*inputs, *consts]
    node = helper.make_node(op, order, ["y"], **attrs)
    vis = [
        helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
        for k, v in inputs.items()
    ]
    out = helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    graph = helper.make_graph([node], "g", vis, [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def expect(model, inputs: list[np.ndarray], compiled: bool = False, dtype=None) -> np.ndarray:
    """The importer's output equals ONNX's reference implementation (dtype, shape, values,
    NaN positions and the sign of zeros); ``dtype`` overrides the reference's dtype where
    it differs from the spec's."""
    want = ReferenceEvaluator(model).run(None, dict(zip(_names(model), inputs, strict=True)))[0]
    want = want if dtype is None else want.astype(dtype)
    f = nc.onnx.load(model)
    got = np.asarray((nc.compile(f, backend="llvm") if compiled else f)(*inputs))
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape)
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert (np.signbit(got) == np.signbit(want))[got == 0].all(), (got, want)
    else:
        np.testing.assert_array_equal(got, want)
    return got


def _names(model) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


EDGES32 = np.array(
    [-0.0, 0.0, -0.3, 0.3, 0.49999997, -0.49999997, 0.5, -0.5, 1.5, 2.5, -2.5, 3.7, -3.7,
     2.0**23 + 1, -(2.0**22) - 0.5, 1e30, -1e30, np.inf, -np.inf, np.nan],
    np.float32,
)  # fmt: skip


@pytest.mark.parametrize("op", ["Floor", "Ceil", "Round"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floor_ceil_round_are_exact_at_the_edges(op, dtype):
    x = EDGES32.astype(dtype)
    if dtype == np.float64:
        x = np.concatenate([x, np.array([2.0**52 + 1, 0.49999999999999994, 2.0**51 + 0.5])])
    expect(make_model(op, {"x": x}), [x])


def test_round_compiles_and_has_zero_gradient():
    x = EDGES32[:14]
    expect(make_model("Round", {"x": x}), [x], compiled=True)
    f = nc.onnx.load(make_model("Floor", {"x": x}))
    g = nc.grad(lambda v: nc.sum(f(v)))(x)
    np.testing.assert_array_equal(np.asarray(g), np.zeros_like(x))


X = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)

REDUCTIONS = [
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceLogSumExp",
]


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reductions_with_constant_axes(op, keepdims):
    axes = np.array([-1, 0], np.int64)
    model = make_model(op, {"x": X}, {"axes": axes}, opset=18, keepdims=keepdims)
    expect(model, [X])
    # before opset 18 (13 for ReduceSum) the axes are an attribute
    old = make_model(op, {"x": X}, opset=11, keepdims=keepdims, axes=[1])
    expect(old, [X])


def test_reduce_empty_axes_reduce_all_or_nothing():
    empty = np.zeros(0, np.int64)
    expect(make_model("ReduceSum", {"x": X}, {"axes": empty}, opset=13), [X])
    model = make_model("ReduceMean", {"x": X}, {"axes": empty}, noop_with_empty_axes=1)
    np.testing.assert_array_equal(expect(model, [X]), X)
    expect(make_model("ReduceMax", {"x": X}, order=["x"], keepdims=0), [X])


def test_reduce_int_and_bool_and_empty_set():
    xi = np.arange(-5, 7, dtype=np.int32).reshape(3, 4)
    axes = np.array([1], np.int64)
    for op in ("ReduceSum", "ReduceProd", "ReduceMax", "ReduceL1", "ReduceSumSquare"):
        # the spec keeps int32; the reference's NumPy sums give int64 for some of these
        expect(make_model(op, {"x": xi}, {"axes": axes}), [xi], dtype=np.int32)
    xb = np.array([[True, False], [False, False]])
    expect(make_model("ReduceMax", {"x": xb}, {"axes": axes}, opset=20), [xb])
    expect(make_model("ReduceMin", {"x": xb}, {"axes": axes}, opset=20), [xb])
    x0 = np.zeros((2, 0, 3), np.float32)
    for op in ("ReduceSum", "ReduceProd", "ReduceMax", "ReduceLogSumExp"):
        expect(make_model(op, {"x": x0}, {"axes": axes}), [x0])
    with pytest.raises(nc.onnx.UnsupportedError, match="ReduceMean"):
        nc.onnx.load(make_model("ReduceMean", {"x": xi}, {"axes": axes}))(xi)


def test_reductions_compile():
    axes = np.array([1], np.int64)
    for op in ("ReduceProd", "ReduceLogSumExp"):
        expect(make_model(op, {"x": X}, {"axes": axes}, keepdims=0), [X], compiled=True)
    cum = make_model("CumSum", {"x": X}, {"axis": np.array(1)}, exclusive=1, reverse=1)
    expect(cum, [X], compiled=True)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
def test_softmax_before_13_coerces_to_2d(op):
    """Before opset 13 the spec normalizes rows of the input coerced to 2-D (dims before
    axis by dims from it; ONNX's reference ignores that): the opset-13 op on the input
    reshaped to those rows, reshaped back."""
    for attrs, rows in (({"axis": 1}, (2, 12)), ({}, (2, 12)), ({"axis": 2}, (6, 4))):
        flat = X.reshape(rows)
        want = ReferenceEvaluator(make_model(op, {"x": flat}, opset=13)).run(None, {"x": flat})
        got = nc.onnx.load(make_model(op, {"x": X}, opset=11, **attrs))(X)
        np.testing.assert_allclose(np.asarray(got), want[0].reshape(X.shape), rtol=1e-5)
    expect(make_model(op, {"x": X}, opset=13, axis=1), [X])


def test_clip_attribute_defaults_and_int_bounds():
    x = np.array([-np.inf, -2.0, 0.5, 3.0, np.inf, np.nan], np.float32)
    expect(make_model("Clip", {"x": x}, opset=7), [x])  # +-inf become +-FLT_MAX
    expect(make_model("Clip", {"x": x}, opset=7, min=-1.0), [x])
    xi = np.array([-7, 0, 9], np.int64)
    lo, hi = np.array(-2, np.int64), np.array(5, np.int64)
    expect(make_model("Clip", {"x": xi}, {"lo": lo, "hi": hi}, opset=13), [xi])
    expect(make_model("Clip", {"x": xi}, {"hi": hi}, order=["x", "", "hi"], opset=13), [xi])


def test_integer_division_remainder_and_casts():
    a = np.array([-7, 7, -7, 7, 6, -6], np.int32)
    b = np.array([2, -2, -2, 2, 4, 4], np.int32)
    for op, attrs in (("Div", {}), ("Mod", {}), ("Mod", {"fmod": 1})):
        expect(make_model(op, {"a": a, "b": b}, **attrs), [a, b], compiled=op == "Mod")
    x = np.array([np.nan, 0.0, -0.0, 2.5, -3.9], np.float32)
    expect(make_model("Cast", {"x": x}, to=TensorProto.BOOL), [x])
    expect(make_model("Cast", {"x": x[1:]}, to=TensorProto.INT64), [x[1:]])
    flags = np.array([True, False])
    expect(make_model("Cast", {"x": flags}, to=TensorProto.DOUBLE), [flags])


def test_unsupported_configurations_are_named():
    a = np.array([1.5, -2.5], np.float32)
    with pytest.raises(nc.onnx.UnsupportedError, match="floating-point remainder"):
        nc.onnx.load(make_model("Mod", {"a": a, "b": a}, fmod=1))(a, a)
    with pytest.raises(nc.onnx.UnsupportedError, match="cast to float16"):
        nc.onnx.load(make_model("Cast", {"x": a}, to=TensorProto.FLOAT16))(a)
    with pytest.raises(nc.onnx.UnsupportedError, match="approximate='fast'"):
        nc.onnx.load(make_model("Gelu", {"x": a}, opset=20, approximate="fast"))(a)


# -- gradients through the converters vs torch ------------------------------------------------
torch = pytest.importorskip("torch")


from ..nncompile.torch_support import check  # noqa: E402

F = torch.nn.functional
XG = np.random.default_rng(1).standard_normal((3, 5))

GRADIENT_CASES = [
    ("Softmax", {"axis": 1}, lambda x: F.softmax(x, 1)),
    ("LogSoftmax", {}, lambda x: F.log_softmax(x, -1)),
    ("Elu", {"alpha": 0.7}, lambda x: F.elu(x, 0.7)),
    ("Celu", {"alpha": 1.5}, lambda x: F.celu(x, 1.5)),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, F.hardsigmoid),
    ("Mish", {}, F.mish),
    ("Softsign", {}, F.softsign),
    ("ReduceLogSumExp", {"axes": [1], "keepdims": 0}, lambda x: torch.logsumexp(x, 1)),
    ("ReduceProd", {"axes": [0]}, lambda x: torch.prod(x, 0, keepdim=True)),
    ("ReduceL2", {"axes": [1]}, lambda x: torch.linalg.vector_norm(x, dim=1, keepdim=True)),
    ("CumSum", {"exclusive": 1}, lambda x: torch.cumsum(x, 1) - x),
]


@pytest.mark.parametrize(("op", "attrs", "torch_fn"), GRADIENT_CASES, ids=lambda c: str(c)[:20])
def test_gradients_match_torch(op, attrs, torch_fn):
    x = XG.astype(np.float64)
    opset = 11 if op.startswith("Reduce") else 18
    consts = {"axis": np.array(1)} if op == "CumSum" else None
    f = nc.onnx.load(make_model(op, {"x": x}, consts, opset=opset, **attrs))
    check(f, torch_fn, [x], (0,), np.float64)


def test_prelu_gradient_reaches_the_slope_parameter():
    x = XG.astype(np.float64)
    slope = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    f = nc.onnx.load(make_model("PRelu", {"x": x}, {"slope": slope}))
    assert list(f.params) == ["slope"]
    grads = nc.grad(lambda p, v: nc.sum(f.apply(p, v) ** 2), argnums=(0, 1))(f.params, x)
    tx = torch.tensor(x, requires_grad=True)
    ts = torch.tensor(slope, requires_grad=True)
    (torch.where(tx < 0, ts * tx, tx) ** 2).sum().backward()
    np.testing.assert_allclose(np.asarray(grads[0]["slope"]), ts.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(grads[1]), tx.grad.numpy(), rtol=1e-10)


def test_compiled_gradient_of_softmax_before_13():
    x = X.astype(np.float32)
    f = nc.onnx.load(make_model("Softmax", {"x": x}, opset=11, axis=1))
    w = np.linspace(-1, 1, x.size, dtype=np.float32).reshape(x.shape)
    g = nc.compile(nc.grad(lambda v: nc.sum(f(v) * w)), backend="llvm")(x)
    tx = torch.tensor(x, requires_grad=True)
    (F.softmax(tx.reshape(2, 12), 1).reshape(x.shape) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(np.asarray(g), tx.grad.numpy(), rtol=1e-4, atol=1e-6)


EINSUMS = [
    "ijk,kl->ijl",
    "ijk,kl,lm->mi",
    "ijk,j",
    "ijk,lm->ijklm",
    "ijk->",
    "ij,ij->",
    "abc,cd->adb",
]


def test_einsum_equations_match_numpy_eager_and_compiled():
    rng = np.random.default_rng(2)
    shapes = {"i": 2, "j": 3, "k": 4, "l": 5, "m": 2, "a": 2, "b": 3, "c": 4, "d": 5}
    for k, eq in enumerate(EINSUMS):
        terms = eq.split("->")[0].split(",")
        xs = {f"x{n}": rng.standard_normal([shapes[c] for c in t]) for n, t in enumerate(terms)}
        got = expect(make_model("Einsum", xs, equation=eq), list(xs.values()), compiled=k < 2)
        np.testing.assert_allclose(got, np.einsum(eq, *xs.values()), rtol=1e-12)
    x = np.zeros((3, 3))
    with pytest.raises(nc.onnx.UnsupportedError, match="diagonal"):
        nc.onnx.load(make_model("Einsum", {"x": x}, equation="ii->i"))(x)
    with pytest.raises(nc.onnx.UnsupportedError, match="ellipsis"):
        nc.onnx.load(make_model("Einsum", {"x": x}, equation="...i->i"))(x)


def test_einsum_gradient_matches_torch():
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    f = nc.onnx.load(make_model("Einsum", {"q": q, "k": k}, equation="bid,bjd->bij"))
    check(f, lambda a, b: torch.einsum("bid,bjd->bij", a, b), [q, k], (0, 1), np.float64)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_edges(dtype, direction):
    bits = 8 * np.dtype(dtype).itemsize
    info = np.iinfo(dtype)
    x = np.array([5, -5, info.min, info.max, -1, 1, 7, -8, 3, -3], dtype)
    s = np.array([1, 1, 1, 1, bits - 1, bits - 1, bits, -1, bits + 5, 0], dtype)
    model = make_model("BitShift", {"x": x, "s": s}, opset=28, direction=direction)
    expect(model, [x, s], compiled=dtype == np.int64)


def test_models_onnx_rejects_raise_shape_and_dtype_errors():
    with pytest.raises(nc.ShapeError, match="out of range"):
        nc.onnx.load(make_model("ReduceSum", {"x": X}, {"axes": np.array([3])}, opset=13))(X)
    with pytest.raises(nc.ShapeError, match="out of range"):
        nc.onnx.load(make_model("Softmax", {"x": X}, axis=-4))(X)
    slope = np.ones(3, np.float32)
    with pytest.raises(nc.ShapeError, match="does not broadcast"):
        nc.onnx.load(make_model("PRelu", {"x": X}, {"slope": slope}))(X)
    xi = np.ones((2, 3, 4), np.int64)
    with pytest.raises(nc.DTypeError, match="different dtypes"):
        nc.onnx.load(make_model("Add", {"x": X, "b": xi}))(X, xi)
