"""passes/channels_last.py: a short NCHW convolution, its pointwise ops and the max pool
of their result run channels-last, with only the input and the pooled result transposed;
results equal the NCHW reference. Chains that something else reads, grouped, narrow or
long convolutions stay as they are."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile.passes.channels_last import channels_last_pools


def _layouts(graph) -> list[str]:
    return [n.attrs["layout"] for n in graph.nodes if n.op in ("conv2d", "max_pool2d")]


def _data(c_in=1, out=32, k=3, size=12, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch, c_in, size, size)).astype(np.float32)
    w = rng.uniform(-1, 1, (out, c_in, k, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (out,)).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("stride,padding,pool", [(1, 0, 2), (1, 1, 2), (2, 1, 3)])
def test_conv_and_pool_run_channels_last_and_match(stride, padding, pool):
    x, w, b = _data()

    def fn(x, w, b):
        y = nc.conv2d(x, w, b, stride=stride, padding=padding)
        return nc.max_pool2d(nc.relu(y * 0.5 + 0.25), pool)

    graph = channels_last_pools(nc.trace(fn, x, w, b))
    assert _layouts(graph) == ["NHWC", "NHWC"]
    want = nc.run(nc.trace(fn, x, w, b), x, w, b)
    for threads in (1, 2):
        got = nc.compile(fn, backend="llvm", threads=threads)(x, w, b)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _conv_pool(x, w, b, groups=1):
    return nc.max_pool2d(nc.relu(nc.conv2d(x, w, b, groups=groups)), 2)


@pytest.mark.parametrize(
    "case",
    [
        dict(c_in=4, out=32, k=3),  # a sum of 36 elements: im2col, not direct
        dict(c_in=1, out=8, k=3),  # fewer output channels than a vector
    ],
)
def test_long_or_narrow_convolutions_stay_nchw(case):
    x, w, b = _data(**case)
    graph = channels_last_pools(nc.trace(_conv_pool, x, w, b))
    assert _layouts(graph) == ["NCHW", "NCHW"]


def test_grouped_convolutions_and_shared_chains_stay_nchw():
    x, w, b = _data(c_in=2, out=32)
    w2 = w[:, :1]
    graph = channels_last_pools(nc.trace(lambda x, w, b: _conv_pool(x, w, b, 2), x, w2, b))
    assert _layouts(graph) == ["NCHW", "NCHW"]

    def shared(x, w, b):
        y = nc.relu(nc.conv2d(x, w, b))
        return nc.max_pool2d(y, 2), nc.sum(y)  # the activation is read twice

    x, w, b = _data()
    assert _layouts(channels_last_pools(nc.trace(shared, x, w, b))) == ["NCHW", "NCHW"]


def test_a_channels_last_model_loses_its_input_transposes():
    """Channels-last input (as Keras-style layers hold it): after the pipeline, the
    transpose to NCHW and the one back to NHWC cancel."""
    x, w, b = _data()
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def fn(x, w, b):
        return _conv_pool(nc.transpose(x, (0, 3, 1, 2)), w, b)

    graph = nc.optimize(nc.trace(fn, x_nhwc, w, b), level=1)
    graph = nc.optimize(channels_last_pools(graph), level=2)
    conv = next(n for n in graph.nodes if n.op == "conv2d")
    assert conv.inputs[0].producer is None  # reads the argument itself
    got = nc.compile(fn, backend="llvm")(x_nhwc, w, b)
    np.testing.assert_allclose(got, nc.run(nc.trace(fn, x_nhwc, w, b), x_nhwc, w, b), 1e-5, 1e-5)
