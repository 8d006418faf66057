"""nc.scaled_dot_product_attention against torch.nn.functional's (float64 outputs and
gradients), compiled on LLVM against eager (float32), and its keyed dropout."""

import numpy as np
import pytest

import nncompile as nc

from .compiled_support import check_compiled
from .torch_support import check

torch = pytest.importorskip("torch")

F = torch.nn.functional
R = np.random.default_rng(17)


def n(*shape):
    return R.standard_normal(shape)


def qkv(batch, length, source, e=5, ev=3):
    return [n(*batch, length, e), n(*batch, source, e), n(*batch, source, ev)]


BOOL_MASK = R.random((4, 6)) < 0.6
BOOL_MASK[:, 0] = True
BOOL_MASK[2] = False  # query 2 sees no key: torch gives zeros (and zero gradients)
FLOAT_MASK = n(3, 1, 6)
FLOAT_MASK[1, 0, 2:4] = -np.inf

# name: (q, k, v, extra arrays, keyword arguments), the extra arrays passed as attn_mask
CASES = {
    "3d": (qkv((2,), 4, 6), [], {}),
    "4d": (qkv((2, 3), 4, 6), [], {}),
    "batch_broadcast": ([n(2, 3, 4, 5), n(3, 6, 5), n(1, 6, 2)], [], {}),
    "scale": (qkv((2,), 4, 6), [], {"scale": 0.3}),
    "causal_short_query": (qkv((2, 3), 4, 6), [], {"is_causal": True}),
    "causal_long_query": (qkv((2,), 6, 4), [], {"is_causal": True}),
    "bool_mask": (qkv((2, 3), 4, 6), [BOOL_MASK], {}),
    "float_mask": (qkv((2, 3), 4, 6), [FLOAT_MASK], {"scale": 0.5}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_attention_vs_torch(case):
    arrays, masks, kw = CASES[case]

    def ours(q, k, v, *mask):
        return nc.scaled_dot_product_attention(q, k, v, *mask, **kw)

    def theirs(q, k, v, *mask):
        return F.scaled_dot_product_attention(q, k, v, *mask, **kw)

    argnums = [0, 1, 2] + ([3] if masks and masks[0].dtype.kind == "f" else [])
    check(ours, theirs, arrays + masks, argnums, np.float64)


def test_fully_masked_query_is_zero_with_zero_gradient():
    q, k, v = qkv((2, 3), 4, 6)
    out = nc.scaled_dot_product_attention(q, k, v, BOOL_MASK)
    np.testing.assert_array_equal(out.numpy()[:, :, 2], 0.0)
    gq = nc.grad(lambda q: nc.sum(nc.scaled_dot_product_attention(q, k, v, BOOL_MASK)))(q)
    assert np.isfinite(gq).all()
    np.testing.assert_array_equal(np.asarray(gq)[:, :, 2], 0.0)


@pytest.mark.parametrize("case", ["4d", "causal_long_query", "bool_mask", "float_mask"])
def test_attention_compiled(case):
    arrays, masks, kw = CASES[case]
    check_compiled(
        lambda q, k, v, *mask: nc.scaled_dot_product_attention(q, k, v, *mask, **kw),
        arrays + masks,
        argnums=(0, 1, 2),
    )


def test_attention_bad_arguments():
    q, k, v = qkv((2,), 4, 6)
    with pytest.raises(nc.ConfigError, match="attn_mask should not be set when is_causal"):
        nc.scaled_dot_product_attention(q, k, v, BOOL_MASK, is_causal=True)
    with pytest.raises(nc.ConfigError, match="needs a dropout_key"):
        nc.scaled_dot_product_attention(q, k, v, dropout_p=0.1)
    with pytest.raises(nc.ConfigError, match=r"dropout_p must be in \[0, 1\)"):
        nc.scaled_dot_product_attention(q, k, v, dropout_p=1.0, dropout_key=np.int64(1))
    with pytest.raises(nc.ShapeError, match="do not fit"):
        nc.scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(nc.ShapeError, match="does not broadcast"):
        nc.scaled_dot_product_attention(q, k, v, BOOL_MASK[:, :5])
    with pytest.raises(nc.DTypeError, match="bool or float"):
        nc.scaled_dot_product_attention(q, k, v, BOOL_MASK.astype(np.int64))


# ----------------------------------------------------------------------------- dropout


def attend(q, k, v, key, p=0.3):
    return nc.scaled_dot_product_attention(q, k, v, dropout_p=p, dropout_key=key)


def test_dropout_same_key_same_result_compiled_and_eager():
    q, k, v = (a.astype(np.float32) for a in qkv((2,), 4, 6))
    key = np.int64(42)
    eager = attend(q, k, v, key).numpy()
    np.testing.assert_allclose(nc.compile(attend, backend="llvm")(q, k, v, key), eager, rtol=1e-5)
    np.testing.assert_array_equal(attend(q, k, v, key).numpy(), eager)
    assert not np.allclose(attend(q, k, v, np.int64(43)).numpy(), eager)
    plain = nc.scaled_dot_product_attention(q, k, v).numpy()
    assert not np.allclose(eager, plain)
    np.testing.assert_array_equal(attend(q, k, v, key, p=0.0).numpy(), plain)


def test_dropout_preserves_the_mean():
    """Inverted dropout: with v = 1 every output is a row sum of the kept weights / (1 - p),
    1 in expectation."""
    q, k = n(1, 4000, 8), n(1, 16, 8)
    out = attend(q, k, np.ones((1, 16, 1)), np.int64(7), p=0.4).numpy()
    assert abs(out.mean() - 1.0) < 0.03
    assert out.std() > 0.1  # weights were dropped
