"""nc.conv1d, nc.max_pool1d, nc.avg_pool1d (the 2-D ops on unit-height images) against
torch.nn.functional: outputs and gradients in float64, channels-last ('NWC') layouts,
compiled float32 against eager, and the errors."""

import numpy as np
import pytest

import nncompile as nc

from .torch_support import check, torch
from .window_ops_support import check_compiled

F = torch.nn.functional
R = np.random.default_rng(11)


def n(*shape):
    return R.standard_normal(shape)


def nwc(t):  # (N, C, L) torch tensor <-> (N, L, C)
    return t.permute(0, 2, 1)


CONV = [
    # stride, padding, dilation, groups, bias
    (1, 0, 1, 1, False),
    (2, 1, 1, 1, True),
    (1, 2, 2, 2, True),
    (3, 0, 1, 4, False),
    (1, "same", 2, 1, True),
    (1, "valid", 1, 2, True),
]


@pytest.mark.parametrize("stride, padding, dilation, groups, bias", CONV)
def test_conv1d_matches_torch(stride, padding, dilation, groups, bias):
    x, w, b = n(2, 4, 11), n(8, 4 // groups, 3), n(8)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    def ours(x, w, b):
        return nc.conv1d(x, w, b if bias else None, **kw)

    def theirs(x, w, b):
        return F.conv1d(x, w, b if bias else None, **kw)

    check(ours, theirs, [x, w, b], (0, 1, 2) if bias else (0, 1), np.float64)


@pytest.mark.parametrize("padding", [1, "same"])
def test_conv1d_channels_last(padding):
    x, w, b = n(2, 9, 4), n(6, 2, 3), n(6)

    def ours(x, w, b):
        return nc.conv1d(x, w, b, padding=padding, groups=2, layout="NWC")

    def theirs(x, w, b):
        return nwc(F.conv1d(nwc(x), w, b, padding=padding, groups=2))

    check(ours, theirs, [x, w, b], (0, 1, 2), np.float64)


def test_conv1d_same_with_stride_is_keras_same():
    # torch has no 'same' for stride > 1; Keras/TF pads (out-1)*s + k - n, extra at the end
    x, w = n(1, 2, 10), n(3, 2, 4)
    got = nc.conv1d(x, w, stride=3, padding="same")
    want = F.conv1d(F.pad(torch.tensor(x), (1, 2)), torch.tensor(w), stride=3)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12)


POOL = [
    # kernel, stride, padding, dilation
    (2, None, 0, 1),
    (3, 2, 1, 1),
    (3, 1, 1, 2),
    (4, 3, 2, 1),
]


@pytest.mark.parametrize("kernel, stride, padding, dilation", POOL)
def test_max_pool1d_matches_torch(kernel, stride, padding, dilation):
    x = n(2, 3, 13)

    def ours(x):
        return nc.max_pool1d(x, kernel, stride, padding, dilation)

    def theirs(x):
        return F.max_pool1d(x, kernel, stride, padding, dilation)

    check(ours, theirs, [x], (0,), np.float64)


@pytest.mark.parametrize("kernel, stride, padding, _", POOL)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool1d_matches_torch(kernel, stride, padding, _, count_include_pad):
    x = n(2, 3, 13)

    def ours(x):
        return nc.avg_pool1d(x, kernel, stride, padding, count_include_pad=count_include_pad)

    def theirs(x):
        return F.avg_pool1d(x, kernel, stride, padding, count_include_pad=count_include_pad)

    check(ours, theirs, [x], (0,), np.float64)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool1d_channels_last(kind):
    x = n(2, 12, 3)
    ours = getattr(nc, f"{kind}_pool1d")
    theirs = getattr(F, f"{kind}_pool1d")
    check(
        lambda x: ours(x, 3, 2, 1, layout="NWC"),
        lambda x: nwc(theirs(nwc(x), 3, 2, 1)),
        [x],
        (0,),
        np.float64,
    )


def test_compiled_float32_matches_eager():
    x, w, b = n(2, 4, 16), n(6, 2, 3), n(6)
    check_compiled(
        lambda x, w, b: nc.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2),
        [x, w, b],
        (0, 1, 2),
    )
    check_compiled(lambda x: nc.conv1d(x, w[:, :1], layout="NWC", padding="same"), [n(2, 9, 1)])
    check_compiled(lambda x: nc.max_pool1d(nc.avg_pool1d(x, 3, 1, 1), 2), [x])


def test_errors():
    x = n(2, 3, 8)
    with pytest.raises(NotImplementedError, match="max_pool1d: ceil_mode"):
        nc.max_pool1d(x, 2, ceil_mode=True)
    with pytest.raises(NotImplementedError, match="avg_pool1d: ceil_mode"):
        nc.avg_pool1d(x, 2, ceil_mode=True)
    with pytest.raises(nc.ShapeError, match="conv1d: expects an NCW input of rank 3"):
        nc.conv1d(n(3, 8), n(2, 3, 3))
    with pytest.raises(nc.ShapeError, match=r"conv1d: weight must be \(O, C/groups, K\)"):
        nc.conv1d(x, n(2, 3, 3, 1))
    with pytest.raises(nc.OpAttributeError, match="layout must be 'NCW' or 'NWC'"):
        nc.avg_pool1d(x, 2, layout="NCHW")
    with pytest.raises(nc.ShapeError, match="kernel_size must be an int"):
        nc.max_pool1d(x, (2, 2))
    with pytest.raises(nc.ShapeError, match=r"conv1d: input .* disagree with groups=2"):
        nc.conv1d(x, n(4, 2, 3), groups=2)
