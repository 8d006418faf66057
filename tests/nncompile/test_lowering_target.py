"""Lowering asks a Target for capabilities (how to parallelize sums over many rows)
instead of comparing device names."""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile.lowering import lower_graph
from nncompile.lowering.target import CPU, GPU, Target, as_target


def _conv_weight_gradient_graph():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    grad = nc.grad(lambda w, x: (nc.conv2d(x, w, padding=1) ** 2).sum())
    return nc.optimize(nc.trace(grad, w, x))


def test_device_names_map_to_the_builtin_targets():
    assert as_target("cpu") is CPU and as_target("gpu") is GPU
    assert as_target(GPU) is GPU
    with pytest.raises(ValueError, match="unknown lowering target 'tpu'"):
        as_target("tpu")
    with pytest.raises(ValueError, match="row_sums"):
        Target("x", row_sums="threads")
    with pytest.raises(ValueError, match="conv_batch"):
        Target("x", conv_batch="images")


def test_lowering_follows_the_capability_not_the_name():
    graph = _conv_weight_gradient_graph()
    chunks = lower_graph(graph, "cpu").text()
    blocks = lower_graph(graph, "gpu").text()
    assert chunks != blocks
    assert "dw_partial" in chunks and "dw_partial" not in blocks  # chunks of partial sums
    # a target of another name with the GPU's capabilities lowers as the GPU does
    gpu_like = Target("many_threads", row_sums="blocks", conv_batch="batch")
    assert lower_graph(graph, gpu_like).text() == blocks
    cpu_like = Target("few_threads", row_sums="chunks", conv_batch="slots")
    assert lower_graph(graph, cpu_like).text() == chunks
