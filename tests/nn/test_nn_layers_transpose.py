"""Conv2DTranspose (Keras' kernel layout and output sizes) and UpSampling2D against
PyTorch in float64, outputs and gradients. The transposed-convolution reference is Keras'
own formulation (its JAX backend's): the input dilated by the strides, padded, and
convolved with the flipped kernel, written here with torch ops, so it checks the crop and
zero-fill rules independently of nc.conv_transpose2d."""

import pytest

from nncompile import nn, optim
from nncompile.errors import ConfigError

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


def keras_pads(kernel, stride, dilation, padding, output_padding):
    """(left, right) padding of the stride-dilated input (Keras' JAX backend)."""
    k = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        return k - 1, k - 1 + extra
    pad_len = stride + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, k - 1)
    return left, pad_len - left


def keras_conv_transpose(t, kernel, bias, strides, padding, output_padding, dilation):
    """t NCHW, kernel (kh, kw, filters, in)."""
    n, c, h, w = t.shape
    (sh, sw), (dh, dw) = strides, dilation
    spread = t.new_zeros((n, c, (h - 1) * sh + 1, (w - 1) * sw + 1))
    spread[:, :, ::sh, ::sw] = t
    op = output_padding or (None, None)
    top, bottom = keras_pads(kernel.shape[0], sh, dh, padding, op[0])
    left, right = keras_pads(kernel.shape[1], sw, dw, padding, op[1])
    flipped = kernel.flip(0, 1).permute(2, 3, 0, 1)  # (filters, in, kh, kw)
    return F.conv2d(F.pad(spread, (left, right, top, bottom)), flipped, bias, 1, 0, dilation)


TRANSPOSE_CASES = [
    # kernel, strides, padding, output_padding, dilation, data_format
    (3, 1, "valid", None, 1, CL),
    (3, 2, "valid", None, 1, CL),
    (2, 3, "valid", None, 1, CL),  # stride > kernel: zero rows at the end
    (3, 2, "same", None, 1, CL),
    (4, 2, "same", None, 1, CL),
    ((3, 2), (2, 3), "same", (1, 2), 1, CL),
    (4, 2, "same", 0, 1, CL),
    (3, 2, "valid", 1, 1, "channels_first"),
    (3, 1, "same", None, 2, "channels_first"),
]


@pytest.mark.parametrize("kernel, strides, padding, output_padding, dilation, fmt", TRANSPOSE_CASES)
def test_conv2d_transpose_matches_keras_formulation(
    kernel, strides, padding, output_padding, dilation, fmt
):
    layer = nn.Conv2DTranspose(
        4, kernel, strides, padding, output_padding, fmt, dilation, activation="tanh"
    )
    shape = (4, 5, 3) if fmt == CL else (3, 4, 5)
    built(layer, shape)
    layer.params = {k: normal(*v.shape) for k, v in layer.params.items()}
    assert layer.params["kernel"].shape == (*layer.kernel_size, 4, 3)

    def theirs(x, kernel_, bias):
        t = nchw(x) if fmt == CL else x
        y = keras_conv_transpose(
            t, kernel_, bias, layer.strides, padding, layer.output_padding, layer.dilation_rate
        )
        y = torch.tanh(y)
        return nhwc(y) if fmt == CL else y

    check_layer(layer, theirs, normal(2, *shape))


def test_conv2d_transpose_equals_torch_conv_transpose_where_it_has_a_padding():
    """'same' with an odd kernel and stride 1 is torch's padding (k - 1) / 2."""
    layer = built(nn.Conv2DTranspose(2, 3, padding="same"), (5, 5, 3))
    layer.params = {k: normal(*v.shape) for k, v in layer.params.items()}

    def theirs(x, kernel, bias):
        return nhwc(F.conv_transpose2d(nchw(x), kernel.permute(3, 2, 0, 1), bias, 1, 1))

    check_layer(layer, theirs, normal(2, 5, 5, 3))


@pytest.mark.parametrize(
    "size, interpolation, fmt",
    [
        (2, "nearest", CL),
        ((2, 3), "nearest", "channels_first"),
        (2, "bilinear", CL),
        ((3, 2), "bilinear", "channels_first"),
    ],
)
def test_upsampling2d_matches_torch(size, interpolation, fmt):
    shape = (3, 4, 2) if fmt == CL else (2, 3, 4)
    layer = built(nn.UpSampling2D(size, fmt, interpolation), shape)
    pair = layer.size

    def theirs(x):
        t = nchw(x) if fmt == CL else x
        if interpolation == "nearest":
            y = t.repeat_interleave(pair[0], 2).repeat_interleave(pair[1], 3)
        else:
            y = F.interpolate(t, scale_factor=pair, mode="bilinear", align_corners=False)
        return nhwc(y) if fmt == CL else y

    check_layer(layer, theirs, normal(2, *shape))


def decoder(seed=0):
    return nn.Sequential(
        [
            nn.Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(6, 6, 1)),
            nn.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
            nn.UpSampling2D(2, interpolation="bilinear"),
            nn.Conv2DTranspose(2, 2, strides=2, output_padding=1, padding="same"),
            nn.Flatten(),
            nn.Dense(3, activation="softmax"),
        ],
        name="decoder",
        seed=seed,
    )


def test_summary_compiled_saving_and_fit(tmp_path):
    model = decoder()
    rows = summary_rows(model)
    assert rows["conv2d_transpose"] == ("Conv2DTranspose", "(None, 6, 6, 4)", "148")
    assert rows["up_sampling2d"] == ("UpSampling2D", "(None, 12, 12, 4)", "0")
    # 'same' with output_padding 1, kernel 2, stride 2: (12 - 1) * 2 + 0 + 1 = 23
    assert rows["conv2d_transpose_1"] == ("Conv2DTranspose", "(None, 23, 23, 2)", "34")
    check_compiled(model, normal(2, 6, 6, 1))
    x, y = blobs(96)
    model.compile(optim.Adam(2e-2), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y, batch_size=32)["loss"]
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0)
    assert model.evaluate(x, y, batch_size=32)["loss"] < 0.8 * before
    round_trip(model, x[:4], tmp_path)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: nn.Conv2DTranspose(2, 3, strides=2, output_padding=2), ConfigError, "smaller"),
        (lambda: nn.Conv2DTranspose(2, 3, padding="full"), ConfigError, "padding"),
        (lambda: nn.UpSampling2D(interpolation="bicubic"), NotImplementedError, "bicubic"),
        (lambda: nn.UpSampling2D(interpolation="cubic"), ConfigError, "interpolation"),
        (lambda: nn.UpSampling2D(0), ConfigError, "size"),
    ],
)
def test_bad_arguments_raise_project_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()
