"""Function transforms: nc.grad and nc.value_and_grad.

Each call traces the function into a graph (nested inside any enclosing trace) and runs
``backpropagate`` on the actual arguments: eagerly this computes the gradient; under a
trace it records forward and backward nodes, so ``grad(grad(f))`` differentiates a graph
of primitives again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .. import pytree
from ..ir.errors import DTypeError
from ..tensor import as_tensor
from ..tracing import is_array_leaf, trace_with_captures
from .transform import backpropagate


def _argnum_tuple(argnums: int | Sequence[int], nargs: int) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not -nargs <= a < nargs:
            raise ValueError(f"argnums {argnums} out of range for {nargs} arguments")
    return tuple(a % nargs for a in nums)


def _value_and_grad(fn: Callable, argnums: int | Sequence[int], has_aux: bool, args: tuple):
    nums = _argnum_tuple(argnums, len(args))
    graph, captured = trace_with_captures(fn, args, getattr(fn, "__name__", None))
    if not has_aux and graph.out_tree != {"kind": "array"}:
        raise ValueError(
            "grad needs a function returning one scalar; for (loss, aux) outputs pass has_aux=True"
        )
    # Leaves of each top-level argument, in order, so grads can take the args' structure.
    per_arg = [pytree.flatten(a, is_array_leaf) for a in args]
    offsets, start = [], 0
    for leaves, _, _ in per_arg:
        offsets.append(start)
        start += len(leaves)
    wrt = []
    for a in nums:
        leaves = per_arg[a][0]
        if not leaves:
            raise DTypeError(f"argument {a} has no arrays to differentiate with respect to")
        wrt += range(offsets[a], offsets[a] + len(leaves))
    inputs = [as_tensor(x) for leaves, _, _ in per_arg for x in leaves] + list(captured)
    outs, grads = backpropagate(graph, inputs, wrt, of=0)

    it = iter(grads)
    grad_trees = []
    for a in nums:
        leaves, statics, tree = per_arg[a]
        grad_trees.append(pytree.unflatten(tree, [next(it) for _ in leaves], statics))
    grad_result = grad_trees[0] if isinstance(argnums, int) else tuple(grad_trees)
    value = pytree.unflatten(graph.out_tree, outs)
    return value, grad_result


def value_and_grad(
    fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """``(value, grad)`` of a function whose first output is a float scalar. With
    ``has_aux`` the function returns ``(loss, aux)`` and value is that pair."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        return _value_and_grad(fn, argnums, has_aux, args)

    return wrapper


def grad(fn: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar function with respect to the arguments ``argnums``, with
    the same (nested) structure as those arguments. With ``has_aux``, returns
    ``(grad, aux)``."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        value, g = _value_and_grad(fn, argnums, has_aux, args)
        return (g, value[1]) if has_aux else g

    return wrapper
