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
from .one_node import F32, F64, I64, RNG, _model, _rand  # noqa: E402

F = torch.nn.functional


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
