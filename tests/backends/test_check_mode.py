"""nc.compile(check=True): compiled buffers compared with the reference, kernel by kernel;
a planted bug in one op's lowering is reported at that node."""

import numpy as np
import pytest

import nncompile as nc
from nncompile.checking import CheckError, mismatch
from nncompile.lowering import exprs


def f(x, y):
    z = nc.concatenate([nc.tanh(x), y * 2.0], axis=1)
    return nc.relu(z @ np.ones((6, 2), np.float32)), (z * z).sum()


def args():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)


def test_check_passes_on_correct_code_and_returns_the_results():
    checked = nc.compile(f, check=True)(*args())
    plain = nc.compile(f)(*args())
    for a, b in zip(checked, plain, strict=True):
        np.testing.assert_array_equal(a, b)


def test_environment_variable_turns_checking_on(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CHECK", "1")
    assert nc.compile(f).check
    monkeypatch.setenv("NNCOMPILE_CHECK", "0")
    assert not nc.compile(f).check


def test_a_planted_bug_is_reported_at_its_node(monkeypatch):
    owner = next(
        cls for cls in vars(exprs).values() if isinstance(cls, type) and "_op_concat" in vars(cls)
    )
    real = owner._op_concat

    def wrong_concat(self, node, index):  # every element from the first piece: a bug
        inner = list(index)
        axis = node.attrs["axis"] % len(node.outputs[0].shape)
        inner[axis] = exprs.clamp_index(index[axis], node.inputs[0].shape[axis])
        return self.at(node.inputs[0], inner)

    monkeypatch.setattr(owner, "_op_concat", wrong_concat)
    g = nc.trace(f, *args())
    concat = next(n for n in g.nodes if n.op == "concat")
    with pytest.raises(CheckError) as info:
        nc.compile(f, check=True)(*args())
    message = str(info.value)
    assert f"node %{concat.name} (concat" in message
    assert "max abs error" in message and "kernel k" in message and "fusion group" in message
    monkeypatch.setattr(owner, "_op_concat", real)
    nc.compile(f, check=True)(*args())  # fixed again


def test_check_mode_on_a_training_step():
    from nncompile import nn, optim

    model = nn.Sequential(
        [nn.Conv2D(3, 3, activation="relu", input_shape=(5, 5, 1)), nn.Flatten(), nn.Dense(2)]
    )
    model.compile(optim.Adam(), "mse", check=True)
    assert model.trainer.function("train").check
    x = np.random.default_rng(0).normal(size=(8, 5, 5, 1)).astype(np.float32)
    history = model.fit(x, np.zeros((8, 2), np.float32), batch_size=4, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


def test_mismatch_tolerances():
    a = np.array([1.0, 2.0, np.nan, np.inf], np.float32)
    assert mismatch(a.copy(), a) is None
    b = a.copy()
    b[1] = 2.001
    error, index = mismatch(b, a)
    assert index == 1 and error == pytest.approx(0.001, rel=1e-3)
    assert mismatch(np.array([1, 2]), np.array([1, 3])) == (1.0, 1)
