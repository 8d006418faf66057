"""Shared by the PyTorch comparison tests: outputs and gradients of an nncompile function
against torch autograd of sum(out * cotangent) for a fixed random cotangent. Importing it
skips the importing module when torch is not installed."""

import numpy as np
import pytest

import nncompile as nc

torch = pytest.importorskip("torch")

TOL = {np.float64: 1e-8, np.float32: 1e-4}


def flat_outputs(o) -> tuple:
    """An output, or nested tuples/lists of outputs, as one flat tuple."""
    out = []
    for t in o if isinstance(o, (tuple, list)) else (o,):
        out += flat_outputs(t) if isinstance(t, (tuple, list)) else [t]
    return tuple(out)


def assert_close(got, want, rtol, what=""):
    got = np.asarray(got)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)


def check(nc_fn, torch_fn, args, argnums, dtype, seed=0):
    """Forward outputs and gradients w.r.t. ``argnums`` of nc_fn against torch_fn (a
    gradient torch leaves unused counts as zeros)."""
    rtol = TOL[dtype]
    args = [a.astype(dtype) if a.dtype.kind == "f" else a for a in map(np.asarray, args)]
    outs = flat_outputs(nc_fn(*args))
    rng = np.random.default_rng(seed)
    cts = [rng.standard_normal(np.shape(o)).astype(dtype) for o in outs]
    targs = [torch.tensor(a, requires_grad=i in argnums) for i, a in enumerate(args)]
    touts = flat_outputs(torch_fn(*targs))
    assert len(outs) == len(touts)
    for k, (o, t) in enumerate(zip(outs, touts, strict=True)):
        assert_close(o, t, rtol, f"output {k}")
    if not argnums:
        return

    def loss(*a):
        return sum(nc.sum(o * c) for o, c in zip(flat_outputs(nc_fn(*a)), cts, strict=True))

    grads = nc.grad(loss, argnums=tuple(argnums))(*args)
    tloss = sum((t * torch.from_numpy(c)).sum() for t, c in zip(touts, cts, strict=True))
    tgrads = torch.autograd.grad(tloss, [targs[i] for i in argnums], allow_unused=True)
    for i, g, tg in zip(argnums, grads, tgrads, strict=True):
        tg = torch.zeros_like(targs[i]) if tg is None else tg
        assert_close(g, tg, rtol, f"grad of arg {i}")
