"""The sampling, spectral and geometry converters where ONNX's node suite does not reach:
AffineGrid, TensorScatter, DFT/STFT, GridSample, Col2Im, MaxUnpool, RoiAlign, DeformConv,
Det and TfIdfVectorizer against PyTorch, NumPy or ONNX's reference, gradients included."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import helper  # noqa: E402

import nncompile as nc  # noqa: E402

from ..nncompile.torch_support import check, torch  # noqa: E402
from .one_node import F32, F64, I64, RNG, _model, _rand  # noqa: E402

F = torch.nn.functional


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
