"""nc.split / nc.chunk (torch's meaning) and nc.pad's modes against numpy.pad and
torch.nn.functional.pad, with gradients, compiled against eager (LLVM, and the CUDA C
emulation for two cases)."""

import shutil

import numpy as np
import pytest

import nncompile as nc

from .compiled_support import check_compiled
from .torch_support import check

torch = pytest.importorskip("torch")
F = torch.nn.functional

R = np.random.default_rng(5)
X = R.standard_normal((5, 7))
X4 = R.standard_normal((2, 3, 4, 5))

SPLITS = {
    "split_int": (lambda a: nc.split(a, 2), lambda a: torch.split(a, 2)),
    "split_int_axis": (lambda a: nc.split(a, 3, axis=-1), lambda a: torch.split(a, 3, dim=-1)),
    "split_big": (lambda a: nc.split(a, 10, axis=1), lambda a: torch.split(a, 10, dim=1)),
    "split_list": (
        lambda a: nc.split(a, [1, 0, 4, 2], axis=1),
        lambda a: torch.split(a, [1, 0, 4, 2], dim=1),
    ),
    "chunk": (lambda a: nc.chunk(a, 3), lambda a: torch.chunk(a, 3)),
    "chunk_fewer": (lambda a: nc.chunk(a, 4), lambda a: torch.chunk(a, 4)),  # 5 -> 2, 2, 1
    "chunk_more_than_n": (lambda a: nc.chunk(a, 9, -1), lambda a: torch.chunk(a, 9, -1)),
}


@pytest.mark.parametrize("name", list(SPLITS))
def test_split_matches_torch(name):
    nc_fn, torch_fn = SPLITS[name]
    assert len(nc_fn(X)) == len(torch_fn(torch.from_numpy(X)))
    check(nc_fn, torch_fn, [X], [0], np.float64)


def test_split_returns_tuples_and_empty_axes():
    assert isinstance(nc.split(X, 2), tuple) and isinstance(nc.chunk(X, 2), tuple)
    e = np.zeros((0, 3))
    t = torch.zeros(0, 3)
    for got, want in (
        (nc.split(e, 2), torch.split(t, 2)),
        (nc.split(e, 0), torch.split(t, 0)),
        (nc.chunk(e, 3), torch.chunk(t, 3)),
        (nc.split(e, [0, 0]), torch.split(t, [0, 0])),
    ):
        assert [p.shape for p in got] == [tuple(p.shape) for p in want]


def test_split_compiled():
    check_compiled(SPLITS["split_list"][0], [X])
    check_compiled(SPLITS["chunk_fewer"][0], [X])


def test_split_bad_arguments():
    with pytest.raises(nc.ShapeError, match=r"sum to 6.*length 7"):
        nc.split(X, [1, 5], axis=1)
    with pytest.raises(nc.OpAttributeError, match="positive"):
        nc.split(X, 0)
    with pytest.raises(nc.OpAttributeError, match="positive"):
        nc.split(X, -2)
    with pytest.raises(nc.OpAttributeError, match="non-negative"):
        nc.split(X, [-1, 6])
    with pytest.raises(nc.OpAttributeError, match="int"):
        nc.split(X, 2.5)
    with pytest.raises(nc.OpAttributeError, match="chunks"):
        nc.chunk(X, 0)
    with pytest.raises(nc.ShapeError):
        nc.split(X, 2, axis=2)
    with pytest.raises(nc.ShapeError, match="0-d"):
        nc.chunk(np.float32(1.0), 2)


# ---- pad --------------------------------------------------------------------------------

NUMPY_WIDTHS = [1, (2, 0), [(0, 3), (4, 1)], [(4, 4), (6, 6)], [(7, 9), (0, 15)]]


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "wrap", "edge", "constant"])
@pytest.mark.parametrize("widths", NUMPY_WIDTHS, ids=str)
def test_pad_matches_numpy(mode, widths):
    """Widths up to and past the axis length (repeated reflection and wrapping)."""
    np.testing.assert_array_equal(nc.pad(X, widths, mode=mode), np.pad(X, widths, mode=mode))


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "wrap"])
def test_pad_length_one_axis(mode):
    a = R.standard_normal((1, 3))
    w = [(2, 3), (1, 0)]
    np.testing.assert_array_equal(nc.pad(a, w, mode=mode), np.pad(a, w, mode=mode))


# torch's F.pad lists (last-axis begin, end, next-to-last begin, end); numpy's, per axis.
TORCH_PADS = {
    "reflect": ("reflect", (2, 1, 3, 0)),
    "edge": ("replicate", (4, 0, 1, 3)),
    "wrap": ("circular", (2, 3, 1, 2)),
}


def _numpy_widths(torch_pads, ndim):
    w = [(0, 0)] * ndim
    for i in range(len(torch_pads) // 2):
        w[ndim - 1 - i] = (torch_pads[2 * i], torch_pads[2 * i + 1])
    return w


@pytest.mark.parametrize("mode", list(TORCH_PADS))
def test_pad_matches_torch_with_gradients(mode):
    torch_mode, pads = TORCH_PADS[mode]
    widths = _numpy_widths(pads, X4.ndim)
    check(
        lambda a: nc.pad(a, widths, mode=mode),
        lambda a: F.pad(a, pads, mode=torch_mode),
        [X4],
        [0],
        np.float64,
    )


@pytest.mark.parametrize(
    "mode, w",
    [("symmetric", [(2, 3), (1, 2)]), ("reflect", [(5, 4), (3, 0)]), ("wrap", [(4, 7), (2, 5)])],
)
def test_pad_gradients_by_finite_differences(mode, w):
    """No torch mode is 'symmetric', and torch refuses pads this wide: central differences."""
    a = R.standard_normal((3, 2))
    ct = R.standard_normal(np.pad(a, w, mode=mode).shape)

    def loss(v):
        return np.sum(np.pad(v, w, mode=mode) * ct)

    grad = nc.grad(lambda v: nc.sum(nc.pad(v, w, mode=mode) * ct))(a)
    num = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        d = np.zeros_like(a)
        d[i] = 1e-6
        num[i] = (loss(a + d) - loss(a - d)) / 2e-6
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "mode, widths",
    [("symmetric", [(2, 3), (6, 1)]), ("wrap", [(1, 2), (9, 3)]), ("reflect", [(6, 1), (0, 8)])],
)
def test_pad_compiled(mode, widths):
    check_compiled(lambda a: nc.pad(a, widths, mode=mode), [X])


@pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA emulation needs g++")
@pytest.mark.parametrize("fn", [lambda a: nc.pad(a, 3, mode="wrap"), lambda a: nc.cumsum(a, 1)])
def test_cuda_emulated(fn, monkeypatch):
    from nncompile.backends.cuda import emulator

    monkeypatch.setenv(emulator.ENV, "1")
    check_compiled(fn, [X], backend="cuda")


def test_pad_bad_arguments():
    empty = np.zeros((0, 3))
    for mode in ("reflect", "symmetric", "wrap", "edge"):
        with pytest.raises(nc.ShapeError, match="empty axis"):
            nc.pad(empty, 1, mode=mode)
        with pytest.raises(ValueError):  # NumPy refuses it too
            np.pad(empty, 1, mode=mode)
    assert nc.pad(empty, [(0, 0), (1, 1)], mode="wrap").shape == (0, 5)
    with pytest.raises(nc.ShapeError):
        nc.pad(X, [(-1, 0), (0, 0)], mode="wrap")
    with pytest.raises(NotImplementedError, match="linear_ramp"):
        nc.pad(X, 1, mode="linear_ramp")
    with pytest.raises(nc.OpAttributeError, match="unknown mode"):
        nc.pad(X, 1, mode="circular")
    with pytest.raises(nc.OpAttributeError, match="constant_values"):
        nc.pad(X, 1, mode="wrap", constant_values=2.0)
