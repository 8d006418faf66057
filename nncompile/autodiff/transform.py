"""Reverse-mode differentiation of a Graph.

``backpropagate`` replays a graph's nodes on given Tensors, then walks the nodes in
reverse applying VJP rules. Run eagerly it computes gradients; run inside a trace it
records the forward and backward nodes, which is how ``grad_graph`` builds a new Graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import ops
from ..dispatch import apply_op, scope_override, source_location_override
from ..ir.errors import DTypeError, GraphError, ShapeError
from ..ir.graph import Graph, Value
from ..ir.types import TensorType
from ..tensor import Tensor
from ..tracing import Trace, trace_stack
from .accumulate import combine
from .rules import NOT_DIFFERENTIABLE, VJP


def backpropagate(
    graph: Graph,
    inputs: Sequence[Tensor],
    wrt: Sequence[int],
    of: int = 0,
    cotangent: Tensor | None = None,
) -> tuple[list[Tensor], list[Tensor]]:
    """Returns (the graph's outputs, d outputs[of] / d inputs[i] for i in wrt).

    Only nodes between the ``wrt`` inputs and the output get a backward step, and a rule is
    asked only for the input cotangents that lead back to ``wrt`` inputs (``needs``).
    """
    for i in wrt:
        if not graph.inputs[i].dtype.is_float:
            raise DTypeError(
                f"cannot differentiate with respect to input {i} "
                f"(%{graph.inputs[i].name}) of dtype {graph.inputs[i].dtype}"
            )
    env: dict[int, Tensor] = {id(v): t for v, t in zip(graph.inputs, inputs, strict=True)}
    depends = {id(graph.inputs[i]) for i in wrt}
    for node in graph.nodes:
        outs = apply_op(
            node.op, [env[id(v)] for v in node.inputs], node.attrs, loc=node.loc, scope=node.scope
        )
        for v, t in zip(node.outputs, outs, strict=True):
            env[id(v)] = t
        if any(id(v) in depends for v in node.inputs):
            depends.update(id(v) for v in node.outputs)

    target = graph.outputs[of]
    y = env[id(target)]
    if cotangent is None:
        if target.shape != () or not target.dtype.is_float:
            raise ShapeError(
                f"grad needs a float scalar output; output {of} is {target.type} "
                "(reduce it to a scalar, or pass a cotangent)"
            )
        cotangent = ops.ones_like(y)
    elif cotangent.shape != target.shape:
        raise ShapeError(f"cotangent {cotangent._type} does not match output {target.type}")
    # Each value's cotangent contributions, summed when its node is reached (combine).
    cts: dict[int, list] = {id(target): [ops.astype(cotangent, target.dtype.np)]}

    for node in reversed(graph.nodes):
        pending = cts.pop(id(node.outputs[0]), None) if len(node.outputs) == 1 else None
        g = _combine_in_scope(pending, node) if pending is not None else None
        if g is None or node.op in NOT_DIFFERENTIABLE:
            continue
        needs = [id(v) in depends and v.dtype.is_float for v in node.inputs]
        if not any(needs):
            continue
        rule = VJP.get(node.op)
        if rule is None:
            raise NotImplementedError(f"no VJP rule for op {node.op!r} (node {node.name})")
        scope = "backward/" + node.scope if node.scope else "backward"
        with (
            source_location_override(f"{node.loc or '?'} (vjp of {node.name})"),
            scope_override(scope),
        ):
            in_cts = rule(
                node.attrs, [env[id(v)] for v in node.inputs], env[id(node.outputs[0])], g, needs
            )
            for v, c, need in zip(node.inputs, in_cts, needs, strict=True):
                if need and c is not None:
                    _accumulate(cts, v, c)

    outputs = [env[id(v)] for v in graph.outputs]
    with scope_override("backward"):
        grads = [
            combine(cts[id(graph.inputs[i])]) if id(graph.inputs[i]) in cts else None for i in wrt
        ]
    grads = [
        g if g is not None else ops.zeros_like(inputs[i]) for g, i in zip(grads, wrt, strict=True)
    ]
    return outputs, grads


def _accumulate(cts: dict[int, list], v: Value, c: Any) -> None:
    if tuple(c.shape) != v.shape or c.dtype != v.dtype.np:
        raise GraphError(
            f"VJP produced {c.dtype}{list(c.shape)} for %{v.name}: {v.type} (a rule bug)"
        )
    pending = cts.setdefault(id(v), [])
    # Tensors are summed at once (inside the rule's source location); deferred slice and
    # product cotangents wait for their siblings (see accumulate.py).
    if isinstance(c, Tensor) and pending and isinstance(pending[0], Tensor):
        pending[0] = pending[0] + c
    elif isinstance(c, Tensor):
        pending.insert(0, c)
    else:
        pending.append(c)


def _combine_in_scope(pending: list, node) -> Tensor:
    """Sum a node's output cotangents, recorded in the node's backward scope."""
    if len(pending) == 1 and isinstance(pending[0], Tensor):
        return pending[0]
    scope = "backward/" + node.scope if node.scope else "backward"
    with scope_override(scope):
        return combine(pending)


def _index(graph: Graph, key: int | str, values: list[Value], what: str) -> int:
    if isinstance(key, str):
        for i, v in enumerate(values):
            if v.name == key:
                return i
        raise GraphError(f"graph {graph.name} has no {what} named {key!r}")
    if not -len(values) <= key < len(values):
        raise GraphError(f"graph {graph.name} has no {what} {key}")
    return key % len(values)


def grad_graph(
    graph: Graph,
    wrt: Sequence[int | str] | None = None,
    of: int | str = 0,
    keep_outputs: bool = True,
) -> Graph:
    """A new Graph computing the gradient of output ``of`` with respect to the inputs
    ``wrt`` (indices or names; default: every float input). Its inputs are the original
    inputs; its outputs are the original outputs (if ``keep_outputs``) then the gradients."""
    if wrt is None:
        wrt_idx = [i for i, v in enumerate(graph.inputs) if v.dtype.is_float]
    else:
        wrt_idx = [_index(graph, w, graph.inputs, "input") for w in wrt]
    of_idx = _index(graph, of, graph.outputs, "output")
    tr = Trace(f"{graph.name}_grad")
    trace_stack().append(tr)
    try:
        inputs = [
            Tensor._symbolic(tr.graph.add_input(TensorType(v.shape, v.dtype), v.name), tr)
            for v in graph.inputs
        ]
        outs, grads = backpropagate(graph, inputs, wrt_idx, of_idx)
        results = (outs if keep_outputs else []) + grads
        tr.graph.set_outputs([tr.value_of(t) for t in results])
    finally:
        trace_stack().pop()
        tr.active = False
    grad_tree = {"kind": "list", "children": [{"kind": "array"} for _ in grads]}
    tr.graph.in_tree = graph.in_tree
    if keep_outputs:
        value_tree = graph.out_tree or {
            "kind": "list",
            "children": [{"kind": "array"} for _ in outs],
        }
        tr.graph.out_tree = {"kind": "tuple", "children": [value_tree, grad_tree]}
    else:
        tr.graph.out_tree = grad_tree
    tr.graph.verify()
    return tr.graph
