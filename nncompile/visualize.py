"""Graph pictures with graphviz: ``nc.viz(f, *examples, path="g.svg", stage="fused")``.

Nodes show op, shape and dtype. Graph inputs are drawn apart by role: data arguments
(ellipses), parameters and state, i.e. leaves of dict/list arguments (boxes), constants
(small grey). Fill colours tell the parts of a training step apart: forward (white),
loss (lavender), backward (pink), optimizer (green). At stage "fused" each fusion group
is a cluster named like its kernel; otherwise nodes cluster by scope (layer names such as
``dense_1``). Graphs larger than ``collapse_above`` nodes collapse each cluster into one
node listing its ops, so a 1,500-node LSTM step stays legible.

Graphs are built with the ``graphviz`` package (quoting, clusters); ``picture.render``
draws them with the ``dot`` program. Without it the .dot file is written and the message
says how to install graphviz. ``nc.viz`` returns the written path as a ``Picture``, which
Jupyter displays inline.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import graphviz

from .ir.errors import ConfigError
from .ir.graph import Graph, Node, Value
from .picture import FORMATS, Picture, render

__all__ = [
    "FORMATS",
    "STAGES",
    "Picture",
    "draw_training_graph",
    "graph_at_stage",
    "phase_of",
    "render",
    "to_digraph",
    "to_dot",
    "viz",
]

STAGES = ("traced", "grad", "optimized", "fused")
PHASE_COLOURS = {
    "forward": "white",
    "loss": "lavender",
    "backward": "mistyrose",
    "optimizer": "honeydew",
}
DTYPE_SHORT = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "bool": "bool"}


def _type_text(v: Value) -> str:
    dtype = DTYPE_SHORT.get(v.dtype.name, v.dtype.name)
    return f"{tuple(v.shape)} {dtype}"


def phase_of(scope: str) -> str:
    """forward, loss, backward or optimizer, from the first part of a node's scope."""
    head = scope.split("/", 1)[0]
    if head in ("backward", "optimizer"):
        return head
    return "loss" if head in ("loss", "metrics") else "forward"


def _input_roles(graph: Graph) -> list[str]:
    """'data' for plain array arguments, 'parameter' for leaves of containers."""
    roles: list[str] = []

    def walk(tree: dict, top: bool) -> None:
        if tree["kind"] == "array":
            roles.append("data" if top else "parameter")
        elif tree["kind"] in ("dict", "list", "tuple"):
            for child in tree["children"]:
                walk(child, False)

    tree = graph.in_tree
    if tree and tree.get("kind") == "tuple":
        for child in tree["children"]:
            walk(child, True)
    if len(roles) != len(graph.inputs):
        roles = ["data"] * len(graph.inputs)
    return roles


def _scopes(graph: Graph) -> dict[str, str]:
    """Each node's scope; nodes without one (constants, nodes made by passes) take their
    first consumer's or producer's, so they are drawn inside the layer they belong to."""
    scope = {n.name: n.scope for n in graph.nodes}
    consumers = graph.consumers()
    for _ in range(3):
        for n in graph.nodes:
            if scope[n.name]:
                continue
            near = [c.name for v in n.outputs for c in consumers.get(v, [])]
            near += [v.producer.name for v in n.inputs if v.producer is not None]
            found = next((scope[m] for m in near if scope.get(m)), "")
            scope[n.name] = found
    return scope


def _clusters(graph: Graph, by: str) -> dict[str, list[Node]]:
    groups: dict[str, list[Node]] = defaultdict(list)
    if by == "fusion":
        member = {}
        for g in graph.fusion_groups or []:
            for n in g.nodes:
                member[n.name] = f"{g.name} [{g.kind}]"
        for n in graph.nodes:
            groups[member.get(n.name, "")].append(n)
    elif by == "scope":
        scopes = _scopes(graph)
        for n in graph.nodes:
            groups[scopes[n.name]].append(n)
    else:
        groups[""] = list(graph.nodes)
    return groups


def _text(*lines: str) -> str:
    """A label or tooltip showing ``lines`` literally: backslashes escaped (DOT reads them
    as escapes), lines joined by DOT's centred line break."""
    parts = [graphviz.escape(part) for line in lines for part in str(line).split("\n")]
    return graphviz.nohtml("\\n".join(parts))


def _id(name: str) -> str:
    # the graphviz package reads "a:b" in an edge as node a, port b
    return name.replace(":", "_")


def to_digraph(
    graph: Graph,
    cluster_by: str = "auto",
    collapse_above: int | None = 400,
    title: str | None = None,
) -> graphviz.Digraph:
    """The picture of ``graph`` as a ``graphviz.Digraph``. ``cluster_by``: "fusion" (needs an
    optimized graph), "scope", "none" or "auto" (fusion groups when the graph has them, else
    scopes)."""
    if cluster_by == "auto":
        cluster_by = "fusion" if graph.fusion_groups else "scope"
    if cluster_by not in ("fusion", "scope", "none"):
        raise ConfigError(f"cluster_by must be fusion, scope, none or auto, got {cluster_by!r}")
    scopes = _scopes(graph)
    groups = _clusters(graph, cluster_by)
    collapse = collapse_above is not None and len(graph.nodes) > collapse_above
    dot = graphviz.Digraph(
        graph.name,
        graph_attr={
            "rankdir": "TB",
            "compound": "true",
            "newrank": "true",
            "label": _text(title or graph.name),
            "labelloc": "t",
            "fontname": "Helvetica",
        },
        node_attr={
            "fontname": "Helvetica",
            "fontsize": "10",
            "style": "filled",
            "fillcolor": "white",
        },
        edge_attr={"color": "gray40", "arrowsize": "0.6"},
    )
    node_id: dict[str, str] = {}  # node name -> drawn id (its cluster's, when collapsed)
    for v, role in zip(graph.inputs, _input_roles(graph), strict=True):
        dot.node(
            _id(f"in/{v.name}"),
            _text(v.name, _type_text(v)),
            shape="ellipse" if role == "data" else "box",
            fillcolor="lightblue" if role == "data" else "khaki",
            tooltip=role,
        )
    for k, (name, members) in enumerate(sorted(groups.items(), key=lambda kv: kv[0])):
        if name and collapse:
            cid = _id(f"cluster/{name}")
            ops = Counter(n.op for n in members if n.op != "constant")
            listing = ", ".join(f"{op} x{c}" if c > 1 else op for op, c in ops.most_common(6))
            phase = phase_of(scopes[members[0].name]) if cluster_by != "none" else "forward"
            dot.node(
                cid,
                _text(name, f"{len(members)} ops: {listing}"),
                shape="box",
                style="filled,rounded",
                fillcolor=PHASE_COLOURS[phase],
            )
            for n in members:
                node_id[n.name] = cid
            continue
        drawn = [n for n in members if n.op != "constant" or not collapse]
        if name:
            # subgraphs whose names start with "cluster" are drawn as boxes by dot
            with dot.subgraph(name=f"cluster_{k}") as box:
                box.attr(label=_text(name), style="rounded", color="gray50", fontsize="10")
                _add_nodes(box, drawn, scopes, node_id)
        else:
            _add_nodes(dot, drawn, scopes, node_id)
        for n in members:
            node_id.setdefault(n.name, _id(n.name))
    edges = set()
    for n in graph.nodes:
        for v in n.inputs:
            src = node_id.get(v.producer.name) if v.producer is not None else _id(f"in/{v.name}")
            dst = node_id[n.name]
            if src is None or src == dst:
                continue
            if collapse and v.producer is not None and v.producer.op == "constant":
                continue
            edges.add((src, dst))
    for i, v in enumerate(graph.outputs):
        sink = f"out/{i}"
        dot.node(
            sink,
            _text(f"output {i}", _type_text(v)),
            shape="ellipse",
            fillcolor="palegreen",
            peripheries="2",
        )
        src = node_id.get(v.producer.name) if v.producer is not None else _id(f"in/{v.name}")
        edges.add((src, sink))
    for a, b in sorted(edges):
        dot.edge(a, b)
    return dot


def to_dot(
    graph: Graph,
    cluster_by: str = "auto",
    collapse_above: int | None = 400,
    title: str | None = None,
) -> str:
    """The DOT text of ``graph`` (see ``to_digraph``)."""
    return to_digraph(graph, cluster_by, collapse_above, title).source


def _add_nodes(
    dot: graphviz.Digraph, nodes: list[Node], scopes: dict[str, str], node_id: dict[str, str]
) -> None:
    for n in nodes:
        node_id[n.name] = _id(n.name)
        if n.op == "constant":
            value = n.attrs["value"]
            text = f"{value.item():.4g}" if value.size == 1 else f"const {_type_text(n.outputs[0])}"
            dot.node(
                _id(n.name),
                _text(text),
                shape="box",
                fontsize="8",
                fontcolor="gray30",
                fillcolor="gray95",
                color="gray70",
            )
            continue
        scope = scopes[n.name]
        dot.node(
            _id(n.name),
            _text(n.op, ", ".join(_type_text(v) for v in n.outputs)),
            shape="box",
            fillcolor=PHASE_COLOURS[phase_of(scope)],
            tooltip=_text(f"%{n.name} [{scope or 'no scope'}] {n.loc or ''}"),
        )


def _all_float(arg: Any) -> bool:
    import numpy as np

    from . import pytree
    from .tracing import is_array_leaf

    leaves, statics, _ = pytree.flatten(arg, is_array_leaf)
    return (
        bool(leaves)
        and not statics
        and all(np.issubdtype(np.asarray(leaf).dtype, np.floating) for leaf in leaves)
    )


def graph_at_stage(fn: Callable[..., Any], examples: tuple, stage: str, level: int = 2) -> Graph:
    """The graph of ``fn`` at a compilation stage: traced; grad (the traced function with
    its gradient w.r.t. every float argument; ``fn`` must return a scalar); optimized
    (passes, no fusion clusters drawn); fused (optimized, clustered into kernels)."""
    from .autodiff import value_and_grad
    from .passes import copy_graph, optimize
    from .tracing import trace

    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}")
    if stage == "grad":
        wrt = tuple(i for i, a in enumerate(examples) if _all_float(a))
        if not wrt:
            raise ConfigError("stage='grad' needs at least one float array argument")
        traced = trace(fn, *examples)
        if len(traced.outputs) != 1 or traced.outputs[0].shape != ():
            raise ConfigError(
                "stage='grad' differentiates a function that returns one scalar; a training "
                "step (nc.train_step) already contains its backward pass: use stage='traced'"
            )
        graph = trace(value_and_grad(fn, argnums=wrt), *examples)
        graph.name = f"grad_{traced.name}"
        return graph
    graph = trace(fn, *examples)
    if stage == "traced":
        return graph
    optimized = optimize(graph, level=level)
    if stage == "optimized":  # the same graph, without fusion's groups to draw
        return copy_graph(optimized)
    return optimized


def viz(
    fn: Callable[..., Any],
    *examples: Any,
    path: str = "graph.svg",
    stage: str = "fused",
    collapse_above: int | None = 400,
    quiet: bool = False,
) -> Picture:
    """Draw ``fn`` traced on ``examples`` at ``stage``; returns the path written (a .dot
    file when graphviz is missing) as a ``str`` that Jupyter shows as the picture."""
    graph = graph_at_stage(fn, examples, stage)
    drawing = to_digraph(graph, "auto", collapse_above, title=f"{graph.name} ({stage})")
    written, message = render(drawing, path)
    if not quiet and written != path:
        print(f"nncompile: {message}", file=sys.stderr)
    return written


def draw_training_graph(model: Any, x: Any, y: Any, path: str, stage: str = "fused") -> str:
    """A picture of a compiled Keras-style model's training step (forward, loss, backward
    and optimizer, clustered into kernels). Returns a one-line message."""
    trainer = model.trainer
    graph = graph_at_stage(trainer._train_fn, trainer.step_arguments(x, y), stage)
    title = f"{model.name} training step ({stage}, {len(graph.nodes)} nodes)"
    written, message = render(to_digraph(graph, "auto", 400, title), path)
    if written == path:
        return f"graph picture: {path} ({len(graph.nodes)} nodes at stage {stage!r})"
    return f"graph picture: {message}"
