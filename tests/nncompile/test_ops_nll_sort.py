"""nc.nll_loss, nc.sort and nc.topk against PyTorch (float64 outputs and gradients) and
compiled on LLVM against eager (float32 outputs and gradients)."""

import numpy as np
import pytest

import nncompile as nc

from .compiled_support import check_compiled
from .torch_support import assert_close, check

torch = pytest.importorskip("torch")

F = torch.nn.functional
R = np.random.default_rng(16)


# ----------------------------------------------------------------------------- nll_loss


def log_probs(*shape):
    p = R.dirichlet(np.ones(shape[1]), (shape[0],) + shape[2:])
    return np.ascontiguousarray(np.moveaxis(np.log(p), -1, 1))  # torch needs contiguous


# (N, C) and (N, C, d1, d2); some targets are ignore_index (-100, or 1 where given)
TARGETS = {
    "2d": (log_probs(5, 4), np.array([0, 3, -100, 1, 3])),
    "4d": (log_probs(2, 3, 2, 3), np.array([[[0, 2, 1], [-100, 2, 0]], [[1, 1, -100], [2, 0, 2]]])),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("case", list(TARGETS))
def test_nll_loss_vs_torch(case, weighted, reduction):
    lp, t = TARGETS[case]
    w = R.uniform(0.5, 2.0, lp.shape[1]) if weighted else None
    kw = {"reduction": reduction}
    check(
        lambda x, t: nc.nll_loss(x, t, w, **kw),
        lambda x, t: F.nll_loss(x, t, None if w is None else torch.tensor(w), **kw),
        [lp, t],
        [0],
        np.float64,
    )


def test_nll_loss_own_ignore_index_and_scalar_target():
    lp, t = TARGETS["2d"]
    t = np.where(t < 0, 1, t)  # class 1 is ignored: no out-of-range value left
    for kw in ({"ignore_index": 1}, {"ignore_index": 1, "reduction": "sum"}):
        check(
            lambda x, t, kw=kw: nc.nll_loss(x, t, **kw),
            lambda x, t, kw=kw: F.nll_loss(x, t, **kw),
            [lp, t],
            [0],
            np.float64,
        )
    check(nc.nll_loss, F.nll_loss, [lp[0], np.array(2)], [0], np.float64)


def test_nll_loss_all_ignored_mean_is_nan_as_torch():
    lp, t = log_probs(3, 4), np.full(3, -100)
    want = F.nll_loss(torch.tensor(lp), torch.tensor(t)).item()
    assert np.isnan(want) and np.isnan(nc.nll_loss(lp, t).item())
    assert nc.nll_loss(lp, t, reduction="sum").item() == 0.0


def test_nll_loss_ignored_minus_inf_is_zero():
    lp = np.array([[-np.inf, 0.0], [np.log(0.5), np.log(0.5)]])
    out = nc.nll_loss(lp, np.array([-100, 1]), reduction="none").numpy()
    np.testing.assert_array_equal(out, [0.0, -np.log(0.5)])


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_nll_loss_compiled(reduction, weighted):
    lp, t = TARGETS["4d"]
    w = R.uniform(0.5, 2.0, 3) if weighted else None
    check_compiled(lambda x, t: nc.nll_loss(x, t, w, reduction=reduction), [lp, t])


@pytest.mark.parametrize("bad", [4, -1, -3])
def test_nll_loss_out_of_range_target(bad):
    lp, t = log_probs(3, 4), np.array([0, bad, 1])
    with pytest.raises(nc.ShapeError, match=f"target {bad} is out of bounds for 4 classes"):
        nc.nll_loss(lp, t)
    f = nc.compile(nc.nll_loss, backend="llvm")
    assert np.isfinite(f(lp.astype(np.float32), np.array([0, 3, -100])))
    with pytest.raises(nc.ExecutionError, match="index out of range"):
        f(lp.astype(np.float32), t)  # unknown while tracing: the compiled gather reports it


def test_nll_loss_bad_arguments():
    lp = log_probs(3, 4)
    with pytest.raises(nc.ShapeError, match=r"without the class axis 1, \(3,\)"):
        nc.nll_loss(lp, np.zeros((3, 1), np.int64))
    with pytest.raises(nc.DTypeError, match="integer class ids"):
        nc.nll_loss(lp, np.zeros(3))
    with pytest.raises(nc.ConfigError, match="reduction"):
        nc.nll_loss(lp, np.zeros(3, np.int64), reduction="avg")
    with pytest.raises(nc.ShapeError, match=r"weight .* must be \(4,\)"):
        nc.nll_loss(lp, np.zeros(3, np.int64), weight=np.ones(3))


# ----------------------------------------------------------------------------- sort, topk


def with_ties_and_nan(*shape):
    x = R.integers(-3, 3, shape).astype(np.float64)
    x.flat[R.choice(x.size, 3, replace=False)] = np.nan
    return x


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_sort_vs_torch_stable(axis, descending):
    """Ties keep index order and NaN sorts as the largest, as torch.sort(stable=True)."""
    check(
        lambda x: nc.sort(x, axis, descending),
        lambda x: tuple(torch.sort(x, dim=axis, descending=descending, stable=True)),
        [with_ties_and_nan(4, 5, 6)],
        [0],
        np.float64,
    )


def test_sort_ints_bools_and_scalar():
    x = R.integers(-5, 5, (3, 7))
    values, indices = nc.sort(x, descending=True)
    tv, ti = torch.sort(torch.tensor(x), descending=True, stable=True)
    assert_close(values, tv, 0)
    assert_close(indices, ti, 0)
    b = R.random((2, 9)) < 0.5
    for descending in (False, True):
        values, indices = nc.sort(b, descending=descending)
        tv, ti = torch.sort(torch.tensor(b), descending=descending, stable=True)
        assert_close(values, tv, 0)
        assert_close(indices, ti, 0)
    values, indices = nc.sort(np.float64(2.5))
    assert values.shape == indices.shape == () and indices.item() == 0


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("axis", [0, -1])
def test_topk_vs_torch(axis, largest):
    x = R.permutation(60).reshape(3, 4, 5) / 7.0  # distinct: torch's tie order is unspecified
    check(
        lambda x: nc.topk(x, 3, axis, largest),
        lambda x: tuple(torch.topk(x, 3, dim=axis, largest=largest)),
        [x],
        [0],
        np.float64,
    )


def test_topk_ties_and_nan_follow_the_stable_sort():
    x = with_ties_and_nan(3, 8)
    for largest in (True, False):
        values, indices = nc.topk(x, 4, largest=largest, sorted=False)
        sv, si = nc.sort(x, descending=largest)
        np.testing.assert_array_equal(indices.numpy(), si.numpy()[:, :4])
        np.testing.assert_array_equal(values.numpy(), sv.numpy()[:, :4])
    values, _ = nc.topk(x, 2)
    tv, _ = torch.topk(torch.tensor(x), 2)
    np.testing.assert_array_equal(values.numpy(), tv.numpy())  # NaN first, as torch


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_sort_topk_compiled(axis):
    x = with_ties_and_nan(3, 4, 5)
    check_compiled(lambda x: nc.sort(x, axis, descending=True), [x])
    check_compiled(lambda x: nc.sort(x, axis), [x])
    check_compiled(lambda x: nc.topk(x, 2, axis, largest=False), [x])


def test_sort_topk_bad_arguments():
    with pytest.raises(NotImplementedError, match="limited to 4096"):
        nc.sort(np.zeros(4097))
    with pytest.raises(nc.ShapeError, match="k=6 is out of range for 5 elements"):
        nc.topk(np.zeros((2, 5)), 6)
    with pytest.raises(nc.ShapeError, match="axis 2 is out of range"):
        nc.sort(np.zeros((2, 5)), axis=2)


def test_fused_reduction_broadcast_across_rows():
    """Found writing sort: sum(m, 1) has shape (4,) and broadcasts along m's last axis, but the
    fused LLVM kernel reads it per row (fusion's row_safe admits the implicit broadcast of a
    pointwise op). nc.sort keeps its reduced axis (keepdims) to stay clear of this."""
    m = R.standard_normal((4, 4)).astype(np.float32)
    f = lambda m: nc.sum(m, 1) + m  # noqa: E731
    np.testing.assert_allclose(nc.compile(f, backend="llvm")(m), f(m).numpy(), rtol=1e-6)
