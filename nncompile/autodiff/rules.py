"""Vector-Jacobian product rules: one per differentiable primitive, keyed by op name.

A rule gets the node's attributes, its input and output Tensors (the forward values, so
the backward reuses them instead of recomputing), the output cotangent ``g`` and a
``needs`` mask, and returns one cotangent per input (None where not needed). Rules are
written with the ordinary op functions, so they run eagerly or record graph nodes, and a
gradient is again a graph of primitives that can be differentiated again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from .. import ops
from ..dispatch import bind
from ..ir.ops.binary import BINARY
from ..ir.ops.unary import UNARY
from ..tensor import Tensor

Rule = Callable[[dict[str, Any], list[Tensor], Tensor, Tensor, list[bool]], list[Tensor | None]]
VJP: dict[str, Rule] = {}

# Ops whose outputs carry no gradient: integer/bool results, or piecewise-constant maps.
NOT_DIFFERENTIABLE = {
    "argmax",
    "argmin",
    "sign",
    "one_hot",
    "random_uniform",
    "batch_size",
    "logical_not",
    "logical_and",
    "logical_or",
    "logical_xor",
    "bitwise_not",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "equal",
    "not_equal",
    "less",
    "less_equal",
    "greater",
    "greater_equal",
    "constant",
    "stop_gradient",
}


def vjp(name: str):
    def deco(fn: Rule) -> Rule:
        VJP[name] = fn
        return fn

    return deco


def sum_to_shape(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Undo broadcasting: sum g over the axes that broadcasting added or stretched."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1
    )
    return ops.reshape(ops.sum(g, axes, keepdims=False), shape) if axes else ops.reshape(g, shape)


# ---- elementwise --------------------------------------------------------------------------


def _unary(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> Rule:
    return lambda attrs, ins, y, g, needs: [fn(ins[0], y, g) if needs[0] else None]


# declared once in ir/ops/unary.py; the rules get the ops module as their first argument
UNARY_VJP = {name: functools.partial(u.vjp, ops) for name, u in UNARY.items() if u.vjp is not None}
for _name, _fn in UNARY_VJP.items():
    VJP[_name] = _unary(_fn)


def _binary(fa: Callable, fb: Callable) -> Rule:
    def rule(attrs, ins, y, g, needs):
        a, b = ins
        return [
            sum_to_shape(fa(a, b, y, g), a.shape) if needs[0] else None,
            sum_to_shape(fb(a, b, y, g), b.shape) if needs[1] else None,
        ]

    return rule


# declared once in ir/ops/binary.py; the rules get the ops module as their first argument
BINARY_VJP = {
    name: _binary(functools.partial(b.vjp[0], ops), functools.partial(b.vjp[1], ops))
    for name, b in BINARY.items()
    if b.vjp is not None
}
VJP.update(BINARY_VJP)


@vjp("where")
def _where(attrs, ins, y, g, needs):
    c, a, b = ins
    return [
        None,
        sum_to_shape(ops.where(c, g, 0), a.shape) if needs[1] else None,
        sum_to_shape(ops.where(c, 0, g), b.shape) if needs[2] else None,
    ]


@vjp("cast")
def _cast(attrs, ins, y, g, needs):
    (x,) = ins
    if not needs[0] or not x._type.dtype.is_float or not y._type.dtype.is_float:
        return [None]
    return [ops.astype(g, x.dtype)]


# ---- reductions ---------------------------------------------------------------------------


def _kept(x: Tensor, attrs: dict, t: Tensor) -> Tensor:
    """``t`` (a reduction result) reshaped with the reduced axes kept as size 1."""
    axes = {a % x.ndim for a in attrs["axes"]}
    return ops.reshape(t, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))


@vjp("reduce_sum")
def _reduce_sum(attrs, ins, y, g, needs):
    (x,) = ins
    return [ops.broadcast_to(_kept(x, attrs, g), x.shape)]


@vjp("reduce_mean")
def _reduce_mean(attrs, ins, y, g, needs):
    (x,) = ins
    count = math.prod(x.shape[a % x.ndim] for a in attrs["axes"])
    return [ops.broadcast_to(_kept(x, attrs, g) / max(count, 1), x.shape)]


def _extreme(attrs, ins, y, g, needs):
    # Ties share the gradient evenly (as JAX does for max reductions).
    (x,) = ins
    hit = ops.astype(x == _kept(x, attrs, y), x.dtype)
    count = ops.sum(hit, attrs["axes"], keepdims=True)
    return [hit * (_kept(x, attrs, g) / count)]


VJP["reduce_max"] = _extreme
VJP["reduce_min"] = _extreme


# ---- movement -----------------------------------------------------------------------------


@vjp("reshape")
def _reshape(attrs, ins, y, g, needs):
    return [ops.reshape(g, ins[0].shape)]


@vjp("transpose")
def _transpose(attrs, ins, y, g, needs):
    inverse = [0] * len(attrs["perm"])
    for i, p in enumerate(attrs["perm"]):
        inverse[p] = i
    return [ops.transpose(g, inverse)]


@vjp("expand")
def _expand(attrs, ins, y, g, needs):
    return [sum_to_shape(g, ins[0].shape)]


@vjp("slice")
def _slice(attrs, ins, y, g, needs):
    # kept unmaterialized: the cotangents of many slices of one value are concatenated
    from .accumulate import SliceCotangent

    return [SliceCotangent(g, dict(attrs), tuple(ins[0].shape))]


@vjp("slice_backward")
def _slice_backward(attrs, ins, y, g, needs):
    fwd = {k: attrs[k] for k in ("starts", "ends", "axes", "steps")}
    return [bind("slice", g, **fwd)]


def _take_range(t: Tensor, axis: int, start: int, stop: int, step: int = 1) -> Tensor:
    return bind("slice", t, starts=(start,), ends=(stop,), axes=(axis,), steps=(step,))


def _reversed_range(t: Tensor, axis: int, start: int, stop: int) -> Tensor:
    """t[start:stop] along axis, reversed."""
    return bind(
        "slice",
        t,
        starts=(stop - 1,),
        ends=(start - 1 if start else -(2**63),),
        axes=(axis,),
        steps=(-1,),
    )


def _pad_widths(ndim: int, axis: int, before: int, after: int) -> list[tuple[int, int]]:
    return [(before, after) if i == axis else (0, 0) for i in range(ndim)]


@vjp("pad")
def _pad(attrs, ins, y, g, needs):
    (x,) = ins
    n_dims, pads, mode = x.ndim, attrs["pads"], attrs["mode"]
    for axis in range(n_dims):
        b, e, n = pads[axis], pads[n_dims + axis], x.shape[axis]
        if b == 0 and e == 0:
            continue
        grad = _take_range(g, axis, b, b + n)
        if mode == "reflect":  # padded index b - p mirrors input index p
            if b:
                grad = grad + ops.pad(
                    _reversed_range(g, axis, 0, b), _pad_widths(n_dims, axis, 1, n - 1 - b)
                )
            if e:
                grad = grad + ops.pad(
                    _reversed_range(g, axis, b + n, b + n + e),
                    _pad_widths(n_dims, axis, n - 1 - e, 1),
                )
        elif mode == "edge":  # every padded cell copies the first or last element
            if b:
                grad = grad + ops.pad(
                    ops.sum(_take_range(g, axis, 0, b), axis, keepdims=True),
                    _pad_widths(n_dims, axis, 0, n - 1),
                )
            if e:
                edge = ops.sum(_take_range(g, axis, b + n, b + n + e), axis, keepdims=True)
                grad = grad + ops.pad(edge, _pad_widths(n_dims, axis, n - 1, 0))
        g = grad
    return [g]


@vjp("concat")
def _concat(attrs, ins, y, g, needs):
    axis = attrs["axis"] % ins[0].ndim
    out, start = [], 0
    for x, need in zip(ins, needs, strict=True):
        stop = start + x.shape[axis]
        out.append(_take_range(g, axis, start, stop) if need else None)
        start = stop
    return out


@vjp("gather")
def _gather(attrs, ins, y, g, needs):
    x, idx = ins
    return [bind("scatter_add", g, idx, axis=attrs["axis"], shape=x.shape), None]


@vjp("gather_elements")
def _gather_elements(attrs, ins, y, g, needs):
    x, idx = ins
    return [bind("scatter_elements_add", g, idx, axis=attrs["axis"], shape=x.shape), None]


@vjp("scatter_add")
def _scatter_add(attrs, ins, y, g, needs):
    return [ops.take(g, ins[1], axis=attrs["axis"]), None]


@vjp("scatter_elements_add")
def _scatter_elements_add(attrs, ins, y, g, needs):
    return [ops.take_along_axis(g, ins[1], axis=attrs["axis"]), None]


# ---- contractions -------------------------------------------------------------------------


def _swap_last(t: Tensor) -> Tensor:
    perm = list(range(t.ndim))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return ops.transpose(t, perm)


@vjp("matmul")
def _matmul(attrs, ins, y, g, needs):
    a, b = ins
    # Treat 1-D operands as matrices (numpy.matmul's promotion), then undo it.
    a2 = ops.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = ops.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    g_shape = list(g.shape)
    if a.ndim == 1:
        g_shape.insert(len(g_shape) - (b.ndim > 1), 1)
    if b.ndim == 1:
        g_shape.append(1)
    g2 = ops.reshape(g, tuple(g_shape))
    da = sum_to_shape(ops.matmul(g2, _swap_last(b2)), a2.shape) if needs[0] else None
    if needs[1] and a.ndim == 2 and b.ndim == 2:
        from .accumulate import ProductCotangent  # combined with other uses of b

        db = ProductCotangent(a2, g2)
    elif needs[1] and b2.ndim == 2 and a2.ndim > 2:
        # A matrix applied to every batch entry (a dense layer over a sequence): its
        # gradient is one matmul with the batch folded into the contracted dimension,
        # not a batched matmul followed by a sum over the batch.
        k, n = b2.shape
        db = ops.matmul(ops.transpose(ops.reshape(a2, (-1, k))), ops.reshape(g2, (-1, n)))
    else:
        db = sum_to_shape(ops.matmul(_swap_last(a2), g2), b2.shape) if needs[1] else None
    if db is not None and not isinstance(db, Tensor):
        return [ops.reshape(da, a.shape) if da is not None else None, db]
    return [
        ops.reshape(da, a.shape) if da is not None else None,
        ops.reshape(db, b.shape) if db is not None else None,
    ]


def _conv_attrs(attrs: dict) -> dict:
    return {k: attrs[k] for k in ("strides", "pads", "dilations", "groups", "layout")}


def _spatial(t: Tensor, attrs: dict) -> tuple[int, int]:
    """(H, W) of activations in the op's layout."""
    return t.shape[1:3] if attrs.get("layout") == "NHWC" else t.shape[2:4]


@vjp("conv2d")
def _conv2d(attrs, ins, y, g, needs):
    x, w = ins
    return [
        bind("conv2d_backward_input", g, w, input_hw=_spatial(x, attrs), **attrs)
        if needs[0]
        else None,
        bind("conv2d_backward_weight", x, g, kernel=w.shape[2:], **attrs) if needs[1] else None,
    ]


@vjp("conv2d_backward_input")
def _conv2d_backward_input(attrs, ins, y, g, needs):
    gy, w = ins  # y = conv^T(gy, w): its adjoint in gy is conv(., w), in w the weight adjoint
    fwd = _conv_attrs(attrs)
    return [
        bind("conv2d", g, w, **fwd) if needs[0] else None,
        bind("conv2d_backward_weight", g, gy, kernel=w.shape[2:], **fwd) if needs[1] else None,
    ]


@vjp("conv2d_backward_weight")
def _conv2d_backward_weight(attrs, ins, y, g, needs):
    x, gy = ins  # y = dW(x, gy), with <dW(x, gy), t> = <gy, conv(x, t)>
    fwd = _conv_attrs(attrs)
    return [
        bind("conv2d_backward_input", gy, g, input_hw=_spatial(x, attrs), **fwd)
        if needs[0]
        else None,
        bind("conv2d", x, g, **fwd) if needs[1] else None,
    ]


@vjp("max_pool2d")
def _max_pool2d(attrs, ins, y, g, needs):
    return [bind("max_pool2d_backward", ins[0], g, **attrs)]


@vjp("max_pool2d_backward")
def _max_pool2d_backward(attrs, ins, y, g, needs):
    if needs[1]:
        raise NotImplementedError(
            "second derivatives through max_pool2d are not implemented (max_pool2d_backward "
            "has no VJP in its cotangent input)"
        )
    return [None, None]  # piecewise constant in x


@vjp("avg_pool2d")
def _avg_pool2d(attrs, ins, y, g, needs):
    return [bind("avg_pool2d_backward", g, input_hw=_spatial(ins[0], attrs), **attrs)]


@vjp("avg_pool2d_backward")
def _avg_pool2d_backward(attrs, ins, y, g, needs):
    fwd = {k: v for k, v in attrs.items() if k != "input_hw"}
    return [bind("avg_pool2d", g, **fwd)]
