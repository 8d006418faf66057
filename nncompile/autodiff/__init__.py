"""Reverse-mode automatic differentiation as a graph transform."""

from .api import grad as grad_fn
from .api import value_and_grad
from .rules import NOT_DIFFERENTIABLE, VJP, sum_to_shape
from .transform import backpropagate, grad_graph


def grad(f_or_graph, *args, **kwargs):
    """``grad(graph, wrt=..., of=...)`` returns a new Graph (see ``grad_graph``);
    ``grad(fn, argnums=...)`` returns the gradient function (see ``nc.grad``)."""
    from ..ir.graph import Graph

    if isinstance(f_or_graph, Graph):
        return grad_graph(f_or_graph, *args, **kwargs)
    return grad_fn(f_or_graph, *args, **kwargs)


__all__ = [
    "NOT_DIFFERENTIABLE",
    "VJP",
    "backpropagate",
    "grad",
    "grad_graph",
    "sum_to_shape",
    "value_and_grad",
]
