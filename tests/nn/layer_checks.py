"""Shared by the tests of the Keras-layout layers (test_nn_layers_*.py): a built layer's
forward pass as a function of its input and weights, checked against PyTorch (float64,
outputs and gradients), compiled float32 against eager, and the save / load round trip."""

import numpy as np

import nncompile as nc
from nncompile import nn
from nncompile.nn import CallContext

from ..nncompile.torch_support import check, torch  # skips the module without torch

R = np.random.default_rng(5)


def normal(*shape):
    return R.standard_normal(shape)


def built(layer, input_shape, seed=0):
    """``layer`` built for samples of ``input_shape`` (a list of shapes: list inputs)."""
    layer.name = layer.name or "layer"
    layer.build(input_shape, np.random.default_rng(seed))
    return layer


def as_function(layer, inputs=1, training=False):
    """f(*inputs, *weights) = the layer's output with those weights (a list input when
    ``inputs`` > 1), so check() can differentiate with respect to every array."""
    names = list(layer.params)

    def f(*args):
        x = list(args[:inputs]) if inputs > 1 else args[0]
        params = dict(zip(names, args[inputs:], strict=True))
        return layer.call(params, x, CallContext(training, None, {layer.name: layer.state}))

    return f, [layer.params[k] for k in names]


def check_layer(layer, torch_fn, xs, dtype=np.float64):
    """The layer's output and its gradients (inputs and every weight) against
    ``torch_fn(*xs, *weights)`` (float64 rtol 1e-8)."""
    xs = xs if isinstance(xs, list) else [xs]
    f, weights = as_function(layer, len(xs))
    args = [*xs, *weights]
    check(f, torch_fn, args, list(range(len(args))), dtype)


def check_compiled(layer_or_model, xs, rtol=1e-4):
    """nc.compile (LLVM, float32) of the forward pass and of its gradient with respect to
    the input and the weights equal the eager ones."""
    xs = xs if isinstance(xs, list) else [xs]
    if isinstance(layer_or_model, nn.Sequential):
        f, weights = model_function(layer_or_model)
    else:
        f, weights = as_function(layer_or_model, len(xs))
    args = [np.asarray(a, np.float32) for a in (*xs, *weights)]
    want = np.asarray(f(*args))
    np.testing.assert_allclose(
        nc.compile(f, backend="llvm")(*args), want, rtol=rtol, atol=rtol * max(1, abs(want).max())
    )
    ct = np.random.default_rng(1).standard_normal(want.shape).astype(np.float32)
    argnums = tuple(range(len(args)))

    def loss(*a):
        return nc.sum(f(*a) * ct)

    eager = nc.grad(loss, argnums=argnums)(*args)
    compiled = nc.compile(nc.grad(loss, argnums=argnums), backend="llvm")(*args)
    for k, (g, e) in enumerate(zip(compiled, eager, strict=True)):
        e = np.asarray(e)
        np.testing.assert_allclose(
            g, e, rtol=rtol, atol=rtol * max(1, abs(e).max()), err_msg=f"grad {k}"
        )


def round_trip(model, x, tmp_path):
    """Saving and loading gives the same configs, weights, summary and predictions."""
    path = str(tmp_path / model.name)
    model.save(path)
    loaded = nn.load_model(path)
    assert [a.get_config() for a in loaded.layers] == [b.get_config() for b in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.summary(print_fn=None) == model.summary(print_fn=None)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    return loaded


def summary_rows(model):
    """{layer name: (class, output shape, params)} read off the summary table."""
    rows = {}
    for line in model.summary(print_fn=None).splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[1].startswith("(") and not line.startswith(" Layer"):
            name, kind = parts[0], parts[1].strip("()")
            shape, count = parts[2].rsplit(maxsplit=1)
            rows[name] = (kind, shape.strip(), count)
    return rows


def model_function(model):
    """f(x, *weights) = the model's inference output with those trained weights."""
    params = model.params()
    names = [(layer, key) for layer, arrays in params.items() for key in arrays]

    def f(x, *arrays):
        nested = {layer: {} for layer in params}
        for (layer, key), a in zip(names, arrays, strict=True):
            nested[layer][key] = a
        return model.apply(nested, model.state(), x)[0]

    return f, [params[layer][key] for layer, key in names]


__all__ = ["R", "torch"]
