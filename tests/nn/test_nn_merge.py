"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate): forward
and gradients against PyTorch in float64, compiled float32 against eager, Keras' shape
rules and the errors for inputs that do not fit."""

import numpy as np
import pytest

import nncompile as nc
from nncompile import nn
from nncompile.errors import ConfigError, ShapeError

from ..nncompile.torch_support import check, torch

RNG = np.random.default_rng(0)
A, B, C = (RNG.standard_normal((4, 3, 5)) for _ in range(3))

ELEMENTWISE = [
    (nn.Add, lambda *xs: sum(xs[1:], xs[0])),
    (nn.Subtract, lambda a, b: a - b),
    (nn.Multiply, lambda *xs: xs[0] * xs[1] * xs[2] if len(xs) == 3 else xs[0] * xs[1]),
    (nn.Average, lambda *xs: sum(xs[1:], xs[0]) / len(xs)),
    (nn.Maximum, lambda *xs: torch.stack(xs).amax(0)),
    (nn.Minimum, lambda *xs: torch.stack(xs).amin(0)),
]


@pytest.mark.parametrize("layer_cls, torch_fn", ELEMENTWISE)
def test_elementwise_merges_match_torch_float64(layer_cls, torch_fn):
    layer = layer_cls()
    args = (A, B) if layer_cls is nn.Subtract else (A, B, C)
    check(lambda *xs: layer(list(xs)), torch_fn, args, tuple(range(len(args))), np.float64)


def test_broadcast_axis_of_size_one_matches_torch():
    layer = nn.Add()
    ones = RNG.standard_normal((4, 1, 5))
    check(lambda a, b: layer([a, b]), lambda a, b: a + b, (A, ones), (0, 1), np.float64)
    assert layer.output_shape == (3, 5)


@pytest.mark.parametrize("axis", [-1, 1, 2, -2])
def test_concatenate_matches_torch_float64(axis):
    other = RNG.standard_normal((4, 3, 2)) if axis in (-1, 2) else RNG.standard_normal((4, 6, 5))
    layer = nn.Concatenate(axis=axis)
    check(
        lambda a, b: layer([a, b]),
        lambda a, b: torch.cat([a, b], dim=axis),
        (A, other),
        (0, 1),
        np.float64,
    )


def test_compiled_float32_merge_model_equals_eager_with_gradient():
    a, b = nn.Input((3, 5), name="a"), nn.Input((3, 5), name="b")
    out = nn.Concatenate()([nn.Maximum()([a, b]), nn.Average()([a, b]), nn.Subtract()([a, b])])
    model = nn.Model([a, b], nn.Dense(2, name="head")(out))
    xs = [A.astype(np.float32), B.astype(np.float32)]
    eager = np.asarray(model(xs))
    compiled = nc.compile(lambda p, s, x: model.apply(p, s, x)[0], backend="llvm")
    np.testing.assert_allclose(compiled(model.params(), model.state(), xs), eager, rtol=1e-5)

    def loss(p, x):
        return nc.sum(nc.square(model.apply(p, {}, x)[0]))

    grads = nc.compile(nc.grad(loss), backend="llvm")(model.params(), xs)
    want = nc.grad(loss)(model.params(), xs)
    for key in ("kernel", "bias"):
        np.testing.assert_allclose(grads["head"][key], want["head"][key], rtol=1e-4, atol=1e-5)


def test_several_positional_symbolic_tensors_are_one_list_input():
    a, b = nn.Input((4,)), nn.Input((4,))
    add = nn.Add()
    y = add(a, b)  # as mha(query, value): packed into [a, b]
    assert add.input_shape == [(4,), (4,)] and y.shape == (None, 4)
    assert y.node.packed and [t.node for t in y.node.inputs] == [a.node, b.node]


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda a, b, c: nn.Add()([a, c]), ShapeError, r"incompatible shapes.*\(None, 4\)"),
        (lambda a, b, c: nn.Subtract()([a, b, a]), ConfigError, "exactly 2 inputs"),
        (lambda a, b, c: nn.Multiply()(a), ConfigError, "takes a list of inputs"),
        (lambda a, b, c: nn.Maximum()([a]), ConfigError, "at least 2 inputs"),
        (lambda a, b, c: nn.Concatenate(axis=0)([a, b]), ConfigError, "batch axis"),
        (lambda a, b, c: nn.Concatenate(axis=3)([a, b]), ShapeError, "out of range"),
        (lambda a, b, c: nn.Concatenate()([a, nn.Input((2, 4))]), ShapeError, "ranks"),
    ],
)
def test_inputs_that_do_not_fit_raise_project_errors(make, error, match):
    a, b, c = nn.Input((4,)), nn.Input((4,)), nn.Input((5,))
    with pytest.raises(error, match=match):
        make(a, b, c)


def test_concatenate_needs_matching_other_axes():
    with pytest.raises(ShapeError, match="every axis but axis -1"):
        nn.Concatenate()([nn.Input((2, 4)), nn.Input((3, 4))])
