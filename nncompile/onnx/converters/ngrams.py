"""TfIdfVectorizer over integer tokens: counts of the pool's n-grams in each row (the pool
is an attribute, so every n-gram is a constant to compare with). As ONNX's reference
(and ONNX Runtime) scan: for each skip distance d = 1 .. max_skip_count + 1, the n-grams
x[t], x[t + d], ..., x[t + (n-1) d] of every start t, with unigrams counted in the first
pass only. Counts become TF, IDF (0/1) or TF-IDF values, weighted per output column."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .math import dtype_of
from .shape import invalid


def _pool_grams(ctx: NodeContext, pool: list[int], starts: list[int]) -> dict[int, np.ndarray]:
    """n -> (count, n) array of the pool's n-grams, in pool order (their ids)."""
    grams = {}
    bounds = [*starts, len(pool)]
    for k in range(len(starts)):
        n = k + 1
        part = pool[bounds[k] : bounds[k + 1]]
        if len(part) % n:
            invalid(ctx, f"pool segment of {len(part)} items for {n}-grams")
        grams[n] = np.asarray(part, np.int64).reshape(-1, n)
    return grams


@converter("TfIdfVectorizer", since=9)
def tfidf_vectorizer(ctx: NodeContext) -> list[Any]:
    x = ctx.input(0)
    mode = ctx.attr("mode")
    lo, hi = ctx.attr("min_gram_length"), ctx.attr("max_gram_length")
    skips = ctx.attr("max_skip_count")
    starts = ctx.attr("ngram_counts")
    indexes = ctx.attr("ngram_indexes")
    weights = ctx.attr("weights", None)
    pool = ctx.attr("pool_int64s", None)
    if ctx.attr("pool_strings", None) is not None:
        ctx.unsupported("pool_strings (string tensors are not supported)")
    if pool is None:
        invalid(ctx, "one of pool_int64s and pool_strings is required")
    if mode not in ("TF", "IDF", "TFIDF"):
        ctx.unsupported(f"attribute mode={mode!r} (TF, IDF, TFIDF)")
    if dtype_of(x).kind != "i":
        ctx.unsupported(f"input of dtype {x.dtype} (integer tokens are required)")
    if len(x.shape) not in (1, 2) or not 1 <= lo <= hi:
        invalid(ctx, f"input {tuple(x.shape)} with gram lengths {lo}..{hi}")
    grams = _pool_grams(ctx, pool, starts)
    total = sum(len(g) for g in grams.values())
    if len(indexes) != total:
        invalid(ctx, f"{len(indexes)} ngram_indexes for {total} pool n-grams")
    width = max(indexes) + 1 if indexes else 0
    if weights is not None and len(weights) not in (0, width):
        invalid(ctx, f"{len(weights)} weights for {width} output columns")
    rows = nc.reshape(nc.astype(x, np.int64), (-1, x.shape[-1]))  # (N, C)
    n_rows, length = rows.shape
    first_id = {}
    offset = 0
    for n in sorted(grams):
        first_id[n] = offset
        offset += len(grams[n])
    counts: Any = np.zeros((n_rows, total), np.float32)
    for distance in range(1, skips + 2):
        for n in range(max(lo, 1 if distance == 1 else 2), hi + 1):
            if n not in grams or len(grams[n]) == 0:
                continue
            starts_at = length - (n - 1) * distance
            if starts_at <= 0:
                continue
            pool_n = grams[n]  # (M, n)
            hit: Any = None
            for k in range(n):
                part = rows[:, k * distance : k * distance + starts_at]  # (N, T)
                eq = nc.equal(nc.expand_dims(part, -1), pool_n[:, k].reshape(1, 1, -1))
                hit = eq if hit is None else nc.logical_and(hit, eq)
            found = nc.sum(nc.astype(hit, np.float32), axis=1)  # (N, M)
            place = np.zeros((len(pool_n), total), np.float32)
            place[np.arange(len(pool_n)), first_id[n] + np.arange(len(pool_n))] = 1
            counts = nc.add(counts, nc.matmul(found, place))
    # pool n-gram i -> output column ngram_indexes[i]
    columns = np.zeros((total, width), np.float32)
    np.add.at(columns, (np.arange(total), np.asarray(indexes, np.int64)), 1)
    freq = nc.matmul(counts, columns)  # (N, width)
    w = np.asarray(weights if weights else [1.0] * width, np.float32)
    if mode == "IDF":
        y = nc.where(nc.greater(freq, np.float32(0)), w, np.float32(0))
    elif mode == "TFIDF":
        y = nc.multiply(freq, w)
    else:
        y = freq
    return [nc.reshape(y, (width,)) if len(x.shape) == 1 else y]
