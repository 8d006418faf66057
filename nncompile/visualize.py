"""Graph pictures with graphviz: ``nc.viz(f, *examples, path="g.svg", stage="fused")``.

Nodes show op, shape and dtype. Graph inputs are drawn apart by role: data arguments
(ellipses), parameters and state, i.e. leaves of dict/list arguments (boxes), constants
(small grey). Fill colours tell the parts of a training step apart: forward (white),
loss (lavender), backward (pink), optimizer (green). At stage "fused" each fusion group
is a cluster named like its kernel; otherwise nodes cluster by scope (layer names such as
``dense_1``). Graphs larger than ``collapse_above`` nodes collapse each cluster into one
node listing its ops, so a 1,500-node LSTM step stays legible.

DOT text is generated here; rendering calls the ``dot`` program. Without it the .dot file
is written and the message says how to install graphviz.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from .fileio import atomic_write
from .ir.errors import ConfigError
from .ir.graph import Graph, Node, Value

STAGES = ("traced", "grad", "optimized", "fused")
FORMATS = ("svg", "png", "pdf", "dot")
PHASE_COLOURS = {
    "forward": "white",
    "loss": "lavender",
    "backward": "mistyrose",
    "optimizer": "honeydew",
}
DTYPE_SHORT = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "bool": "bool"}


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


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
        for g in getattr(graph, "fusion_groups", None) or []:
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


def to_dot(
    graph: Graph,
    cluster_by: str = "auto",
    collapse_above: int | None = 400,
    title: str | None = None,
) -> str:
    """The DOT text of ``graph``. ``cluster_by``: "fusion" (needs an optimized graph),
    "scope", "none" or "auto" (fusion groups when the graph has them, else scopes)."""
    if cluster_by == "auto":
        cluster_by = "fusion" if getattr(graph, "fusion_groups", None) else "scope"
    if cluster_by not in ("fusion", "scope", "none"):
        raise ConfigError(f"cluster_by must be fusion, scope, none or auto, got {cluster_by!r}")
    scopes = _scopes(graph)
    groups = _clusters(graph, cluster_by)
    collapse = collapse_above is not None and len(graph.nodes) > collapse_above
    lines = [
        f"digraph {_quote(graph.name)} {{",
        "  rankdir=TB; compound=true; newrank=true;",
        f"  label={_quote(title or graph.name)}; labelloc=t; fontname=Helvetica;",
        '  node [fontname=Helvetica, fontsize=10, style="filled", fillcolor=white];',
        "  edge [color=gray40, arrowsize=0.6];",
    ]
    node_id: dict[str, str] = {}  # node name -> drawn id (its cluster's, when collapsed)
    for v, role in zip(graph.inputs, _input_roles(graph), strict=True):
        shape = "ellipse" if role == "data" else "box"
        colour = "lightblue" if role == "data" else "khaki"
        label = f"{v.name}\n{_type_text(v)}"
        lines.append(
            f"  {_quote('in:' + v.name)} [label={_quote(label)}, shape={shape}, "
            f"fillcolor={colour}, tooltip={_quote(role)}];"
        )
    for k, (name, members) in enumerate(sorted(groups.items(), key=lambda kv: kv[0])):
        drawn = [n for n in members if n.op != "constant" or not collapse]
        if name and collapse:
            cid = f"cluster:{name}"
            ops = Counter(n.op for n in members if n.op != "constant")
            listing = ", ".join(f"{op} x{c}" if c > 1 else op for op, c in ops.most_common(6))
            phase = phase_of(scopes[members[0].name]) if cluster_by != "none" else "forward"
            label = f"{name}\n{len(members)} ops: {listing}"
            lines.append(
                f'  {_quote(cid)} [label={_quote(label)}, shape=box, style="filled,rounded", '
                f"fillcolor={PHASE_COLOURS[phase]}];"
            )
            for n in members:
                node_id[n.name] = cid
            continue
        indent = "  "
        if name:
            lines.append(f"  subgraph {_quote(f'cluster_{k}')} {{")
            lines.append(f"    label={_quote(name)}; style=rounded; color=gray50; fontsize=10;")
            indent = "    "
        for n in drawn:
            node_id[n.name] = n.name
            lines.append(indent + _node_line(n, scopes[n.name]))
        for n in members:
            node_id.setdefault(n.name, n.name)
        if name:
            lines.append("  }")
    edges = set()
    for n in graph.nodes:
        for v in n.inputs:
            src = node_id.get(v.producer.name) if v.producer is not None else f"in:{v.name}"
            dst = node_id[n.name]
            if src is None or src == dst:
                continue
            if collapse and v.producer is not None and v.producer.op == "constant":
                continue
            edges.add((src, dst))
    for i, v in enumerate(graph.outputs):
        sink = f"out:{i}"
        lines.append(
            f"  {_quote(sink)} [label={_quote(f'output {i}' + chr(10) + _type_text(v))}, "
            "shape=ellipse, fillcolor=palegreen, peripheries=2];"
        )
        src = node_id.get(v.producer.name) if v.producer is not None else f"in:{v.name}"
        edges.add((src, sink))
    lines += [f"  {_quote(a)} -> {_quote(b)};" for a, b in sorted(edges)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_line(n: Node, scope: str) -> str:
    if n.op == "constant":
        value = n.attrs["value"]
        text = f"{value.item():.4g}" if value.size == 1 else f"const {_type_text(n.outputs[0])}"
        return (
            f"{_quote(n.name)} [label={_quote(text)}, shape=box, fontsize=8, fontcolor=gray30, "
            "fillcolor=gray95, color=gray70];"
        )
    outs = ", ".join(_type_text(v) for v in n.outputs)
    label = f"{n.op}\n{outs}"
    tooltip = f"%{n.name} [{scope or 'no scope'}] {n.loc or ''}"
    colour = PHASE_COLOURS[phase_of(scope)]
    return (
        f"{_quote(n.name)} [label={_quote(label)}, shape=box, fillcolor={colour}, "
        f"tooltip={_quote(tooltip)}];"
    )


def render(dot_text: str, path: str) -> tuple[str, str]:
    """Write ``dot_text`` as ``path`` (format from the extension). Returns (written path,
    message). Without the ``dot`` program a .dot file is written instead. Files are
    written atomically: ``dot`` draws to memory, not to ``path``."""
    base, ext = os.path.splitext(path)
    fmt = ext.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ConfigError(f"graph pictures are {', '.join(FORMATS)}; got {path!r}")
    if fmt == "dot":
        atomic_write(path, dot_text)
        return path, f"wrote {path}"
    dot = shutil.which("dot")
    if dot is None:
        fallback = base + ".dot"
        atomic_write(fallback, dot_text)
        return fallback, (
            f"the graphviz 'dot' program is not installed, so {path} was not drawn; wrote "
            f"{fallback} instead. Install graphviz (Debian/Ubuntu: apt-get install graphviz; "
            f"macOS: brew install graphviz; conda: conda install graphviz) and run: "
            f"dot -T{fmt} {fallback} -o {path}"
        )
    done = subprocess.run(
        [dot, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=300
    )
    if done.returncode != 0:
        raise ConfigError(f"dot failed on {path}: {done.stderr.decode(errors='replace')[:500]}")
    atomic_write(path, done.stdout)
    return path, f"wrote {path}"


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
    from .passes import optimize
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
    if stage == "optimized":
        optimized.fusion_groups = []
    return optimized


def viz(
    fn: Callable[..., Any],
    *examples: Any,
    path: str = "graph.svg",
    stage: str = "fused",
    collapse_above: int | None = 400,
    quiet: bool = False,
) -> str:
    """Draw ``fn`` traced on ``examples`` at ``stage``; returns the path written (a .dot
    file when graphviz is missing)."""
    graph = graph_at_stage(fn, examples, stage)
    text = to_dot(graph, "auto", collapse_above, title=f"{graph.name} ({stage})")
    written, message = render(text, path)
    if not quiet and written != path:
        print(f"nncompile: {message}", file=sys.stderr)
    return written


def draw_training_graph(model: Any, x: Any, y: Any, path: str, stage: str = "fused") -> str:
    """A picture of a compiled Keras-style model's training step (forward, loss, backward
    and optimizer, clustered into kernels). Returns a one-line message."""
    trainer = model.trainer
    graph = graph_at_stage(trainer._train_fn, trainer.step_arguments(x, y), stage)
    title = f"{model.name} training step ({stage}, {len(graph.nodes)} nodes)"
    written, message = render(to_dot(graph, "auto", 400, title), path)
    if written == path:
        return f"graph picture: {path} ({len(graph.nodes)} nodes at stage {stage!r})"
    return f"graph picture: {message}"
