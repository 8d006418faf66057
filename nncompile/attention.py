"""scaled_dot_product_attention: torch.nn.functional's, as matmuls around nc.softmax."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .composites import softmax
from .functional.layers import dropout
from .ir.errors import ConfigError, DTypeError, ShapeError
from .ir.registry import broadcasts_to
from .ops import ArrayLike, astype, matmul, max, stop_gradient, transpose, where
from .source_location import reports_user_line
from .tensor import Tensor, as_tensor


def _check_shapes(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.ndim < 2:
            raise ShapeError(
                f"scaled_dot_product_attention: {name} must be (..., n, e), got {t._type}"
            )
        if not t._type.dtype.is_float:
            raise DTypeError(f"scaled_dot_product_attention: {name} must be float, got {t._type}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(
            "scaled_dot_product_attention: query (..., L, E), key (..., S, E) and value "
            f"(..., S, Ev) do not fit: {q._type}, {k._type}, {v._type}"
        )


def _masked(scores: Tensor, attn_mask: Tensor) -> Tensor:
    """True in a bool mask takes part (others get -inf); a float mask is added."""
    if not broadcasts_to(attn_mask.shape, scores.shape):
        raise ShapeError(
            f"scaled_dot_product_attention: attn_mask {attn_mask._type} does not broadcast "
            f"to the attention scores {scores._type}"
        )
    if attn_mask._type.dtype.is_bool:
        return where(attn_mask, scores, -math.inf)
    if attn_mask._type.dtype.is_float:
        return scores + astype(attn_mask, scores._type.dtype)  # scores keep their dtype
    raise DTypeError(
        f"scaled_dot_product_attention: attn_mask must be bool or float, got {attn_mask._type}"
    )


def _safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last axis where a row of all -inf (a query that sees no key) gives
    zeros, as torch's _safe_softmax (torch >= 2.5; older versions gave NaN). The row's
    scores become 0 before the softmax so that its backward pass stays finite too."""
    dead = stop_gradient(max(scores, -1, keepdims=True)) == -math.inf
    return where(dead, 0.0, softmax(where(dead, 0.0, scores), axis=-1))


@reports_user_line
def scaled_dot_product_attention(
    query: ArrayLike,
    key: ArrayLike,
    value: ArrayLike,
    attn_mask: ArrayLike | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_key: Any = None,
) -> Tensor:
    """torch.nn.functional.scaled_dot_product_attention: softmax(q k^T * scale + mask) v.

    Shapes (..., L, E), (..., S, E), (..., S, Ev) -> (..., L, Ev); leading axes broadcast.
    ``attn_mask``: bool (True = takes part) or float (added to the scores), broadcastable
    to (..., L, S). ``is_causal``: the lower-triangular mask aligned at the top left
    (query i sees keys j <= i), as torch; it cannot be combined with ``attn_mask``.
    ``scale`` defaults to 1 / sqrt(E). A query row that sees no key (all masked) gives
    zeros and a zero gradient, as torch >= 2.5 does.
    ``dropout_p`` > 0 drops attention weights (inverted dropout, as nc.functional.dropout)
    with the mask drawn from ``dropout_key``, an int64 scalar, which is then required.
    """
    q, k, v = as_tensor(query), as_tensor(key), as_tensor(value)
    _check_shapes(q, k, v)
    if is_causal and attn_mask is not None:
        raise ConfigError(
            "scaled_dot_product_attention: explicit attn_mask should not be set when "
            "is_causal=True (as in torch)"
        )
    if not 0 <= dropout_p < 1:
        raise ConfigError(
            f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}"
        )
    if dropout_p > 0 and dropout_key is None:
        raise ConfigError(
            "scaled_dot_product_attention: dropout_p > 0 needs a dropout_key (an int64 "
            "scalar) to draw the mask from"
        )
    if scale is None:
        scale = 1 / math.sqrt(q.shape[-1])
    perm = tuple(range(k.ndim - 2)) + (k.ndim - 1, k.ndim - 2)
    scores = matmul(q, transpose(k, perm)) * scale
    if is_causal:
        length, source = q.shape[-2], k.shape[-2]
        attn_mask = as_tensor(np.tril(np.ones((length, source), dtype=bool)))
    if attn_mask is not None:
        weights = _safe_softmax(_masked(scores, as_tensor(attn_mask)))
    else:
        weights = softmax(scores, axis=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, dropout_key)
    return matmul(weights, v)


__all__ = ["scaled_dot_product_attention"]
