"""Shared by the window/resampling op tests: a function compiled on a backend (float32)
against its eager run, forward outputs and the compiled gradient of sum(out * cotangent);
and a float64 torch-free finite-difference gradient check."""

import numpy as np

import nncompile as nc

RTOL = 1e-5


def _close(got, want, what, rtol=RTOL):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)


def check_compiled(fn, args, argnums=(0,), backend="llvm", seed=0):
    """fn compiled on ``backend`` equals fn eager in float32, output and gradients."""
    args = [np.asarray(a, np.float32) for a in args]
    want = fn(*args)
    _close(nc.compile(fn, backend=backend)(*args), want, "output")
    ct = np.random.default_rng(seed).standard_normal(np.shape(want)).astype(np.float32)

    def loss(*a):
        return nc.sum(fn(*a) * ct)

    grad = nc.grad(loss, argnums=tuple(argnums))
    got = nc.compile(grad, backend=backend)(*args)
    for i, g, w in zip(argnums, got, grad(*args), strict=True):
        _close(g, w, f"grad of arg {i}")
