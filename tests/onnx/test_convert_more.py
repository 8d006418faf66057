"""Attention, the losses and the other newer converters where ONNX's node suite does not
reach: gradients against PyTorch in float64 (Attention with grouped heads, a causal and an
additive mask; SoftmaxCrossEntropyLoss with weights and ignore_index; RMSNormalization;
RotaryEmbedding; LpPool; CumProd; TopK), a fully masked attention row (zeros and finite
gradients, not NaN), and an LLVM-compiled model with its gradient against eager."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nncompile as nc  # noqa: E402

from ..nncompile.torch_support import check, torch  # noqa: E402

F = torch.nn.functional
F64, F32, I64 = TensorProto.DOUBLE, TensorProto.FLOAT, TensorProto.INT64
RNG = np.random.default_rng(0)


def _model(node, inputs, n_outputs=1, inits=(), opset=24):
    """One node; ``inputs`` are (name, elem type, shape) graph inputs, ``inits`` (name,
    array) initializers."""
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, e, s) for n, e, s in inputs],
        [helper.make_tensor_value_info(o, F64, None) for o in node.output[:n_outputs] if o],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits],
    )
    return nc.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def _rand(*shape):
    return RNG.standard_normal(shape)


def _torch_attention(q, k, v, bias, scale, reps):
    k, v = k.repeat_interleave(reps, dim=1), v.repeat_interleave(reps, dim=1)
    return torch.softmax(q @ k.transpose(-1, -2) * scale + bias, dim=-1) @ v


def test_attention_gqa_causal_mask_gradients_equal_torch():
    node = helper.make_node(
        "Attention", ["q", "k", "v", "m"], ["y"], is_causal=1, scale=0.25, softcap=0.0
    )
    q, k, v = _rand(2, 4, 3, 5), _rand(2, 2, 6, 5), _rand(2, 2, 6, 4)
    mask = _rand(3, 6)
    shapes = [("q", q.shape), ("k", k.shape), ("v", v.shape), ("m", mask.shape)]
    f = _model(node, [(n, F64, s) for n, s in shapes])
    # causal with no cache is top-left: query i sees keys j <= i
    causal = torch.triu(torch.full((3, 6), -torch.inf, dtype=torch.float64), diagonal=1)
    check(
        f,
        lambda q, k, v, m: _torch_attention(q, k, v, m + causal, 0.25, 2),
        [q, k, v, mask],
        (0, 1, 2, 3),
        np.float64,
    )


def test_attention_3d_with_past_gradients_equal_torch():
    """3-D inputs (heads packed in the hidden axis) with a KV cache: Y and the present
    key and value, and gradients through all of them."""
    node = helper.make_node(
        "Attention",
        ["q", "k", "v", "", "pk", "pv"],
        ["y", "present_k", "present_v"],
        q_num_heads=2,
        kv_num_heads=2,
    )
    q, k, v = _rand(1, 3, 8), _rand(1, 2, 8), _rand(1, 2, 6)
    pk, pv = _rand(1, 2, 4, 4), _rand(1, 2, 4, 3)
    shapes = [("q", q.shape), ("k", k.shape), ("v", v.shape), ("pk", pk.shape), ("pv", pv.shape)]
    f = _model(node, [(n, F64, s) for n, s in shapes], n_outputs=3)

    def ref(q, k, v, pk, pv):
        def heads(x):
            return x.reshape(1, x.shape[1], 2, -1).transpose(1, 2)

        key = torch.cat([pk, heads(k)], dim=2)
        value = torch.cat([pv, heads(v)], dim=2)
        y = _torch_attention(heads(q), key, value, 0.0, 0.5, 1)
        return y.transpose(1, 2).reshape(1, 3, -1), key, value

    check(f, ref, [q, k, v, pk, pv], (0, 1, 2, 3, 4), np.float64)


def test_attention_fully_masked_row_is_zero_with_finite_gradients():
    node = helper.make_node("Attention", ["q", "k", "v", "m"], ["y"])
    q, k, v = _rand(1, 1, 2, 3), _rand(1, 1, 3, 3), _rand(1, 1, 3, 3)
    mask = np.array([[True, False, True], [False, False, False]])
    inputs = [("q", F64, q.shape), ("k", F64, k.shape), ("v", F64, v.shape)]
    f = _model(node, [*inputs, ("m", TensorProto.BOOL, mask.shape)])
    y = f(q, k, v, mask).numpy()
    assert (y[0, 0, 1] == 0).all() and np.isfinite(y).all()
    grads = nc.grad(lambda q, k, v: nc.sum(f(q, k, v, mask)), argnums=(0, 1, 2))(q, k, v)
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    assert (np.asarray(grads[1])[0, 0, 1] == 0).all()  # the masked-out key gets nothing


@pytest.mark.parametrize("with_weight", [False, True])
def test_softmax_cross_entropy_gradients_equal_torch(with_weight):
    names = ["x", "t", "w"] if with_weight else ["x", "t"]
    node = helper.make_node("SoftmaxCrossEntropyLoss", names, ["loss"], ignore_index=1)
    x, t, w = _rand(4, 5, 3), RNG.integers(0, 5, (4, 3)), RNG.uniform(0.5, 2, 5)
    t[0, 0] = 1
    inputs = [("x", F64, x.shape), ("t", I64, t.shape)] + [("w", F64, w.shape)] * with_weight
    f = _model(node, inputs, opset=13)
    args = [x, t, w] if with_weight else [x, t]

    def ref(x, t, w=None):
        return F.cross_entropy(x, t, weight=w, ignore_index=1)

    check(f, ref, args, (0,), np.float64)  # torch has no gradient for the weight


def test_negative_log_likelihood_loss_none_equals_torch():
    node = helper.make_node("NegativeLogLikelihoodLoss", ["x", "t"], ["loss"], reduction="none")
    x, t = _rand(3, 4, 2, 2), RNG.integers(0, 4, (3, 2, 2))
    f = _model(node, [("x", F64, x.shape), ("t", I64, t.shape)], opset=22)
    check(f, lambda x, t: F.nll_loss(x, t, reduction="none"), [x, t], (0,), np.float64)


def test_rms_normalization_gradients_equal_torch():
    node = helper.make_node("RMSNormalization", ["x", "s"], ["y"], axis=-2, epsilon=1e-3)
    x, s = _rand(2, 3, 4), _rand(3, 4)
    f = _model(node, [("x", F64, x.shape), ("s", F64, s.shape)], opset=23)
    check(f, lambda x, s: F.rms_norm(x, (3, 4), s, eps=1e-3), [x, s], (0, 1), np.float64)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_gradients_equal_torch(interleaved):
    """A partial rotation (6 of 8 features) of 4-D input, caches read by position ids."""
    node = helper.make_node(
        "RotaryEmbedding",
        ["x", "cos", "sin", "pos"],
        ["y"],
        interleaved=interleaved,
        rotary_embedding_dim=6,
    )
    x, angles = _rand(2, 3, 4, 8), _rand(10, 3)
    pos = RNG.integers(0, 10, (2, 4))
    cos, sin = np.cos(angles), np.sin(angles)
    inputs = [("x", F64, x.shape), ("cos", F64, cos.shape), ("sin", F64, sin.shape)]
    f = _model(node, [*inputs, ("pos", I64, pos.shape)], opset=23)

    def ref(x, cos, sin, pos):
        c, s = cos[pos][:, None], sin[pos][:, None]  # (batch, 1, seq, 3)
        rot, rest = x[..., :6], x[..., 6:]
        if interleaved:
            x1, x2 = rot[..., 0::2], rot[..., 1::2]
            pairs = torch.stack([c * x1 - s * x2, s * x1 + c * x2], dim=-1)
            rot = pairs.reshape(rot.shape)
        else:
            x1, x2 = rot[..., :3], rot[..., 3:]
            rot = torch.cat([c * x1 - s * x2, s * x1 + c * x2], dim=-1)
        return torch.cat([rot, rest], dim=-1)

    check(f, ref, [x, cos, sin, pos], (0, 1, 2), np.float64)


def test_lp_pool_gradients_equal_torch():
    node = helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 3], strides=[1, 2], p=3)
    x = _rand(2, 3, 5, 7)
    f = _model(node, [("x", F64, x.shape)], opset=22)
    # torch's lp_pool2d is sum(x^p)^(1/p) without the absolute value: positive inputs
    check(f, lambda x: F.lp_pool2d(x, 3, (2, 3), (1, 2)), [np.abs(x) + 0.1], (0,), np.float64)


@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 1)])
def test_cumprod_gradients_equal_torch(exclusive, reverse):
    node = helper.make_node("CumProd", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)
    x = _rand(3, 7)
    f = _model(node, [("x", F64, x.shape)], inits=[("axis", np.array(1))], opset=26)

    def ref(x):
        v = x.flip(1) if reverse else x
        if exclusive:
            v = torch.cat([torch.ones_like(v[:, :1]), v[:, :-1]], dim=1)
        y = torch.cumprod(v, dim=1)
        return y.flip(1) if reverse else y

    check(f, ref, [x], (0,), np.float64)


def test_top_k_smallest_gradients_equal_torch():
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=0, largest=0)
    x = _rand(6, 3)
    f = _model(node, [("x", F64, x.shape)], n_outputs=2, inits=[("k", np.array([2]))], opset=11)
    check(f, lambda x: torch.topk(x, 2, dim=0, largest=False), [x], (0,), np.float64)


def test_compiled_model_and_gradient_equal_eager():
    """RMSNormalization -> Attention (grouped heads, causal) -> SoftmaxCrossEntropyLoss
    in float32 with the scale as a parameter: LLVM-compiled loss and gradients equal eager."""
    nodes = [
        helper.make_node("RMSNormalization", ["q", "s"], ["qn"]),
        helper.make_node("Attention", ["qn", "k", "v"], ["a"], is_causal=1),
        helper.make_node("Reshape", ["a", "shape"], ["logits"]),
        helper.make_node("SoftmaxCrossEntropyLoss", ["logits", "t"], ["y"]),
    ]
    inits = {"s": _rand(4).astype(np.float32), "shape": np.array([6, 4], np.int64)}
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("q", F32, (1, 2, 3, 4)),
            helper.make_tensor_value_info("k", F32, (1, 1, 5, 4)),
            helper.make_tensor_value_info("v", F32, (1, 1, 5, 4)),
            helper.make_tensor_value_info("t", I64, (6,)),
        ],
        [helper.make_tensor_value_info("y", F32, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    f = nc.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)]))
    q, k, v = (_rand(*s).astype(np.float32) for s in [(1, 2, 3, 4), (1, 1, 5, 4), (1, 1, 5, 4)])
    t = RNG.integers(0, 4, 6)
    np.testing.assert_allclose(
        np.asarray(nc.compile(f, backend="llvm")(q, k, v, t)), f(q, k, v, t).numpy(), rtol=1e-5
    )

    def loss(params, q, k, v):
        return f.apply(params, q, k, v, t)

    eager = nc.grad(loss, argnums=(0, 1, 2, 3))(f.params, q, k, v)
    compiled = nc.compile(nc.grad(loss, argnums=(0, 1, 2, 3)), backend="llvm")(f.params, q, k, v)
    np.testing.assert_allclose(np.asarray(compiled[0]["s"]), np.asarray(eager[0]["s"]), rtol=1e-4)
    for got, want in zip(compiled[1:], eager[1:], strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-6)


def test_reverse_sequence_compiled_with_lengths_as_input_equals_eager():
    """sequence_lens as a graph input (computed, not folded): compiled equals eager,
    and the gradient of a time-major reversal routes each element back."""
    node = helper.make_node("ReverseSequence", ["x", "n"], ["y"], batch_axis=1, time_axis=0)
    x, n = _rand(4, 3, 2).astype(np.float32), np.array([4, 1, 2])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", F32, x.shape)]
        + [helper.make_tensor_value_info("n", I64, n.shape)],
        [helper.make_tensor_value_info("y", F32, None)],
    )
    f = nc.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)]))
    want = x.copy()
    for b, m in enumerate(n):
        want[:m, b] = x[:m, b][::-1]
    np.testing.assert_array_equal(f(x, n).numpy(), want)
    np.testing.assert_array_equal(np.asarray(nc.compile(f, backend="llvm")(x, n)), want)
    weights = _rand(4, 3, 2).astype(np.float32)
    grad = nc.grad(lambda x: nc.sum(f(x, n) * weights))(x)
    want_grad = weights.copy()
    for b, m in enumerate(n):
        want_grad[:m, b] = weights[:m, b][::-1]
    np.testing.assert_array_equal(np.asarray(grad), want_grad)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
def test_windows_equal_torch(op):
    node = helper.make_node(op, ["size"], ["y"], periodic=0, output_datatype=11)
    f = _model(node, [], inits=[("size", np.array(9))], opset=17)
    f64 = torch.float64
    make = {
        "HannWindow": lambda: torch.hann_window(9, periodic=False, dtype=f64),
        # ONNX's Hamming coefficients are the exact 25/46 and 21/46 (torch: 0.54, 0.46)
        "HammingWindow": lambda: torch.hamming_window(9, False, 25 / 46, 21 / 46, dtype=f64),
        "BlackmanWindow": lambda: torch.blackman_window(9, periodic=False, dtype=f64),
    }
    want = make[op]().numpy()
    np.testing.assert_allclose(np.asarray(f()), want, rtol=1e-12, atol=1e-15)


def test_causal_conv_with_state_gradients_equal_torch():
    node = helper.make_node("CausalConvWithState", ["x", "w", "b", "past"], ["y", "state"])
    x, w, b, past = _rand(2, 3, 5), _rand(3, 1, 4), _rand(3), _rand(2, 3, 3)
    shapes = [("x", x.shape), ("w", w.shape), ("b", b.shape), ("past", past.shape)]
    f = _model(node, [(n, F64, s) for n, s in shapes], n_outputs=2, opset=27)

    def ref(x, w, b, past):
        padded = torch.cat([past, x], dim=2)
        return F.conv1d(padded, w, b, groups=3), padded[:, :, -3:]

    check(f, ref, [x, w, b, past], (0, 1, 2, 3), np.float64)


def test_linear_attention_compiled_and_gradient_equal_eager():
    """gated_delta with grouped query heads and a past state, unrolled over 4 steps:
    LLVM-compiled output, state and gradients equal eager (float32)."""
    node = helper.make_node(
        "LinearAttention",
        ["q", "k", "v", "past", "decay", "beta"],
        ["y", "state"],
        q_num_heads=4,
        kv_num_heads=2,
    )
    f32 = np.float32
    args = [
        _rand(1, 4, 12).astype(f32),
        (_rand(1, 4, 6) * 0.3).astype(f32),
        _rand(1, 4, 6).astype(f32),
        (_rand(1, 2, 3, 3) * 0.1).astype(f32),
        -RNG.uniform(0.05, 0.5, (1, 4, 2)).astype(f32),
        RNG.uniform(0.2, 0.9, (1, 4, 2)).astype(f32),
    ]
    names = ["q", "k", "v", "past", "decay", "beta"]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, F32, a.shape) for n, a in zip(names, args, strict=True)],
        [helper.make_tensor_value_info(o, F32, None) for o in ("y", "state")],
    )
    f = nc.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 27)]))
    eager = [np.asarray(o) for o in f(*args)]
    compiled = [np.asarray(o) for o in nc.compile(f, backend="llvm")(*args)]
    for got, want in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    def loss(*a):
        y, state = f(*a)
        return nc.sum(y * y) + nc.sum(state)

    argnums = tuple(range(6))
    g_eager = nc.grad(loss, argnums=argnums)(*args)
    g_compiled = nc.compile(nc.grad(loss, argnums=argnums), backend="llvm")(*args)
    for got, want in zip(g_compiled, g_eager, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("align", [0, 1])
@pytest.mark.parametrize("size", [(2, 1, 3, 4), (2, 1, 2, 3, 4)])
def test_affine_grid_gradients_equal_torch(align, size):
    node = helper.make_node("AffineGrid", ["theta", "size"], ["grid"], align_corners=align)
    d = len(size) - 2
    theta = _rand(2, d, d + 1)
    f = _model(node, [("theta", F64, theta.shape)], inits=[("size", np.array(size))], opset=20)
    check(
        f,
        lambda t: F.affine_grid(t, list(size), align_corners=bool(align)),
        [theta],
        (0,),
        np.float64,
    )


def test_tensor_scatter_circular_compiled_equals_a_loop():
    """Write positions as a graph input, wrapping around the cache: compiled equals
    eager equals ONNX's reference loop."""
    node = helper.make_node("TensorScatter", ["cache", "upd", "at"], ["y"], mode="circular")
    cache, upd = _rand(2, 3, 5, 2).astype(np.float32), _rand(2, 3, 3, 2).astype(np.float32)
    at = np.array([4, 1])
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("cache", F32, cache.shape),
            helper.make_tensor_value_info("upd", F32, upd.shape),
            helper.make_tensor_value_info("at", I64, at.shape),
        ],
        [helper.make_tensor_value_info("y", F32, None)],
    )
    f = nc.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)]))
    want = cache.copy()
    for b in range(2):
        for s in range(3):
            want[b, :, (at[b] + s) % 5] = upd[b, :, s]
    np.testing.assert_array_equal(f(cache, upd, at).numpy(), want)
    np.testing.assert_array_equal(np.asarray(nc.compile(f, backend="llvm")(cache, upd, at)), want)


def _complex(x: np.ndarray) -> np.ndarray:
    return x[..., 0] + 1j * x[..., 1] if x.shape[-1] == 2 else x[..., 0]


def _as_parts(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], axis=-1)


@pytest.mark.parametrize(
    "parts,n,inverse,onesided",
    [
        (2, 5, 0, 0),  # complex, zero-padded
        (1, 3, 0, 1),  # real, truncated, one-sided
        (2, 6, 1, 0),  # complex inverse, padded
        (2, 7, 1, 1),  # inverse of a one-sided spectrum, odd length
        (2, 4, 1, 1),  # even length: the Nyquist bin counts once
    ],
)
def test_dft_equals_numpy_fft(parts, n, inverse, onesided):
    node = helper.make_node("DFT", ["x", "n", "axis"], ["y"], inverse=inverse, onesided=onesided)
    x = _rand(2, 4, 3, parts)
    inits = [("n", np.array(n)), ("axis", np.array(1))]
    f = _model(node, [("x", F64, x.shape)], inits=inits, opset=20)
    z = _complex(x)
    if not inverse:
        want = _as_parts(np.fft.fft(z, n=n, axis=1))
        want = want[:, : n // 2 + 1] if onesided else want
    elif onesided:
        want = np.fft.irfft(z, n=n, axis=1)[..., None]
    else:
        want = _as_parts(np.fft.ifft(z, n=n, axis=1))
    np.testing.assert_allclose(f(x).numpy(), want, rtol=1e-10, atol=1e-12)


def test_dft_real_one_sided_gradients_equal_torch():
    node = helper.make_node("DFT", ["x", "", "axis"], ["y"], onesided=1)
    x = _rand(2, 6, 1)
    f = _model(node, [("x", F64, x.shape)], inits=[("axis", np.array(-2))], opset=20)
    check(f, lambda x: torch.view_as_real(torch.fft.rfft(x[..., 0], dim=1)), [x], (0,), np.float64)


def test_stft_with_window_gradients_equal_torch():
    node = helper.make_node("STFT", ["x", "step", "w", "n"], ["y"], onesided=1)
    x, w = _rand(2, 12, 1), np.hanning(6)
    inits = [("step", np.array(2)), ("n", np.array(6))]
    f = _model(node, [("x", F64, x.shape), ("w", F64, w.shape)], inits=inits, opset=17)

    def ref(x, w):
        spec = torch.stft(x[..., 0], 6, 2, window=w, center=False, return_complex=True)
        return torch.view_as_real(spec).transpose(1, 2)  # (batch, frames, bins, 2)

    check(f, ref, [x, w], (0, 1), np.float64)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_equals_onnx_reference_outside_the_image(mode, padding, align):
    """Grid positions well outside [-1, 1] (several reflections away)."""
    from onnx.reference import ReferenceEvaluator

    node = helper.make_node(
        "GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding, align_corners=align
    )
    x = _rand(1, 2, 3, 4).astype(np.float32)
    g = RNG.uniform(-3.5, 3.5, (1, 3, 5, 2)).astype(np.float32)
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", F32, x.shape),
            helper.make_tensor_value_info("g", F32, g.shape),
        ],
        [helper.make_tensor_value_info("y", F32, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    want = ReferenceEvaluator(model).run(None, {"x": x, "g": g})[0]
    np.testing.assert_allclose(nc.onnx.load(model)(x, g).numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "mode,padding",
    # (torch's bicubic border clamps each tap, ONNX the position: they differ near edges)
    [("linear", "zeros"), ("linear", "border"), ("linear", "reflection"), ("cubic", "zeros")],
)
def test_grid_sample_gradients_equal_torch(mode, padding):
    node = helper.make_node(
        "GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding, align_corners=0
    )
    x, g = _rand(2, 3, 4, 5), RNG.uniform(-1.2, 1.2, (2, 3, 2, 2))
    f = _model(node, [("x", F64, x.shape), ("g", F64, g.shape)], opset=22)
    torch_mode = {"linear": "bilinear", "cubic": "bicubic"}[mode]

    def ref(x, g):
        return F.grid_sample(x, g, mode=torch_mode, padding_mode=padding, align_corners=False)

    check(f, ref, [x, g], (0, 1), np.float64)


def test_col2im_gradients_equal_torch_fold():
    attrs = dict(strides=[2, 1], pads=[1, 0, 1, 2], dilations=[1, 2])
    node = helper.make_node("Col2Im", ["x", "image", "block"], ["y"], **attrs)
    # blocks: (5 + 2 - 2) // 2 + 1 = 3 rows, (6 + 2 - 5) // 1 + 1 = 4 columns
    x = _rand(2, 3 * 2 * 3, 12)
    inits = [("image", np.array([5, 6])), ("block", np.array([2, 3]))]
    f = _model(node, [("x", F64, x.shape)], inits=inits, opset=18)

    def ref(x):
        # torch pads symmetrically: fold onto the padded image, then crop ONNX's pads
        padded = F.fold(x, (7, 8), (2, 3), dilation=(1, 2), stride=(2, 1))
        return padded[:, :, 1:6, 0:6]

    check(f, ref, [x], (0,), np.float64)


def test_max_unpool_gradients_equal_torch():
    x = _rand(2, 3, 6, 6)
    pooled, idx = F.max_pool2d(torch.tensor(x), 2, 2, return_indices=True)
    # ONNX's indices count over the whole tensor; torch's within each (n, c) plane
    offsets = (np.arange(6).reshape(2, 3, 1, 1)) * 36
    onnx_idx = idx.numpy() + offsets
    attrs = dict(kernel_shape=[2, 2], strides=[2, 2])
    node = helper.make_node("MaxUnpool", ["x", "i", "shape"], ["y"], **attrs)
    inits = [("shape", np.array([2, 3, 7, 6]))]
    f = _model(node, [("x", F64, pooled.shape), ("i", I64, onnx_idx.shape)], inits=inits, opset=11)

    def ref(x, i):
        return F.pad(F.max_unpool2d(x, idx, 2, 2), (0, 0, 0, 1))

    check(f, ref, [pooled.numpy(), onnx_idx], (0,), np.float64)


def _check_finite_differences(loss, args, argnums, picks=5):
    """nc.grad of a float64 scalar loss against central differences at a few entries."""
    grads = nc.grad(loss, argnums=argnums)(*args)
    for arg, grad in zip(argnums, grads, strict=True):
        for flat in RNG.choice(args[arg].size, picks, replace=False):
            step = np.zeros(args[arg].size)
            step[flat] = 1e-6
            up, down = list(args), list(args)
            up[arg] = args[arg] + step.reshape(args[arg].shape)
            down[arg] = args[arg] - step.reshape(args[arg].shape)
            fd = (float(loss(*up)) - float(loss(*down))) / 2e-6
            got = np.asarray(grad).reshape(-1)[flat]
            np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-7, err_msg=f"arg {arg}")


def _roi_model(mode, transform, elem=F32):
    node = helper.make_node(
        "RoiAlign",
        ["x", "rois", "batch"],
        ["y"],
        mode=mode,
        output_height=3,
        output_width=2,
        sampling_ratio=2,
        spatial_scale=0.5,
        coordinate_transformation_mode=transform,
    )
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", elem, (2, 3, 6, 7)),
            helper.make_tensor_value_info("rois", elem, (4, 4)),
            helper.make_tensor_value_info("batch", I64, (4,)),
        ],
        [helper.make_tensor_value_info("y", elem, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("transform", ["half_pixel", "output_half_pixel"])
def test_roi_align_equals_onnx_reference(mode, transform):
    """Regions partly outside the image and past its last row and column."""
    from onnx.reference import ReferenceEvaluator

    model = _roi_model(mode, transform)
    x = _rand(2, 3, 6, 7).astype(np.float32)
    rois = np.array([[0, 0, 13, 11], [-4, -3, 5, 6], [10, 8, 16, 14], [2.5, 1.5, 3, 2]], np.float32)
    batch = np.array([0, 1, 1, 0])
    want = ReferenceEvaluator(model).run(None, {"x": x, "rois": rois, "batch": batch})[0]
    f = nc.onnx.load(model)
    np.testing.assert_allclose(f(x, rois, batch).numpy(), want, rtol=1e-5, atol=1e-6)
    compiled = nc.compile(f, backend="llvm")(x, rois, batch)
    np.testing.assert_allclose(np.asarray(compiled), want, rtol=1e-5, atol=1e-6)


def test_roi_align_gradients_equal_finite_differences():
    f = nc.onnx.load(_roi_model("avg", "half_pixel", F64))
    x, batch = _rand(2, 3, 6, 7), np.array([0, 1, 1, 0])
    rois = np.array([[1, 0.5, 11, 9], [0.3, 2, 6, 7], [4, 3, 12, 10], [2.5, 1.5, 9, 8]])
    weights = _rand(4, 3, 3, 2)

    def loss(x, rois):
        return nc.sum(f(x, rois, batch) * weights)

    _check_finite_differences(loss, [x, rois], (0, 1))


def test_deform_conv_groups_equals_onnx_reference_and_compiles():
    """group 2, offset_group 2, stride, dilation and asymmetric pads, mask and bias, with
    offsets that move taps off the image: eager and compiled equal ONNX's reference."""
    from onnx.reference import ReferenceEvaluator

    attrs = dict(group=2, offset_group=2, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 0, 2])
    node = helper.make_node("DeformConv", ["x", "w", "off", "b", "m"], ["y"], **attrs)
    x, w = _rand(1, 4, 5, 6).astype(np.float32), _rand(6, 2, 2, 3).astype(np.float32)
    off = (_rand(1, 2 * 6 * 2, 3, 4) * 1.5).astype(np.float32)
    b, m = _rand(6).astype(np.float32), RNG.uniform(0, 1, (1, 12, 3, 4)).astype(np.float32)
    args = {"x": x, "w": w, "off": off, "b": b, "m": m}
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(k, F32, v.shape) for k, v in args.items()],
        [helper.make_tensor_value_info("y", F32, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    want = ReferenceEvaluator(model).run(None, args)[0]
    f = nc.onnx.load(model)
    np.testing.assert_allclose(f(*args.values()).numpy(), want, rtol=1e-4, atol=1e-5)
    compiled = nc.compile(f, backend="llvm")(*args.values())
    np.testing.assert_allclose(np.asarray(compiled), want, rtol=1e-4, atol=1e-5)
    # gradients in float64 (the same node) against finite differences
    graph64 = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(k, F64, v.shape) for k, v in args.items()],
        [helper.make_tensor_value_info("y", F64, None)],
    )
    f64 = nc.onnx.load(helper.make_model(graph64, opset_imports=[helper.make_opsetid("", 22)]))
    weights = _rand(*want.shape)
    values = [v.astype(np.float64) for v in args.values()]
    _check_finite_differences(lambda *a: nc.sum(f64(*a) * weights), values, (0, 1, 2, 3, 4))


def test_det_gradients_equal_torch_and_pivoting():
    node = helper.make_node("Det", ["x"], ["y"])
    x = _rand(2, 3, 4, 4)
    x[0, 0, 0, 0] = 0.0  # the first pivot must come from another row
    f = _model(node, [("x", F64, x.shape)], opset=11)
    check(f, torch.linalg.det, [x], (0,), np.float64)
    singular = np.array([[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 5.0]], np.eye(3)[::-1]])
    g = _model(node, [("x", F64, singular.shape)], opset=11)
    np.testing.assert_allclose(g(singular).numpy(), [0.0, -1.0], atol=1e-12)


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("shape", [(12,), (3, 9)])
def test_tfidf_vectorizer_equals_onnx_reference(mode, shape):
    """Unigrams, bigrams and trigrams with skips up to 2 and per-column weights (the
    suite's cases are TF only)."""
    from onnx.reference import ReferenceEvaluator

    pool = [2, 3, 5, 2, 3, 3, 5, 4, 4, 2, 3, 5, 2, 2, 3]  # 3 unigrams, 3 bigrams, 2 trigrams
    node = helper.make_node(
        "TfIdfVectorizer",
        ["x"],
        ["y"],
        mode=mode,
        min_gram_length=1,
        max_gram_length=3,
        max_skip_count=2,
        ngram_counts=[0, 3, 9],
        ngram_indexes=[7, 0, 2, 6, 1, 4, 3, 5],
        pool_int64s=pool,
        weights=[0.5, 1.5, 2.0, 0.25, 1.0, 3.0, 0.75, 1.25],
    )
    x = RNG.integers(2, 6, shape).astype(np.int64)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", I64, shape)],
        [helper.make_tensor_value_info("y", F32, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    f = nc.onnx.load(model)
    np.testing.assert_array_equal(f(x).numpy(), want)
    np.testing.assert_array_equal(np.asarray(nc.compile(f, backend="llvm")(x)), want)
