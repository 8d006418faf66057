"""nc.relu6, nc.hardtanh, nc.silu against torch.nn.functional (values and gradients,
at the kinks too), compiled against eager, and as Keras activation names."""

import numpy as np
import pytest

import nncompile as nc
from nncompile.functional import ACTIVATIONS, activation

from .compiled_support import check_compiled
from .torch_support import check

torch = pytest.importorskip("torch")
F = torch.nn.functional

R = np.random.default_rng(3)
# Every region, and the kinks themselves: -1, 0, 1, 6 exactly.
KINKS = np.array([-7.0, -6.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0, 6.0, 8.5])
X = np.concatenate([KINKS, R.standard_normal(10) * 4]).reshape(4, 5)

CASES = {
    "relu6": (nc.relu6, F.relu6),
    "hardtanh": (nc.hardtanh, F.hardtanh),
    "hardtanh_bounds": (
        lambda a: nc.hardtanh(a, min_val=-0.5, max_val=3.0),
        lambda a: F.hardtanh(a, min_val=-0.5, max_val=3.0),
    ),
    "hardtanh_point": (lambda a: nc.hardtanh(a, 1.0, 1.0), lambda a: F.hardtanh(a, 1.0, 1.0)),
    "silu": (nc.silu, F.silu),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_with_gradients_at_kinks(name):
    nc_fn, torch_fn = CASES[name]
    check(nc_fn, torch_fn, [X], [0], np.float64)


def test_kink_gradients_are_zero_unlike_clip():
    """torch's hardtanh backward is 0 at a bound; clip (torch.clamp) passes it."""
    x = np.array([-1.0, 0.0, 6.0, 1.0])
    np.testing.assert_array_equal(nc.grad(lambda a: nc.sum(nc.relu6(a)))(x), [0, 0, 0, 1])
    np.testing.assert_array_equal(nc.grad(lambda a: nc.sum(nc.hardtanh(a)))(x), [0, 1, 0, 0])
    np.testing.assert_array_equal(nc.grad(lambda a: nc.sum(nc.clip(a, -1, 1)))(x), [1, 1, 0, 1])


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_matches_eager(name):
    check_compiled(CASES[name][0], [X])


def test_integer_inputs_follow_torch():
    ints = np.array([-3, -1, 0, 2, 9], np.int32)
    for nc_fn, torch_fn in (CASES["relu6"], CASES["hardtanh"]):
        got, want = nc_fn(ints), torch_fn(torch.from_numpy(ints)).numpy()
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want)
    assert nc.silu(ints).dtype == np.float32  # float-only ops cast ints to float32


def test_nan_passes_through():
    out = nc.hardtanh(np.array([np.nan, 2.0]))
    assert np.isnan(out[0]) and out[1] == 1.0


def test_bad_arguments():
    with pytest.raises(nc.OpAttributeError, match="min_val"):
        nc.hardtanh(X, min_val=2.0, max_val=1.0)
    with pytest.raises(nc.DTypeError, match="hardtanh"):
        nc.relu6(np.array([True, False]))


@pytest.mark.parametrize("name", ["relu6", "silu", "swish", "hardswish", "hardtanh"])
def test_keras_activation_names(name):
    torch_fn = {
        "relu6": F.relu6,
        "silu": F.silu,
        "swish": F.silu,
        "hardswish": F.hardswish,
        "hardtanh": F.hardtanh,
    }[name]
    assert name in ACTIVATIONS
    np.testing.assert_allclose(activation(X, name), torch_fn(torch.from_numpy(X)).numpy())
    model = nc.nn.Sequential([nc.nn.Dense(3, activation=name, input_shape=(5,))])
    kernel, bias = (np.asarray(w) for w in model.layers[0].get_weights())
    want = torch_fn(torch.from_numpy(X.astype(np.float32) @ kernel + bias)).numpy()
    np.testing.assert_allclose(model.predict(X.astype(np.float32)), want, rtol=1e-5, atol=1e-6)
