"""nc.conv_transpose2d / nc.conv_transpose1d (conv2d's input adjoint with torch's transposed
weight) against torch.nn.functional: outputs and gradients in float64 over stride, padding,
output_padding, dilation, groups, bias and NHWC/NWC; compiled float32 against eager; the
lowering is a GEMM; and the errors."""

import numpy as np
import pytest

import nncompile as nc

from .torch_support import check, torch
from .window_ops_support import check_compiled

F = torch.nn.functional
R = np.random.default_rng(5)


def n(*shape):
    return R.standard_normal(shape)


CASES = [
    # stride, padding, output_padding, dilation, groups, bias
    (1, 0, 0, 1, 1, False),
    (2, 1, 1, 1, 1, True),
    (3, 0, 2, 1, 2, True),
    (1, 0, 1, 2, 1, False),  # output_padding < dilation (not < stride): torch allows it
    (2, 2, 1, 1, 2, False),
    (3, 1, 2, 2, 1, True),  # output_padding > padding: trailing rows lie outside all windows
    ((2, 1), (1, 0), (1, 0), (1, 2), 4, True),
]


@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups, bias", CASES)
def test_conv_transpose2d_matches_torch(stride, padding, output_padding, dilation, groups, bias):
    x, w = n(2, 4, 5, 4), n(4, 3 if groups == 2 else 2, 3, 2)  # C_out/groups = w.shape[1]
    b = n(w.shape[1] * groups)
    kw = dict(
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        dilation=dilation,
    )

    def ours(x, w, b):
        return nc.conv_transpose2d(x, w, b if bias else None, **kw)

    def theirs(x, w, b):
        return F.conv_transpose2d(x, w, b if bias else None, **kw)

    check(ours, theirs, [x, w, b], (0, 1, 2) if bias else (0, 1), np.float64)


def test_conv_transpose2d_channels_last():
    x, w, b = n(2, 4, 3, 4), n(4, 3, 2, 3), n(6)

    def nhwc(t):
        return t.permute(0, 2, 3, 1)

    def nchw(t):
        return t.permute(0, 3, 1, 2)

    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    check(
        lambda x, w, b: nc.conv_transpose2d(x, w, b, layout="NHWC", **kw),
        lambda x, w, b: nhwc(F.conv_transpose2d(nchw(x), w, b, **kw)),
        [x, w, b],
        (0, 1, 2),
        np.float64,
    )


@pytest.mark.parametrize("layout", ["NCW", "NWC"])
@pytest.mark.parametrize("stride, padding, output_padding, dilation", [(1, 0, 0, 1), (3, 1, 2, 2)])
def test_conv_transpose1d_matches_torch(layout, stride, padding, output_padding, dilation):
    x, w, b = n(2, 4, 7), n(4, 3, 3), n(6)
    kw = dict(
        stride=stride, padding=padding, output_padding=output_padding, groups=2, dilation=dilation
    )

    def perm(t):
        return t if layout == "NCW" else t.permute(0, 2, 1)

    check(
        lambda x, w, b: nc.conv_transpose1d(x, w, b, layout=layout, **kw),
        lambda x, w, b: perm(F.conv_transpose1d(perm(x), w, b, **kw)),
        [x if layout == "NCW" else x.transpose(0, 2, 1), w, b],
        (0, 1, 2),
        np.float64,
    )


def test_compiled_float32_matches_eager_and_lowers_to_a_gemm():
    x, w, b = n(2, 4, 5, 6), n(4, 3, 3, 3), n(6)

    def f(x, w, b):
        return nc.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)

    check_compiled(f, [x, w, b], (0, 1, 2))
    check_compiled(
        lambda x, w: nc.conv_transpose1d(x, w, stride=2, output_padding=1),
        [n(2, 4, 5), n(4, 2, 3)],
        (0, 1),
    )
    lowered = nc.lower(f, *(a.astype(np.float32) for a in (x, w, b)))
    groups = [(g.kind, [node.op for node in g.nodes]) for g in lowered.graph.fusion.groups]
    # the GEMM + col2im kernel of conv2d's input gradient, the bias fused as its epilogue
    assert ("contraction", ["conv2d_backward_input", "add"]) in groups, groups
    assert "gemm " in lowered.program.text()


def test_errors():
    x, w = n(1, 4, 3, 3), n(4, 2, 3, 3)
    with pytest.raises(nc.ShapeError, match="output_padding 2 must be smaller than stride 2"):
        nc.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(nc.ShapeError, match="output_padding 1 must be smaller than stride 1"):
        nc.conv_transpose1d(n(1, 4, 3), n(4, 2, 3), output_padding=1)
    with pytest.raises(nc.ShapeError, match="conv_transpose2d: input channels 4 .* groups=3"):
        nc.conv_transpose2d(x, w, groups=3)
    with pytest.raises(nc.ShapeError, match=r"bias .* must have shape \(4,\)"):
        nc.conv_transpose2d(x, w, n(2), groups=2)
    with pytest.raises(nc.ShapeError, match="conv_transpose2d: expects x NCHW"):
        nc.conv_transpose2d(n(4, 3, 3), w)
    with pytest.raises(nc.OpAttributeError, match="padding must be ints"):
        nc.conv_transpose2d(x, w, padding="same")
    with pytest.raises(nc.ShapeError, match="gives an empty output"):
        nc.conv_transpose2d(n(1, 4, 1, 1), n(4, 2, 1, 1), padding=1)
