"""Window / resampling ops on the CUDA backend (a GPU, or the CPU emulation of the
generated CUDA C, see conftest.py): conv_transpose2d (conv2d's input-gradient GEMM),
bilinear interpolate (gathers and lerps), adaptive max pooling and conv1d, outputs and
compiled gradients against the eager run in float32."""

from __future__ import annotations

import numpy as np

import nncompile as nc

from ..nncompile.window_ops_support import check_compiled

# the float32 compiled-vs-eager check shared with tests/nncompile's window op tests


R = np.random.default_rng(2)


def test_conv_transpose2d_on_cuda():
    x, w, b = R.standard_normal((2, 4, 5, 6)), R.standard_normal((4, 3, 3, 3)), R.standard_normal(6)
    check_compiled(
        lambda x, w, b: nc.conv_transpose2d(
            x, w, b, stride=2, padding=1, output_padding=1, groups=2
        ),
        [x, w, b],
        (0, 1, 2),
        backend="cuda",
    )


def test_resampling_on_cuda():
    x = R.standard_normal((2, 3, 5, 6))
    check_compiled(lambda x: nc.interpolate(x, size=(7, 9), mode="bilinear"), [x], backend="cuda")
    check_compiled(lambda x: nc.adaptive_max_pool2d(x, (3, 4)), [x], backend="cuda")
    check_compiled(
        lambda x: nc.conv1d(x, np.ones((2, 3, 3), np.float32), padding="same"),
        [R.standard_normal((2, 3, 8))],
        backend="cuda",
    )
