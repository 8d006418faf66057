"""The LLVM backend's inline float32 exp, tanh and sigmoid (backends/llvm/fastmath.py) against
float64 NumPy: error in units of the float32 result's last place over every binade of
their input range, the special values, and both ways of building 2^k (AVX-512's vscalefps
and exponent bits) where this CPU has the first."""

from __future__ import annotations

import numpy as np
import pytest
from nncompile.backends.llvm import codegen

import nncompile as nc

F32 = np.finfo(np.float32)
# bounds the module's docstring states; sigmoid's e / (1 + e) doubles exp's error where
# the result sits one binade below e
MAX_ULPS = {"exp": 1.5, "tanh": 2.0, "sigmoid": 3.0}
REFERENCE = {
    "exp": np.exp,
    "tanh": np.tanh,
    "sigmoid": lambda v: np.exp(-np.logaddexp(0.0, -v)),
}
OPS = {"exp": nc.exp, "tanh": nc.tanh, "sigmoid": nc.sigmoid}


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    binades = np.concatenate(
        [s * np.geomspace(2.0**-30, 110.0, 40001) for s in (1.0, -1.0)]
    )  # every binade from tiny to beyond overflow
    return np.concatenate(
        [
            binades,
            rng.uniform(-1.0, 1.0, 50001),
            rng.uniform(-105.0, 90.0, 50001),
            np.linspace(0.55, 0.7, 2001),  # tanh's two branches meet at 0.625
            np.linspace(-0.7, -0.55, 2001),
        ]
    ).astype(np.float32)


def _ulps(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    spacing = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref) / spacing


@pytest.fixture(params=["scalef", "exponent-bits"])
def power_of_two(request, monkeypatch):
    if request.param == "scalef":
        if not codegen._has_scalef():
            pytest.skip("this CPU has no AVX-512 (vscalefps)")
    else:
        monkeypatch.setattr(codegen, "_has_scalef", lambda: False)
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", "off")  # each variant compiled afresh
    return request.param


@pytest.mark.parametrize("op", sorted(OPS))
def test_within_stated_ulps_of_float64(op, power_of_two):
    x = _inputs()
    got = nc.compile(OPS[op])(x)
    with np.errstate(over="ignore"):
        ref = REFERENCE[op](x.astype(np.float64))
    normal = (np.abs(ref) >= F32.tiny) & (np.abs(ref) <= F32.max)
    ulps = _ulps(got[normal], ref[normal])
    worst = int(np.argmax(ulps))
    assert ulps.max() <= MAX_ULPS[op], (op, x[normal][worst], ulps.max())
    # beyond float32's range: inf above, 0 (flushed) or the subnormal result below
    big, small = ref > F32.max, np.abs(ref) < F32.tiny
    assert np.all(got[big] == np.inf)
    assert np.all(np.abs(got[small]) <= F32.tiny)


@pytest.mark.parametrize("op", sorted(OPS))
def test_special_values(op, power_of_two):
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30, -1e-30, 88.7, 89.0, -104.0], "f4")
    got = nc.compile(OPS[op])(x)
    with np.errstate(over="ignore"):
        ref = REFERENCE[op](x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(got, ref, rtol=3e-7, atol=0)
    # zeros keep their sign where the function is odd
    assert np.array_equal(np.signbit(got[3:5]), np.signbit(ref[3:5]))


def test_subnormal_results_when_flushing_is_off(monkeypatch, power_of_two):
    """exp's results below float32's smallest normal (x < -87.3) come out as subnormals,
    rounded once, where compiled code keeps them."""
    monkeypatch.setenv("NNCOMPILE_FLUSH_DENORMALS", "0")
    x = np.linspace(-103.9, -87.4, 5001).astype(np.float32)
    got = nc.compile(nc.exp)(x)
    ref = np.exp(x.astype(np.float64))
    smallest = np.float64(F32.smallest_subnormal)
    assert np.all(np.abs(got - ref) <= 1.5 * smallest)
    assert np.count_nonzero(got) == np.count_nonzero(ref.astype(np.float32))


def test_float64_keeps_libm():
    x = np.linspace(-700.0, 700.0, 20001)
    np.testing.assert_allclose(nc.compile(nc.exp)(x), np.exp(x), rtol=1e-15, atol=0)
    np.testing.assert_allclose(nc.compile(nc.tanh)(x / 50), np.tanh(x / 50), rtol=1e-15, atol=0)
