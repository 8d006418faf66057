"""Shape inference agrees with NumPy: broadcasting, reshape, transpose, slicing, matmul, conv2d."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from nncompile.backends.numpy import REFERENCE
from nncompile.ir import TensorType, float32, float64, get_op
from nncompile.ir.registry import broadcast_shapes

import nncompile as nc

SETTINGS = settings(max_examples=100, deadline=None)
small_shapes = st.lists(st.integers(0, 3), max_size=4).map(tuple)


def infer(op: str, shapes, dtype=float32, **attrs) -> tuple[int, ...]:
    opdef = get_op(op)
    types = [TensorType(tuple(s), dtype) for s in shapes]
    (t,) = opdef.infer_types(types, opdef.normalize_attrs(attrs))
    return t.shape


def arange(shape, dtype=np.float32) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)


def assert_same(got, want: np.ndarray) -> None:
    got = got.numpy() if isinstance(got, nc.Tensor) else got
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
    np.testing.assert_array_equal(got, want)


# ---- broadcasting --------------------------------------------------------------------


@SETTINGS
@given(
    st.integers(1, 4).flatmap(
        lambda n: hnp.mutually_broadcastable_shapes(
            num_shapes=n, min_dims=0, max_dims=4, min_side=0, max_side=4
        )
    )
)
def test_broadcast_compatible_shapes(case):
    shapes, result = case
    assert broadcast_shapes(*shapes) == result == np.broadcast_shapes(*shapes)


@SETTINGS
@given(st.lists(small_shapes, min_size=1, max_size=3))
def test_broadcast_arbitrary_shapes(shapes):
    # Small random shapes are often incompatible: both must reject exactly those.
    try:
        want = np.broadcast_shapes(*shapes)
    except ValueError:
        with pytest.raises(nc.ShapeError, match="do not broadcast"):
            broadcast_shapes(*shapes)
        return
    assert broadcast_shapes(*shapes) == want


@SETTINGS
@given(small_shapes, small_shapes, small_shapes)
def test_binary_ops_and_where_broadcast_like_numpy(a, b, c):
    x, y = arange(a), arange(b)
    try:
        want = np.add(x, y)
    except ValueError:
        with pytest.raises(nc.ShapeError):
            infer("add", [a, b])
        with pytest.raises(nc.ShapeError):
            nc.add(x, y)
        return
    assert infer("add", [a, b]) == want.shape
    assert infer("less", [a, b]) == want.shape
    assert_same(nc.add(x, y), want)
    cond = arange(c) % 2 == 0
    try:
        want = np.where(cond, x, y)
    except ValueError:
        with pytest.raises(nc.ShapeError):
            nc.where(cond, x, y)
        return
    assert_same(nc.where(cond, x, y), want)


# ---- reshape -------------------------------------------------------------------------


@st.composite
def reshape_cases(draw):
    """A shape and a target with the same element count (regrouped factors), sometimes
    with one -1, sometimes a random target that probably does not fit."""
    factors = draw(st.lists(st.integers(0, 4), max_size=5))

    def regroup() -> list[int]:
        fs = draw(st.permutations(factors))
        cuts = sorted(draw(st.lists(st.integers(0, len(fs)), max_size=3)))
        bounds = [0, *cuts, len(fs)]
        pairs = zip(bounds, bounds[1:], strict=False)
        return [int(np.prod(fs[i:j], dtype=np.int64)) for i, j in pairs]

    shape, target = tuple(regroup()), regroup()
    if draw(st.integers(0, 4)) == 0:
        target = draw(st.lists(st.integers(0, 6), max_size=4))
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return shape, tuple(target)


@SETTINGS
@given(reshape_cases())
def test_reshape_matches_numpy(case):
    shape, target = case
    a = arange(shape)
    try:
        want = a.reshape(target)
    except ValueError:
        with pytest.raises(nc.ShapeError):
            nc.reshape(nc.Tensor(a), target)
        return
    assert_same(nc.reshape(nc.Tensor(a), target), want)
    assert infer("reshape", [shape], shape=want.shape) == want.shape
    g = nc.trace(lambda x: nc.reshape(x, target), a)
    assert g.outputs[0].shape == want.shape
    assert_same(nc.run(g, a), want)


@SETTINGS
@given(small_shapes, st.lists(st.integers(-1, 7), max_size=4).map(tuple))
def test_reshape_op_requires_equal_size(shape, target):
    if -1 in target or int(np.prod(target, dtype=np.int64)) != int(np.prod(shape, dtype=np.int64)):
        with pytest.raises(nc.ShapeError):
            infer("reshape", [shape], shape=target)
    else:
        assert infer("reshape", [shape], shape=target) == target


# ---- transpose -----------------------------------------------------------------------


@st.composite
def perm_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3))
    n = len(shape)
    perm = list(draw(st.permutations(range(n))))
    negate = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    mixed = [p - n if neg else p for p, neg in zip(perm, negate, strict=True)]
    return shape, tuple(perm), tuple(mixed)


@SETTINGS
@given(perm_cases())
def test_transpose_matches_numpy(case):
    shape, perm, mixed = case
    a = arange(shape)
    want = np.transpose(a, perm)
    assert infer("transpose", [shape], perm=perm) == want.shape
    assert_same(nc.transpose(nc.Tensor(a), mixed), want)  # negative axes count from the end
    assert_same(nc.Tensor(a).T, a.T)


@SETTINGS
@given(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3),
    st.lists(st.integers(-5, 5), max_size=5),
)
def test_transpose_rejects_what_numpy_rejects(shape, axes):
    a = arange(shape)
    try:
        want = np.transpose(a, axes)
    except ValueError:  # AxisError is a ValueError
        with pytest.raises(nc.ShapeError):
            nc.transpose(nc.Tensor(a), axes)
        return
    assert_same(nc.transpose(nc.Tensor(a), axes), want)


# ---- slicing -------------------------------------------------------------------------


def _bound(d: int):
    # Just outside either end is where clamping rules differ most.
    edges = st.sampled_from([-d - 1, -d - 2, d, d + 1])
    return st.none() | st.integers(-2 * d - 3, 2 * d + 3) | edges


@st.composite
def index_cases(draw):
    # Mostly non-empty arrays: in an empty one, wrong extents of other axes go unnoticed.
    shape = draw(
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)
        | hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)
    )
    items: list = []
    for d in shape:
        kind = draw(st.sampled_from(["slice"] * 4 + ["int", "bad_int"]))
        if kind == "int" and d:
            items.append(draw(st.integers(-d, d - 1)))
        elif kind == "bad_int":
            items.append(draw(st.sampled_from([d, d + 2, -d - 1])))
        else:
            step = draw(st.sampled_from([None, 1, 2, 3, -1, -1, -2, -3]))
            items.append(slice(draw(_bound(d)), draw(_bound(d)), step))
    # Fewer items than axes, None (new axes) and Ellipsis are all valid NumPy indices.
    if draw(st.booleans()):
        items = items[: draw(st.integers(0, len(items)))]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    index = items[0] if len(items) == 1 and draw(st.booleans()) else tuple(items)
    return shape, index


@SETTINGS
@given(index_cases())
@example(((3,), (slice(-5, None, -1),)))  # empty, backwards, start before the array
def test_tensor_indexing_matches_numpy(case):
    shape, index = case
    a = arange(shape)
    try:
        want = a[index]
    except IndexError:
        with pytest.raises(nc.ShapeError, match="out of bounds"):
            nc.Tensor(a)[index]
        return
    assert_same(nc.Tensor(a)[index], want)
    g = nc.trace(lambda x: x[index], a)
    assert g.outputs[0].shape == want.shape
    assert_same(nc.run(g, a), want)


@pytest.mark.parametrize(
    "index",
    [
        slice(-5, None, -1),  # start before the first element, stepping backwards: empty
        slice(-10, -20, -1),
        slice(-4, -9, -2),
        (slice(None), slice(-7, None, -3)),
    ],
    ids=str,
)
def test_empty_negative_step_slices(index):
    a = arange((3, 3))
    want = a[index]
    assert want.size == 0
    assert_same(nc.Tensor(a)[index], want)


_SENTINELS = [2**63 - 1, -(2**63), 2**31 - 1, -(2**31)]  # ONNX-style "to the end" values


@st.composite
def slice_op_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5))
    n = len(shape)
    axes = draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n))
    bound = st.integers(-12, 12) | st.sampled_from(_SENTINELS)
    starts = [draw(bound) for _ in axes]
    ends = [draw(bound) for _ in axes]
    steps = [draw(st.sampled_from([1, -1, 2, -2, 3, -3, 2**62, -(2**62)])) for _ in axes]
    stored_axes = [a - n if draw(st.booleans()) else a for a in axes]
    index = [slice(None)] * n
    for a, s, e, k in zip(axes, starts, ends, steps, strict=True):
        index[a] = slice(s, e, k)
    attrs = {"starts": starts, "ends": ends, "axes": stored_axes, "steps": steps}
    return shape, attrs, tuple(index)


def onnx_slice_indices(dim, start, end, step):
    """The indices ONNX Slice selects on one axis, written from the spec's text: negative
    bounds count from the end once, then clamp to [0, dim] (step > 0) or to [0, dim - 1]
    for starts and [-1, dim - 1] for ends (step < 0)."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    out, i = [], start
    while dim and (i < end if step > 0 else i > end):
        out.append(i)
        i += step
    return out


def onnx_slice(a, attrs):
    picks = [list(range(d)) for d in a.shape]
    for s, e, ax, k in zip(
        attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"], strict=False
    ):
        picks[ax % a.ndim] = onnx_slice_indices(a.shape[ax % a.ndim], s, e, k)
    return a[np.ix_(*[np.array(p, dtype=np.intp) for p in picks])]


@SETTINGS
@given(slice_op_cases())
def test_slice_op_inferred_shape_matches_onnx(case):
    shape, attrs, _ = case
    assert infer("slice", [shape], **attrs) == onnx_slice(arange(shape), attrs).shape


@SETTINGS
@given(slice_op_cases())
def test_slice_op_reference_matches_onnx(case):
    shape, attrs, _ = case
    a = arange(shape)
    norm = get_op("slice").normalize_attrs(attrs)
    (got,) = REFERENCE["slice"]([a], norm)
    assert_same(got, onnx_slice(a, attrs))


@SETTINGS
@given(slice_op_cases())
def test_slice_op_matches_numpy_where_onnx_agrees(case):
    # ONNX and NumPy differ only for a negative step with a start before -dim.
    shape, attrs, index = case
    before = any(
        k < 0 and s < -shape[ax % len(shape)]
        for s, ax, k in zip(attrs["starts"], attrs["axes"], attrs["steps"], strict=False)
    )
    if not before:
        assert infer("slice", [shape], **attrs) == arange(shape)[index].shape


def test_slice_onnx_and_numpy_differ_for_negative_step_before_start():
    a = np.arange(5)
    attrs = {"starts": [-10], "ends": [-(2**63)], "axes": [0], "steps": [-1]}
    (got,) = REFERENCE["slice"]([a], get_op("slice").normalize_attrs(attrs))
    assert got.tolist() == [0]  # ONNX clamps the start to 0
    assert a[-10::-1].tolist() == []  # NumPy gives an empty slice


def test_slice_op_rejects_bad_attributes():
    with pytest.raises(nc.ShapeError, match="step must not be 0"):
        infer("slice", [(3,)], starts=[0], ends=[3], axes=[0], steps=[0])
    with pytest.raises(nc.ShapeError, match="given twice"):
        infer("slice", [(3, 3)], starts=[0, 0], ends=[1, 1], axes=[1, -1], steps=[1, 1])
    with pytest.raises(nc.ShapeError, match="same length"):
        infer("slice", [(3,)], starts=[0], ends=[3], axes=[0], steps=[])
    with pytest.raises(nc.ShapeError, match="out of range"):
        infer("slice", [(3,)], starts=[0], ends=[3], axes=[1], steps=[1])


# ---- matmul --------------------------------------------------------------------------


@st.composite
def matmul_cases(draw):
    m, k, n = draw(st.integers(1, 3)), draw(st.integers(0, 3)), draw(st.integers(1, 3))
    batch = st.lists(st.integers(1, 3), max_size=3).map(tuple)
    a = (k,) if draw(st.booleans()) else draw(batch) + (m, k)
    kb = k if draw(st.integers(0, 5)) else draw(st.integers(0, 3))  # sometimes mismatched
    b = (kb,) if draw(st.booleans()) else draw(batch) + (kb, n)
    return a, b


@SETTINGS
@given(matmul_cases())
def test_matmul_matches_numpy(case):
    sa, sb = case
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    try:
        want = np.matmul(a, b)
    except ValueError:
        with pytest.raises(nc.ShapeError):
            infer("matmul", [sa, sb])
        return
    assert infer("matmul", [sa, sb], dtype=float64) == want.shape
    got = nc.matmul(a, b).numpy()
    assert (got.shape, got.dtype) == (want.shape, want.dtype)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_matmul_rejects_0d():
    with pytest.raises(nc.ShapeError, match="rank >= 1"):
        infer("matmul", [(), (3,)])


# ---- conv2d --------------------------------------------------------------------------


def _out_size(size, k, s, pad, d):
    extent = d * (k - 1) + 1
    return None if size + pad < extent else (size + pad - extent) // s + 1


def naive_conv2d(x, w, strides, pads, dilations, groups):
    """Direct definition: every output pixel is a dot product over its dilated window."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = strides, dilations
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow), x.dtype)
    og = o // groups
    for i in range(oh):
        for j in range(ow):
            for oc in range(o):
                g = oc // og
                win = xp[
                    :,
                    g * cg : (g + 1) * cg,
                    i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                    j * sw : j * sw + dw * (kw - 1) + 1 : dw,
                ]
                out[:, oc, i, j] = np.einsum("ncij,cij->n", win, w[oc])
    return out


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    x = (draw(st.integers(1, 2)), groups * cg, draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    w = (groups * og, cg, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    attrs = {
        "strides": tuple(draw(st.lists(st.integers(1, 3), min_size=2, max_size=2))),
        "pads": tuple(draw(st.lists(st.integers(0, 2), min_size=4, max_size=4))),
        "dilations": tuple(draw(st.lists(st.integers(1, 2), min_size=2, max_size=2))),
        "groups": groups,
    }
    return x, w, attrs


@SETTINGS
@given(conv_cases())
def test_conv2d_shape_matches_formula_and_naive_conv(case):
    xs, ws, attrs = case
    p, s, d = attrs["pads"], attrs["strides"], attrs["dilations"]
    oh = _out_size(xs[2], ws[2], s[0], p[0] + p[2], d[0])
    ow = _out_size(xs[3], ws[3], s[1], p[1] + p[3], d[1])
    if oh is None or ow is None:
        with pytest.raises(nc.ShapeError, match="does not fit"):
            infer("conv2d", [xs, ws], **attrs)
        return
    shape = infer("conv2d", [xs, ws], dtype=float64, **attrs)
    assert shape == (xs[0], ws[0], oh, ow)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    want = naive_conv2d(x, w, s, p, d, attrs["groups"])
    (got,) = REFERENCE["conv2d"]([x, w], get_op("conv2d").normalize_attrs(attrs))
    assert got.shape == want.shape == shape and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "xs, ws, attrs",
    [
        ((1, 4, 5, 5), (2, 3, 3, 3), {"groups": 1}),  # weight channels != input channels
        ((1, 4, 5, 5), (3, 2, 3, 3), {"groups": 2}),  # out channels not divisible by groups
        ((1, 4, 5, 5), (2, 4, 3, 3), {"groups": 0}),
        ((1, 4, 5), (2, 4, 3, 3), {}),  # not NCHW
        ((1, 4, 5, 5), (2, 4, 3, 3), {"strides": (0, 1)}),
        ((1, 4, 5, 5), (2, 4, 3, 3), {"pads": (1, 1)}),
        ((1, 4, 5, 5), (2, 4, 3, 3), {"dilations": (1, 0)}),
    ],
)
def test_conv2d_rejects_inconsistent_operands(xs, ws, attrs):
    with pytest.raises(nc.ShapeError):
        infer("conv2d", [xs, ws], **attrs)
