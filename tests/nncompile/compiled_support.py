"""Shared by the op tests: a function compiled (float32) against its eager run, forward
outputs and the gradient of sum(out * cotangent) compiled with nc.grad."""

import numpy as np

import nncompile as nc

RTOL = 1e-5


def flat_outputs(o) -> tuple:
    """An output, or nested tuples/lists of outputs, as one flat tuple (no torch needed)."""
    out = []
    for t in o if isinstance(o, (tuple, list)) else (o,):
        out += flat_outputs(t) if isinstance(t, (tuple, list)) else [t]
    return tuple(out)


def _close(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got, want)
    scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def check_compiled(fn, args, argnums=(0,), backend="llvm", seed=0):
    """fn compiled on ``backend`` equals fn eager in float32, outputs and gradients."""
    args = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in map(np.asarray, args)]
    want = flat_outputs(fn(*args))
    got = flat_outputs(nc.compile(fn, backend=backend)(*args))
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        _close(g, w, f"output {k}")
    if not argnums:
        return
    rng = np.random.default_rng(seed)
    cts = [rng.standard_normal(np.shape(o)).astype(np.float32) for o in want]

    def loss(*a):
        return sum(nc.sum(o * c) for o, c in zip(flat_outputs(fn(*a)), cts, strict=True))

    grad = nc.grad(loss, argnums=tuple(argnums))
    for i, g, w in zip(argnums, nc.compile(grad, backend=backend)(*args), grad(*args), strict=True):
        _close(g, w, f"grad of arg {i}")
