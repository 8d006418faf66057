"""Neural-network converters beyond ONNX's node suite: gradients through Conv,
ConvTranspose, the pools, the recurrent ops and Resize against PyTorch (float64), Resize
with constant scales/sizes (the suite feeds them as graph inputs, which static shapes
refuse), sequence_lens masking against torch's packed sequences, and an LLVM-compiled
model and its gradient against eager."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompile as nc  # noqa: E402

from ..nncompile.torch_support import check, torch  # noqa: E402

F = torch.nn.functional
F64, F32 = TensorProto.DOUBLE, TensorProto.FLOAT
RNG = np.random.default_rng(0)


def _model(node, inputs, n_outputs=1, inits=(), elem=F64, opset=22):
    """One node; ``inputs`` are (name, shape) graph inputs, ``inits`` (name, array)."""
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, elem, s) for n, s in inputs],
        [helper.make_tensor_value_info(o, elem, None) for o in node.output[:n_outputs] if o],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits],
    )
    return nc.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def _rand(*shape):
    return RNG.standard_normal(shape)


def test_conv_asymmetric_pads_groups_dilations_gradients_equal_torch():
    node = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], strides=[2, 1], pads=[1, 0, 1, 1], dilations=[1, 2], group=2
    )
    x, w, b = _rand(2, 4, 7, 6), _rand(6, 2, 3, 2), _rand(6)
    f = _model(node, [("x", x.shape), ("w", w.shape), ("b", b.shape)])

    def ref(
        x, w, b
    ):  # ONNX pads (h_begin, w_begin, h_end, w_end) -> F.pad (left, right, top, bottom)
        return F.conv2d(F.pad(x, (0, 1, 1, 1)), w, b, stride=(2, 1), dilation=(1, 2), groups=2)

    check(f, ref, [x, w, b], (0, 1, 2), np.float64)


def test_conv_1d_same_lower_equals_torch():
    node = helper.make_node("Conv", ["x", "w"], ["y"], strides=[2], auto_pad="SAME_LOWER")
    x, w = _rand(2, 3, 8), _rand(4, 3, 4)
    f = _model(node, [("x", x.shape), ("w", w.shape)])
    # output ceil(8 / 2) = 4 needs 2 pads; SAME_LOWER puts the odd one first (here 1 / 1)
    check(f, lambda x, w: F.conv1d(F.pad(x, (1, 1)), w, stride=2), [x, w], (0, 1), np.float64)


def test_conv_transpose_output_padding_groups_dilations_gradients_equal_torch():
    node = helper.make_node(
        "ConvTranspose",
        ["x", "w", "b"],
        ["y"],
        strides=[2, 3],
        pads=[1, 1, 1, 1],
        output_padding=[1, 2],
        dilations=[1, 2],
        group=2,
    )
    x, w, b = _rand(2, 4, 5, 4), _rand(4, 3, 3, 3), _rand(6)
    f = _model(node, [("x", x.shape), ("w", w.shape), ("b", b.shape)])

    def ref(x, w, b):
        return F.conv_transpose2d(
            x, w, b, stride=(2, 3), padding=1, output_padding=(1, 2), groups=2, dilation=(1, 2)
        )

    check(f, ref, [x, w, b], (0, 1, 2), np.float64)


def test_conv_transpose_output_shape_sets_the_pads():
    # full size 3 * (3 - 1) + 3 = 9; output_shape 10 -> total pad -1: one zero row at the end
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[3], output_shape=[10])
    x, w = _rand(1, 2, 3), _rand(2, 1, 3)
    got = _model(node, [("x", x.shape), ("w", w.shape)])(x, w).numpy()
    want = F.conv_transpose1d(torch.tensor(x), torch.tensor(w), stride=3, output_padding=1)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("include_pad", [0, 1])
def test_average_pool_ceil_mode_gradients_equal_torch(include_pad):
    node = helper.make_node(
        "AveragePool",
        ["x"],
        ["y"],
        kernel_shape=[3, 2],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        ceil_mode=1,
        count_include_pad=include_pad,
    )
    x = _rand(2, 3, 6, 7)
    f = _model(node, [("x", x.shape)])

    def ref(x):
        return F.avg_pool2d(x, (3, 2), 2, 1, ceil_mode=True, count_include_pad=bool(include_pad))

    check(f, ref, [x], (0,), np.float64)


def test_max_pool_ceil_mode_dilations_gradients_equal_torch():
    node = helper.make_node(
        "MaxPool", ["x"], ["y"], kernel_shape=[2, 3], strides=[2, 2], pads=[1, 1, 1, 1],
        dilations=[2, 1], ceil_mode=1,
    )  # fmt: skip
    x = _rand(2, 3, 8, 7)
    f = _model(node, [("x", x.shape)])
    ref = lambda x: F.max_pool2d(x, (2, 3), 2, 1, dilation=(2, 1), ceil_mode=True)  # noqa: E731
    check(f, ref, [x], (0,), np.float64)


def _torch_order(w, blocks, hidden):
    """ONNX gate blocks rearranged into torch's order (a differentiable index)."""
    idx = np.concatenate([np.arange(b * hidden, (b + 1) * hidden) for b in blocks])
    return w[..., idx, :] if w.dim() > 1 else w[idx]


def _torch_rnn(module, x, w, r, b, states, blocks, hidden, batch_first):
    """``module`` (a bidirectional torch LSTM/GRU) run with ONNX-layout weights."""
    params = {}
    for d, suffix in enumerate(("", "_reverse")):
        params[f"weight_ih_l0{suffix}"] = _torch_order(w[d], blocks, hidden)
        params[f"weight_hh_l0{suffix}"] = _torch_order(r[d], blocks, hidden)
        params[f"bias_ih_l0{suffix}"] = _torch_order(b[d, : len(blocks) * hidden], blocks, hidden)
        params[f"bias_hh_l0{suffix}"] = _torch_order(b[d, len(blocks) * hidden :], blocks, hidden)
    return torch.func.functional_call(module, params, (x, states))


def test_lstm_bidirectional_gradients_equal_torch():
    t, n, feat, hidden = 4, 2, 3, 5
    node = helper.make_node(
        "LSTM",
        ["x", "w", "r", "b", "", "h0", "c0"],
        ["y", "yh", "yc"],
        hidden_size=hidden,
        direction="bidirectional",
    )
    args = [
        _rand(t, n, feat),
        _rand(2, 4 * hidden, feat) * 0.5,
        _rand(2, 4 * hidden, hidden) * 0.5,
        _rand(2, 8 * hidden) * 0.5,
        _rand(2, n, hidden),
        _rand(2, n, hidden),
    ]
    names = ["x", "w", "r", "b", "h0", "c0"]
    f = _model(node, [(k, a.shape) for k, a in zip(names, args, strict=True)], n_outputs=3)
    lstm = torch.nn.LSTM(feat, hidden, bidirectional=True).double()

    def ref(x, w, r, b, h0, c0):  # torch gates i, f, g, o = ONNX blocks 0, 2, 3, 1
        y, (yh, yc) = _torch_rnn(lstm, x, w, r, b, (h0, c0), (0, 2, 3, 1), hidden, False)
        return y.reshape(t, n, 2, hidden).transpose(1, 2), yh, yc

    check(f, ref, args, tuple(range(6)), np.float64)


def test_gru_batch_major_linear_before_reset_gradients_equal_torch():
    t, n, feat, hidden = 3, 2, 4, 3
    node = helper.make_node(
        "GRU",
        ["x", "w", "r", "b", "", "h0"],
        ["y", "yh"],
        hidden_size=hidden,
        direction="bidirectional",
        linear_before_reset=1,  # torch's GRU
        layout=1,
    )
    args = [
        _rand(n, t, feat),
        _rand(2, 3 * hidden, feat) * 0.5,
        _rand(2, 3 * hidden, hidden) * 0.5,
        _rand(2, 6 * hidden) * 0.5,
        _rand(n, 2, hidden),
    ]
    names = ["x", "w", "r", "b", "h0"]
    f = _model(node, [(k, a.shape) for k, a in zip(names, args, strict=True)], n_outputs=2)
    gru = torch.nn.GRU(feat, hidden, bidirectional=True, batch_first=True).double()

    def ref(x, w, r, b, h0):  # torch gates r, z, n = ONNX blocks 1, 0, 2
        y, yh = _torch_rnn(gru, x, w, r, b, h0.transpose(0, 1), (1, 0, 2), hidden, True)
        return y.reshape(n, t, 2, hidden), yh.transpose(0, 1)

    check(f, ref, args, tuple(range(5)), np.float64)


@pytest.mark.parametrize("lens_from", ["initializer", "graph input"])
def test_lstm_sequence_lens_equal_torch_packed_sequences(lens_from):
    """Bidirectional: forward steps past a sample's length are masked, the reverse
    direction starts at each sample's own last step; lengths known or only at run time
    (then also compiled)."""
    t, n, feat, hidden = 5, 3, 2, 4
    lens = np.array([3, 5, 2], np.int32)
    node = helper.make_node(
        "LSTM",
        ["x", "w", "r", "", "lens"],
        ["y", "yh", "yc"],
        hidden_size=hidden,
        direction="bidirectional",
    )
    x, w, r = _rand(t, n, feat), _rand(2, 4 * hidden, feat), _rand(2, 4 * hidden, hidden)
    inputs = [helper.make_tensor_value_info(k, F64, v.shape) for k, v in (("x", x), ("w", w))]
    inputs.append(helper.make_tensor_value_info("r", F64, r.shape))
    inits = []
    if lens_from == "graph input":
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, lens.shape))
    else:
        inits.append(numpy_helper.from_array(lens, "lens"))
    outputs = [helper.make_tensor_value_info(o, F64, None) for o in ("y", "yh", "yc")]
    graph = helper.make_graph([node], "g", inputs, outputs, inits)
    f = nc.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)]))
    args = (x, w, r, lens) if lens_from == "graph input" else (x, w, r)
    y, yh, yc = (v.numpy() for v in f(*args))
    if lens_from == "graph input":
        for got, want in zip(nc.compile(f, backend="llvm")(*args), (y, yh, yc), strict=True):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)
    lstm = torch.nn.LSTM(feat, hidden, bidirectional=True).double()
    with torch.no_grad():
        for d, suffix in enumerate(("", "_reverse")):
            for name, v in (("weight_ih_l0", w[d]), ("weight_hh_l0", r[d])):
                getattr(lstm, name + suffix).copy_(
                    _torch_order(torch.tensor(v), (0, 2, 3, 1), hidden)
                )
            getattr(lstm, "bias_ih_l0" + suffix).zero_()
            getattr(lstm, "bias_hh_l0" + suffix).zero_()
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            torch.tensor(x), torch.tensor(lens), enforce_sorted=False
        )
        out, (th, tc) = lstm(packed)
        ty, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=t)
    ty = ty.numpy().reshape(t, n, 2, hidden).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(yh, th.numpy(), rtol=1e-10)
    np.testing.assert_allclose(yc, tc.numpy(), rtol=1e-10)


def test_recurrent_refusals_name_what_is_missing():
    node = helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2, clip=1.0)
    f = _model(node, [("x", (2, 1, 3)), ("w", (1, 8, 3)), ("r", (1, 8, 2))])
    with pytest.raises(nc.onnx.UnsupportedError, match="clip"):
        f(_rand(2, 1, 3), _rand(1, 8, 3), _rand(1, 8, 2))
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    f = _model(node, [("x", (1, 1, 3, 3, 3)), ("w", (1, 1, 2, 2, 2))])
    with pytest.raises(nc.onnx.UnsupportedError, match="3-D Conv"):
        f(_rand(1, 1, 3, 3, 3), _rand(1, 1, 2, 2, 2))
    node = helper.make_node(
        "MaxPool", ["x"], ["y"], kernel_shape=[2, 2], auto_pad="SAME_UPPER", dilations=[2, 1]
    )  # the spec, ONNX Runtime and ONNX's reference give three different answers
    with pytest.raises(nc.onnx.UnsupportedError, match="auto_pad='SAME_UPPER' with dilations"):
        _model(node, [("x", (1, 1, 5, 5))])(_rand(1, 1, 5, 5))
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])
    with pytest.raises(nc.onnx.UnsupportedError, match="Indices"):
        _model(node, [("x", (1, 1, 4, 4))], n_outputs=2)(_rand(1, 1, 4, 4))


RESIZES = [
    # (attributes, scales or sizes, torch interpolate kwargs)
    (dict(mode="linear"), [1, 1, 2, 1.5], dict(mode="bilinear", align_corners=False)),
    (
        dict(mode="linear", coordinate_transformation_mode="align_corners"),
        [1, 1, 2, 3],
        dict(mode="bilinear", align_corners=True),
    ),
    (
        dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        [1, 1, 2, 3],
        dict(mode="nearest"),
    ),
    (
        dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
        np.array([2, 3, 3, 2], np.int64),  # sizes, downsampling (ONNX maps a size-1 output
        # axis to source 0 where torch takes the centre, so none here)
        dict(mode="bilinear", align_corners=False),
    ),
    (dict(mode="cubic"), [1, 1, 2, 2], dict(mode="bicubic", align_corners=False)),
]


@pytest.mark.parametrize("attrs,factors,kwargs", RESIZES)
def test_resize_with_constant_scales_gradients_equal_torch_interpolate(attrs, factors, kwargs):
    x = _rand(2, 3, 4, 5)
    factors = factors if isinstance(factors, np.ndarray) else np.asarray(factors, np.float32)
    is_sizes = factors.dtype == np.int64
    slot = ["x", "", "", "sizes"] if is_sizes else ["x", "", "scales"]
    node = helper.make_node("Resize", slot, ["y"], **attrs)
    init = ("sizes", factors) if is_sizes else ("scales", factors)
    f = _model(node, [("x", x.shape)], inits=[init])
    size = tuple(int(s) for s in factors[2:]) if is_sizes else None
    scale = None if is_sizes else tuple(float(s) for s in factors[2:])
    check(
        f,
        lambda x: F.interpolate(x, size=size, scale_factor=scale, **kwargs),
        [x],
        (0,),
        np.float64,
    )


def test_compiled_model_and_gradient_equal_eager():
    """Conv -> BatchNormalization -> MaxPool -> LRN -> GlobalAveragePool -> Gemm in float32,
    weights as initializers (parameters): LLVM-compiled output and parameter gradients
    equal eager."""
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"]),
        helper.make_node("MaxPool", ["n"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("LRN", ["p"], ["l"], size=3),
        helper.make_node("GlobalAveragePool", ["l"], ["g"]),
        helper.make_node("Reshape", ["g", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fw", "fb"], ["y"], transB=1, alpha=0.5),
    ]
    f32 = np.float32
    inits = {
        "cw": _rand(4, 2, 3, 3).astype(f32),
        "cb": _rand(4).astype(f32),
        "s": _rand(4).astype(f32),
        "bb": _rand(4).astype(f32),
        "m": _rand(4).astype(f32),
        "v": RNG.uniform(0.5, 2, 4).astype(f32),
        "shape": np.array([0, -1], np.int64),
        "fw": _rand(3, 4).astype(f32),
        "fb": _rand(3).astype(f32),
    }
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F32, (2, 2, 6, 6))],
        [helper.make_tensor_value_info("y", F32, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    f = nc.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    x = _rand(2, 2, 6, 6).astype(f32)
    np.testing.assert_allclose(
        np.asarray(nc.compile(f, backend="llvm")(x)), f(x).numpy(), rtol=1e-5, atol=1e-6
    )

    def loss(params, x):
        return nc.sum(nc.square(f.apply(params, x)))

    eager = nc.grad(loss)(f.params, x)
    compiled = nc.compile(nc.grad(loss), backend="llvm")(f.params, x)
    assert set(eager) == {"cw", "cb", "s", "bb", "m", "v", "fw", "fb"}
    for k in eager:
        np.testing.assert_allclose(
            np.asarray(compiled[k]), np.asarray(eager[k]), rtol=1e-4, atol=1e-5, err_msg=k
        )


@pytest.mark.parametrize(
    "op,opset,attrs,scales",
    [
        ("Resize", 10, dict(mode="nearest"), [1, 1, 1.7, 0.6]),  # shrinking rounds up
        ("Resize", 10, dict(mode="linear"), [1, 1, 0.6, 1.7]),
        (
            "Resize",
            11,
            dict(coordinate_transformation_mode="tf_half_pixel_for_nn"),
            [1, 1, 1.5, 0.5],
        ),
        ("Upsample", 9, dict(mode="linear"), [1, 1, 2, 3]),
        ("Upsample", 9, dict(mode="nearest"), [1, 1, 2, 1.5]),
    ],
)
def test_old_resize_and_upsample_equal_onnxruntime(op, opset, attrs, scales):
    """Resize-10/11 specifics and Upsample, which ONNX's reference implementation does not
    run, against ONNX Runtime."""
    ort = pytest.importorskip("onnxruntime")
    x = _rand(1, 2, 5, 8).astype(np.float32)
    inputs = ["x", "roi", "scales"] if opset >= 11 else ["x", "scales"]
    node = helper.make_node(op, inputs, ["y"], **attrs)
    inits = [("scales", np.asarray(scales, np.float32)), ("roi", np.zeros(0, np.float32))]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", F32, x.shape)],
        [helper.make_tensor_value_info("y", F32, None)],
        [numpy_helper.from_array(v, k) for k, v in inits if k in inputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x})[0]
    np.testing.assert_allclose(nc.onnx.load(model)(x).numpy(), want, rtol=1e-6, atol=1e-6)
