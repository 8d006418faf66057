"""Keras-layout image and sequence layers (global pooling, ZeroPadding2D, Cropping2D,
DepthwiseConv2D, SeparableConv2D, LayerNormalization) against PyTorch in float64
(outputs and gradients of input and weights), compiled float32 against eager, Keras'
shapes, names and initialization, saving, and a short fit."""

import numpy as np
import pytest

from nncompile import nn, optim
from nncompile.errors import ConfigError, ShapeError

from .layer_checks import (
    built,
    check_compiled,
    check_layer,
    normal,
    round_trip,
    summary_rows,
    torch,
)
from .nn_support import blobs

F = torch.nn.functional
CL = "channels_last"


def nchw(t):
    return t.permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def distinct(*shape):
    """Distinct values, so every max is unique and its gradient well defined."""
    return (np.random.default_rng(3).permutation(int(np.prod(shape))) / 10.0 - 2).reshape(shape)


# ----------------------------------------------------------------------------- global pooling


GLOBAL_CASES = [
    # layer, data_format, input (batch excluded), torch on NC... data
    (nn.GlobalAveragePooling2D, CL, (4, 5, 3), lambda t: F.adaptive_avg_pool2d(t, 1)),
    (nn.GlobalAveragePooling2D, "channels_first", (3, 4, 5), lambda t: F.adaptive_avg_pool2d(t, 1)),
    (nn.GlobalMaxPooling2D, CL, (4, 5, 3), lambda t: F.adaptive_max_pool2d(t, 1)),
    (nn.GlobalMaxPooling2D, "channels_first", (3, 4, 5), lambda t: F.adaptive_max_pool2d(t, 1)),
    (nn.GlobalAveragePooling1D, CL, (6, 3), lambda t: F.adaptive_avg_pool1d(t, 1)),
    (nn.GlobalMaxPooling1D, CL, (6, 3), lambda t: F.adaptive_max_pool1d(t, 1)),
    (nn.GlobalMaxPooling1D, "channels_first", (3, 6), lambda t: F.adaptive_max_pool1d(t, 1)),
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("cls, data_format, shape, pool", GLOBAL_CASES)
def test_global_pooling_matches_torch(cls, data_format, shape, pool, keepdims):
    layer = built(cls(data_format=data_format, keepdims=keepdims), shape)
    rank = len(shape) + 1
    to_first = (0, rank - 1, *range(1, rank - 1))  # channels_last -> channels_first
    to_last = (0, *range(2, rank), 1)

    def theirs(x):
        t = x.permute(*to_first) if data_format == CL else x
        y = pool(t)  # channels_first with unit spatial axes
        if not keepdims:
            return y.flatten(1)
        return y.permute(*to_last) if data_format == CL else y

    check_layer(layer, theirs, distinct(2, *shape))
    want = (
        (1,) * (rank - 2) + (shape[-1],) if data_format == CL else (shape[0],) + (1,) * (rank - 2)
    )
    assert layer.output_shape == (
        want if keepdims else (want[-1] if data_format == CL else want[0],)
    )


# ----------------------------------------------------------------------------- padding, cropping


@pytest.mark.parametrize(
    "padding, borders",
    [(1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))), (((0, 2), (1, 3)), ((0, 2), (1, 3)))],
)
@pytest.mark.parametrize("data_format", [CL, "channels_first"])
def test_zero_padding2d_matches_torch(padding, borders, data_format):
    (top, bottom), (left, right) = borders
    shape = (4, 5, 2) if data_format == CL else (2, 4, 5)
    layer = built(nn.ZeroPadding2D(padding, data_format=data_format), shape)

    def theirs(x):
        t = nchw(x) if data_format == CL else x
        y = F.pad(t, (left, right, top, bottom))
        return nhwc(y) if data_format == CL else y

    check_layer(layer, theirs, normal(2, *shape))


@pytest.mark.parametrize(
    "cropping, borders",
    [(1, ((1, 1), (1, 1))), ((0, 2), ((0, 0), (2, 2))), (((2, 0), (1, 3)), ((2, 0), (1, 3)))],
)
@pytest.mark.parametrize("data_format", [CL, "channels_first"])
def test_cropping2d_matches_torch(cropping, borders, data_format):
    (top, bottom), (left, right) = borders
    shape = (5, 7, 2) if data_format == CL else (2, 5, 7)
    layer = built(nn.Cropping2D(cropping, data_format=data_format), shape)

    def theirs(x):
        t = nchw(x) if data_format == CL else x
        y = t[:, :, top : t.shape[2] - bottom, left : t.shape[3] - right]
        return nhwc(y) if data_format == CL else y

    check_layer(layer, theirs, normal(2, *shape))


# ----------------------------------------------------------------------------- depthwise, separable


def same_pads(size, kernel, stride, dilation=1):
    """Keras 'same': output ceil(size / stride), an odd total pad's extra row at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def torch_depthwise(t, kernel, bias, strides, padding, dilation):
    """t NCHW; kernel (kh, kw, C, m) -> groups=C conv, output channel c * m + j."""
    kh, kw, c, m = kernel.shape
    w = kernel.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    if padding == "same":
        top, bottom = same_pads(t.shape[2], kh, strides[0], dilation[0])
        left, right = same_pads(t.shape[3], kw, strides[1], dilation[1])
        t = F.pad(t, (left, right, top, bottom))
    return F.conv2d(t, w, bias, strides, 0, dilation, groups=c)


DEPTHWISE_CASES = [
    # kernel_size, strides, padding, depth_multiplier, dilation_rate, use_bias, data_format
    (3, 1, "valid", 1, 1, True, CL),
    ((3, 2), 2, "same", 2, 1, True, CL),
    (3, 1, "same", 3, 2, False, CL),
    (2, (2, 1), "valid", 2, 1, True, "channels_first"),
]


@pytest.mark.parametrize("kernel, strides, padding, m, dilation, use_bias, fmt", DEPTHWISE_CASES)
def test_depthwise_conv2d_matches_torch(kernel, strides, padding, m, dilation, use_bias, fmt):
    layer = nn.DepthwiseConv2D(
        kernel, strides, padding, m, fmt, dilation, activation="tanh", use_bias=use_bias
    )
    shape = (6, 7, 3) if fmt == CL else (3, 6, 7)
    built(layer, shape)
    layer.params = {k: normal(*v.shape) for k, v in layer.params.items()}  # nonzero bias
    pairs = (layer.strides, layer.dilation_rate)

    def theirs(x, kernel, bias=None):
        t = nchw(x) if fmt == CL else x
        y = torch.tanh(torch_depthwise(t, kernel, bias, *pairs[:1], padding, pairs[1]))
        return nhwc(y) if fmt == CL else y

    check_layer(layer, theirs, normal(2, *shape))


@pytest.mark.parametrize("strides, padding, m, fmt", [(1, "same", 2, CL), (2, "valid", 1, CL)])
def test_separable_conv2d_matches_torch(strides, padding, m, fmt):
    layer = built(nn.SeparableConv2D(5, 3, strides, padding, depth_multiplier=m), (7, 6, 4))
    layer.params = {k: normal(*v.shape) for k, v in layer.params.items()}

    def theirs(x, depthwise, pointwise, bias):
        y = torch_depthwise(nchw(x), depthwise, None, layer.strides, padding, (1, 1))
        return nhwc(F.conv2d(y, pointwise.permute(3, 2, 0, 1), bias))

    check_layer(layer, theirs, normal(2, 7, 6, 4))


def test_separable_conv2d_channels_first_equals_channels_last():
    x = normal(2, 6, 6, 3)
    last = built(nn.SeparableConv2D(4, 3, padding="same", depth_multiplier=2), (6, 6, 3))
    first = built(
        nn.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, data_format="channels_first"),
        (3, 6, 6),
    )
    params = {k: normal(*v.shape) for k, v in last.params.items()}
    ctx = nn.CallContext(False)
    want = np.asarray(last.call(params, x, ctx))
    got = np.asarray(first.call(params, np.transpose(x, (0, 3, 1, 2)), ctx))
    np.testing.assert_allclose(np.transpose(got, (0, 2, 3, 1)), want, rtol=1e-12, atol=1e-12)


def test_conv_layers_keras_shapes_names_and_initialization():
    model = nn.Sequential(
        [
            nn.DepthwiseConv2D(3, depth_multiplier=2, input_shape=(8, 8, 4)),
            nn.SeparableConv2D(6, (3, 3), strides=2, padding="same", activation="relu"),
        ]
    )
    depthwise, separable = model.layers
    assert {k: v.shape for k, v in depthwise.params.items()} == {
        "kernel": (3, 3, 4, 2),
        "bias": (8,),
    }
    assert {k: v.shape for k, v in separable.params.items()} == {
        "depthwise_kernel": (3, 3, 8, 1),
        "pointwise_kernel": (1, 1, 8, 6),
        "bias": (6,),
    }
    # Keras' glorot_uniform fans for (kh, kw, in, out): in * kh * kw, out * kh * kw
    for kernel, fan_in, fan_out in [
        (depthwise.params["kernel"], 36, 18),
        (separable.params["pointwise_kernel"], 8, 6),
    ]:
        limit = np.sqrt(6 / (fan_in + fan_out))
        assert limit * 0.8 < np.abs(kernel).max() <= limit
    assert not depthwise.params["bias"].any()
    rows = summary_rows(model)
    assert rows["depthwise_conv2d"] == ("DepthwiseConv2D", "(None, 6, 6, 8)", "80")
    assert rows["separable_conv2d"] == ("SeparableConv2D", "(None, 3, 3, 6)", "126")


# ----------------------------------------------------------------------------- layer normalization


@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_layer_normalization_matches_torch(center, scale):
    layer = built(nn.LayerNormalization(center=center, scale=scale), (3, 5))
    layer.params = {k: normal(*v.shape) for k, v in layer.params.items()}
    args = ["gamma"] * scale + ["beta"] * center

    def theirs(x, *weights):
        w = dict(zip(args, weights, strict=True))
        return F.layer_norm(x, (5,), w.get("gamma"), w.get("beta"), eps=1e-3)

    check_layer(layer, theirs, normal(4, 3, 5) * 3 + 1)


def test_layer_normalization_over_several_axes():
    layer = built(nn.LayerNormalization(axis=[1, 3], epsilon=1e-2), (3, 4, 5))
    assert layer.params["gamma"].shape == (3, 5)
    layer.params = {k: normal(*v.shape) for k, v in layer.params.items()}

    def theirs(x, gamma, beta):
        mean = x.mean((1, 3), keepdim=True)
        var = ((x - mean) ** 2).mean((1, 3), keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-2) * gamma[:, None, :] + beta[:, None, :]

    check_layer(layer, theirs, normal(2, 3, 4, 5))


# ----------------------------------------------------------------------------- model level


def image_model(seed=0):
    return nn.Sequential(
        [
            nn.ZeroPadding2D(1, input_shape=(6, 6, 1)),
            nn.DepthwiseConv2D(3, depth_multiplier=4, activation="relu"),
            nn.SeparableConv2D(6, 3, padding="same", activation="relu"),
            nn.Cropping2D(((1, 0), (0, 1))),
            nn.LayerNormalization(),
            nn.GlobalAveragePooling2D(),
            nn.Dense(3, activation="softmax"),
        ],
        name="images",
        seed=seed,
    )


def test_compiled_forward_and_gradient_equal_eager():
    check_compiled(image_model(), normal(3, 6, 6, 1))


def test_save_and_load_round_trip(tmp_path):
    model = image_model()
    model.add(nn.Reshape((3, 1)))
    model.add(nn.GlobalMaxPooling1D(data_format="channels_first", keepdims=True))
    model.add(nn.GlobalAveragePooling1D())
    model.add(nn.Reshape((1, 1, 1)))
    model.add(nn.GlobalMaxPooling2D())
    for layer in model.layers:  # nonzero biases and norms, so every array matters
        layer.params = {k: normal(*v.shape).astype(np.float32) for k, v in layer.params.items()}
    round_trip(model, normal(4, 6, 6, 1).astype(np.float32), tmp_path)


def test_fit_decreases_the_loss():
    x, y = blobs(96)
    model = image_model()
    model.compile(optim.Adam(3e-2), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y, batch_size=32)["loss"]
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0)
    assert model.evaluate(x, y, batch_size=32)["loss"] < 0.8 * before


@pytest.mark.parametrize(
    "make, shape, error, match",
    [
        (lambda: nn.ZeroPadding2D((1, -1)), None, ConfigError, "ZeroPadding2D padding"),
        (lambda: nn.Cropping2D(((1, 2), 3)), None, ConfigError, "Cropping2D cropping"),
        (lambda: nn.Cropping2D((2, 0)), (4, 4, 1), ShapeError, "leaves nothing"),
        (lambda: nn.GlobalMaxPooling2D(data_format="NHWC"), None, ConfigError, "data_format"),
        (lambda: nn.GlobalAveragePooling1D(), (4, 4, 1), ShapeError, "sequences"),
        (lambda: nn.DepthwiseConv2D(3, depth_multiplier=0), None, ConfigError, "depth_mult"),
        (lambda: nn.SeparableConv2D(4, 3), (8, 8), ShapeError, "images"),
        (lambda: nn.LayerNormalization(axis=0), (4,), ShapeError, "non-batch"),
        (lambda: nn.LayerNormalization(axis="x"), None, ConfigError, "axis"),
    ],
)
def test_bad_arguments_raise_project_errors(make, shape, error, match):
    with pytest.raises(error, match=match):
        nn.Sequential([make()]).build(shape) if shape else make()
