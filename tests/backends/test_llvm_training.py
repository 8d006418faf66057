"""Whole training steps compiled by the LLVM backend: the seed CNN and a small LSTM, five
SGD steps each, against five steps of the reference interpreter on the traced step.

SGD, not Adam: Adam divides by sqrt(v) + eps, which amplifies float32 rounding of
near-zero gradients into visible parameter differences.
"""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile import functional as F
from nncompile import init, optim

from .llvm_support import graph_sizes

STEPS = 5


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path / "cache"))


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _leaves(tree[k], f"{prefix}.{k}")]
    if isinstance(tree, (tuple, list)):
        return [x for i, v in enumerate(tree) for x in _leaves(v, f"{prefix}[{i}]")]
    return [(prefix, np.asarray(tree))]


def assert_trees_close(got, want, rtol=1e-4, what=""):
    """Within ``rtol`` of each array's scale (biases start at zero, so an elementwise
    relative test would compare rounding noise)."""
    g, w = _leaves(got), _leaves(want)
    assert [n for n, _ in g] == [n for n, _ in w]
    for (name, a), (_, b) in zip(g, w, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{what}{name}"
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=f"{what}{name}")


def train_both(loss, params, x, y, lr=0.01):
    opt = optim.SGD(lr)
    step = nc.train_step(loss, opt)
    state = opt.init(params)
    lr = np.float32(lr)
    graph = nc.trace(step, params, state, x, y, lr)
    compiled = nc.compile(step, backend="llvm")
    ref = (params, state)
    got = (params, state)
    losses = []
    for i in range(STEPS):
        r_params, r_state, r_loss, r_metrics = nc.run(graph, *ref, x, y, lr)
        c_params, c_state, c_loss, c_metrics = compiled(*got, x, y, lr)
        assert_trees_close(
            (c_params, c_state, c_loss, c_metrics),
            (r_params, r_state, r_loss, r_metrics),
            what=f"step {i}: ",
        )
        ref, got = (r_params, r_state), (c_params, c_state)
        losses.append(float(c_loss))
    assert len(compiled._cache) == 1  # the same signature every step: compiled once
    return losses


def test_seed_cnn_sgd_steps_match_reference():
    params, loss, x = graph_sizes().cnn()
    x = x[:16]
    y = np.random.default_rng(1).integers(0, 10, len(x))
    losses = train_both(loss, params, x, y)
    assert losses[-1] < losses[0]  # it learns


def test_lstm_sgd_steps_match_reference():
    rng = np.random.default_rng(2)
    hidden, features, seq, batch = 16, 7, 5, 8
    params = {
        "w_ih": init.glorot_uniform((4 * hidden, features), rng),
        "w_hh": init.orthogonal((4 * hidden, hidden), rng),
        "b_ih": rng.uniform(-0.1, 0.1, 4 * hidden).astype(np.float32),
        "b_hh": init.zeros((4 * hidden,)),
        "w": init.glorot_uniform((hidden, 10), rng, layout="in_out"),
        "b": init.zeros((10,)),
    }

    def loss(p, x, y):
        h, _ = F.lstm(x, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
        logits = F.dense(h, p["w"], p["b"])
        return nc.cross_entropy(logits, y), {"accuracy": nc.mean(nc.argmax(logits, 1) == y)}

    x = rng.standard_normal((batch, seq, features)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    losses = train_both(loss, params, x, y, lr=0.1)
    assert losses[-1] < losses[0]
