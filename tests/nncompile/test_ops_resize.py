"""nc.interpolate and nc.adaptive_{avg,max}_pool{1,2}d against torch.nn.functional:
outputs and gradients in float64 (nearest, nearest-exact, (bi)linear with align_corners
True/False, area; size vs scale_factor; divisible and non-divisible adaptive bins),
torch's index rules over many sizes, compiled float32 against eager, and the errors."""

import numpy as np
import pytest

import nncompile as nc
from nncompile.resize import linear_weights, nearest_indices

from .torch_support import check, torch
from .window_ops_support import check_compiled

F = torch.nn.functional
R = np.random.default_rng(3)


def n(*shape):
    return R.standard_normal(shape)


INTERP_2D = [
    dict(size=(8, 11), mode="bilinear", align_corners=False),
    dict(size=(8, 11), mode="bilinear", align_corners=True),
    dict(size=(3, 4), mode="bilinear", align_corners=False),  # downsampling
    dict(size=(1, 6), mode="bilinear", align_corners=True),  # a single output row
    dict(scale_factor=1.7, mode="bilinear"),  # 1/scale_factor in the source index
    dict(scale_factor=(0.6, 2.5), mode="bilinear", align_corners=False),
    dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True),
    dict(scale_factor=2, mode="nearest"),
    dict(scale_factor=(1.5, 0.7), mode="nearest"),
    dict(size=(3, 11), mode="nearest"),
    dict(size=(9, 4), mode="nearest-exact"),
    dict(scale_factor=1.3, mode="nearest-exact"),
    dict(size=(2, 3), mode="area"),
    dict(size=(5, 7), mode="bilinear"),  # same size: a copy
]


@pytest.mark.parametrize("kw", INTERP_2D, ids=str)
def test_interpolate_2d_matches_torch(kw):
    check(
        lambda x: nc.interpolate(x, **kw),
        lambda x: F.interpolate(x, **kw),
        [n(2, 3, 5, 7)],
        (0,),
        np.float64,
    )


INTERP_1D = [
    dict(size=13, mode="linear", align_corners=False),
    dict(size=13, mode="linear", align_corners=True),
    dict(scale_factor=0.45, mode="linear"),
    dict(scale_factor=2.2, mode="nearest"),
    dict(size=4, mode="nearest-exact"),
    dict(size=(3,), mode="area"),
]


@pytest.mark.parametrize("kw", INTERP_1D, ids=str)
def test_interpolate_1d_matches_torch(kw):
    check(
        lambda x: nc.interpolate(x, **kw),
        lambda x: F.interpolate(x, **kw),
        [n(2, 3, 7)],
        (0,),
        np.float64,
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(scale_factor=1.9, mode="bilinear"),
        dict(size=(4, 9), mode="bilinear", align_corners=True),
    ],
    ids=str,
)
def test_interpolate_float32_matches_torch(kw):
    # the source index and weights computed in float32, as torch's opmath for float32
    check(
        lambda x: nc.interpolate(x, **kw),
        lambda x: F.interpolate(x, **kw),
        [n(1, 2, 5, 6)],
        (0,),
        np.float32,
    )


def test_nearest_indices_follow_torch_over_many_sizes():
    for size in range(1, 11):
        x = torch.arange(size, dtype=torch.float64).reshape(1, 1, size)
        for out in range(1, 26):
            for mode in ("nearest", "nearest-exact"):
                want = F.interpolate(x, size=out, mode=mode).reshape(-1).long().numpy()
                got = nearest_indices(size, out, None, mode == "nearest-exact")
                np.testing.assert_array_equal(got, want, err_msg=f"{mode} {size} -> {out}")
        for scale in (0.3, 0.7, 1.1, 1.5, 2.0, 2.7, 3.3):
            out = int(np.floor(size * scale))
            if out < 1:
                continue
            for mode in ("nearest", "nearest-exact"):
                want = F.interpolate(x, scale_factor=scale, mode=mode).reshape(-1).long()
                got = nearest_indices(size, out, scale, mode == "nearest-exact")
                np.testing.assert_array_equal(got, want.numpy(), err_msg=f"{size} * {scale}")


def test_linear_weights_sum_to_one_and_stay_in_range():
    for align in (False, True):
        i0, i1, l0, l1 = linear_weights(5, 12, None, align, np.float64)
        np.testing.assert_allclose(l0 + l1, 1.0)
        assert i0.min() >= 0 and i1.max() <= 4 and np.all(i1 - i0 <= 1)


ADAPTIVE = [(2, 3), (3, None), 4, (5, 7), (1, 1), (2, 7), (None, 3), (4, 5)]


@pytest.mark.parametrize("output_size", ADAPTIVE, ids=str)
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool2d_matches_torch(kind, output_size):
    # (10, 7) input: (5, 7), (1, 1), (2, 7) are divisible (plain pooling); the rest not
    check(
        lambda x: getattr(nc, f"adaptive_{kind}_pool2d")(x, output_size),
        lambda x: getattr(F, f"adaptive_{kind}_pool2d")(x, output_size),
        [n(2, 3, 10, 7)],
        (0,),
        np.float64,
    )


@pytest.mark.parametrize("output_size", [3, 4, (5,)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool1d_matches_torch(kind, output_size):
    check(
        lambda x: getattr(nc, f"adaptive_{kind}_pool1d")(x, output_size),
        lambda x: getattr(F, f"adaptive_{kind}_pool1d")(x, output_size),
        [n(2, 3, 10)],
        (0,),
        np.float64,
    )


def test_compiled_float32_matches_eager():
    x = n(2, 3, 5, 6)
    check_compiled(lambda x: nc.interpolate(x, size=(7, 9), mode="bilinear"), [x])
    check_compiled(
        lambda x: nc.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True), [x]
    )
    check_compiled(lambda x: nc.interpolate(x, scale_factor=(2, 0.5), mode="nearest"), [x])
    check_compiled(lambda x: nc.interpolate(x, size=9, mode="linear"), [n(2, 3, 4)])
    check_compiled(lambda x: nc.adaptive_avg_pool2d(x, (3, 4)), [x])
    check_compiled(lambda x: nc.adaptive_max_pool2d(x, (3, 4)), [x])
    check_compiled(lambda x: nc.adaptive_max_pool2d(x, 3), [n(2, 3, 6, 6)])  # max_pool2d path


def test_resizing_fuses_into_injective_groups():
    # gathers with constant indices and lerps with constant weights: no contraction kernel
    x = n(2, 3, 5, 6).astype(np.float32)
    lowered = nc.lower(lambda x: nc.interpolate(x, size=(7, 9), mode="bilinear"), x)
    kinds = {g.kind for g in lowered.graph.fusion.groups}
    assert "contraction" not in kinds, kinds


def test_errors():
    x = n(1, 2, 4, 4)
    with pytest.raises(nc.OpAttributeError, match="exactly one of size and scale_factor"):
        nc.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(nc.OpAttributeError, match="exactly one of size and scale_factor"):
        nc.interpolate(x)
    with pytest.raises(nc.OpAttributeError, match="align_corners can only be set"):
        nc.interpolate(x, size=3, align_corners=True)
    with pytest.raises(NotImplementedError, match="mode 'linear' on a rank-4 input"):
        nc.interpolate(x, size=3, mode="linear")
    with pytest.raises(NotImplementedError, match="antialias=True is not supported"):
        nc.interpolate(x, size=3, mode="bilinear", antialias=True)
    with pytest.raises(NotImplementedError, match="mode 'bicubic'"):
        nc.interpolate(x, size=3, mode="bicubic")
    with pytest.raises(NotImplementedError, match="only 3-D .* and 4-D"):
        nc.interpolate(n(1, 1, 2, 2, 2), size=3)
    with pytest.raises(nc.OpAttributeError, match="unknown mode 'cubic'"):
        nc.interpolate(x, size=3, mode="cubic")
    with pytest.raises(nc.ShapeError, match="size must be 2 positive ints"):
        nc.interpolate(x, size=(3, 0))
    with pytest.raises(nc.ShapeError, match="gives an empty output"):
        nc.interpolate(x, scale_factor=0.1)
    with pytest.raises(nc.DTypeError, match="interpolate: expects a float input"):
        nc.interpolate(np.ones((1, 1, 2, 2), np.int64), size=3)
    with pytest.raises(NotImplementedError, match="return_indices=True"):
        nc.adaptive_max_pool2d(x, 2, return_indices=True)
    with pytest.raises(nc.ShapeError, match="adaptive_avg_pool2d: expects an NCHW input"):
        nc.adaptive_avg_pool2d(n(2, 4, 4), 2)
    with pytest.raises(nc.ShapeError, match="output_size must be positive ints or None"):
        nc.adaptive_max_pool2d(x, (0, 2))
    with pytest.raises(nc.ShapeError, match="adaptive_avg_pool1d: expects an NCL input"):
        nc.adaptive_avg_pool1d(x, 2)
