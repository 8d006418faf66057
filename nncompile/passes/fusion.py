"""Operator fusion: partition a graph's nodes into groups, each of which will be one kernel.

Ops are classified as in TVM's FuseOps: *injective* (elementwise, broadcasting and index
remapping ops: every output element depends on a few input elements), *reduction*,
*contraction* (matmul, convolutions, pooling and their gradients: they get tiled
kernels) and *opaque* (scatter-adds). Walking the nodes in order, a node joins the group
of one of its producers when the group's iteration space fits:

- an injective node joins an injective group of the same element count, or the epilogue
  of a contraction (bias, activation, residual add, an optimizer update of the gradient
  it computes); further producer groups of that node with the same element count are
  merged in too (so an optimizer's moment updates and the parameter update become one
  kernel), and so are groups that only compute scalars (they become the kernel's
  preamble);
- a reduction joins the injective group that produces its input. A reduction group
  runs row by row: its *rows* are the reduced axes of the reduction's input, its
  *outer* space the kept ones. Later nodes join it if they run over the row space (same
  shape as the reduction's input: softmax's ``exp(x - max)``) or over the outer space
  (``log(sum)``, a bias's optimizer update), and later reductions over the same rows
  join too, so a whole softmax, log-softmax or layer norm is one kernel;
- contractions and opaque ops always start a group (no prologue fusion), except that a
  matmul takes in transposes that only it reads.

A join or merge that would create a cycle between groups is refused (reachability is
checked on the group DAG with networkx). Nothing is ever duplicated: groups partition
the nodes. Every refused producer -> consumer edge is recorded with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ..ir import ops as _register_ops  # noqa: F401  (every op registered before POINTWISE)
from ..ir.graph import Graph, Node, Value
from ..ir.registry import all_ops, get_op
from .rewriter import GraphRewriter

# Fusion's classes are read from the ops' one classification (OpDef.category): elementwise,
# movement and random numbers are *injective*; scatters are *opaque*.
_CLASS_OF_CATEGORY = {
    "elementwise": "injective",
    "movement": "injective",
    "source": "injective",
    "reduction": "reduction",
    "contraction": "contraction",
    "scatter": "opaque",
}
# Elementwise ops: each output element needs only the same element of each (broadcast)
# operand.
POINTWISE = frozenset(name for name, d in all_ops().items() if d.category == "elementwise")
# Comparisons recomputed where they are read when that saves their buffer (sink_comparisons).
SINKABLE = frozenset(("equal", "not_equal", "greater", "greater_equal", "less", "less_equal"))
# Concats with this many inputs stay out of reductions (see place_reduction).
WIDE_CONCAT = 4
# A group is one loop nest whose body holds every node: LLVM's loop vectorizer takes time
# quadratic in the body (a chain of 2000 fused ops: 0.5 s, 10000: 12 s), so a longer chain
# is cut into groups of this many nodes, each storing its result for the next.
MAX_GROUP_NODES = 256


def node_class(node: Node) -> str:
    """op_class, refined by shapes: a scatter_elements_add whose indices have extent 1 on
    the scatter axis (cross-entropy's gradient) writes each output element at most once
    from one update, so it is injective."""
    if node.op == "scatter_elements_add":
        idx = node.inputs[1]
        if idx.shape[node.attrs["axis"] % len(idx.shape)] == 1:
            return "injective"
    return op_class(node.op)


def op_class(op: str) -> str:
    """injective | reduction | contraction | opaque | constant."""
    if op == "constant":
        return "constant"
    return _CLASS_OF_CATEGORY[get_op(op).category]


@dataclass
class FusionGroup:
    """One future kernel. ``kind``: elementwise | reduction | contraction | opaque."""

    id: int
    kind: str
    nodes: list[Node] = field(default_factory=list)
    numel: int = 0  # element count of the (outer) iteration space members must match
    anchor: Node | None = None  # the first reduction or the contraction of the group
    row_shape: tuple[int, ...] | None = None  # reduction groups: the reduced input's shape
    row_axes: tuple[int, ...] = ()  # reduction groups: the reduced axes
    name: str = ""
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def __repr__(self) -> str:
        return f"<FusionGroup {self.name} {self.kind}: {', '.join(self.node_names)}>"


@dataclass(frozen=True)
class NotFused:
    producer: str
    consumer: str
    reason: str


def _numel(v: Value) -> int:
    return v.type.size


def _reduced_axes(node: Node) -> tuple[int, ...]:
    rank = len(node.inputs[0].shape)
    axes = node.attrs["axes"] if "axes" in node.attrs else (node.attrs["axis"],)
    return tuple(sorted(a % rank for a in axes))


class _Partitioner:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.group_of: dict[int, FusionGroup] = {}
        self.groups: dict[int, FusionGroup] = {}
        self.dag = nx.DiGraph()
        self.rejections: list[NotFused] = []
        self._next = 0

    # ---- bookkeeping -------------------------------------------------------------------

    def new_group(self, node: Node, kind: str) -> FusionGroup:
        g = FusionGroup(self._next, kind, numel=_numel(node.outputs[0]))
        if kind in ("reduction", "contraction"):
            g.anchor = node
        self._next += 1
        self.groups[g.id] = g
        self.dag.add_node(g.id)
        self.add(g, node)
        return g

    def add(self, g: FusionGroup, node: Node) -> None:
        g.nodes.append(node)
        self.group_of[id(node)] = g
        for p in self.producer_groups(node):
            if p is not g:
                self.dag.add_edge(p.id, g.id)

    def producer_groups(self, node: Node) -> list[FusionGroup]:
        out: list[FusionGroup] = []
        for v in node.inputs:
            g = self.group_of.get(id(v.producer)) if v.producer is not None else None
            if g is not None and g not in out:
                out.append(g)
        return out

    def reaches(self, a: FusionGroup, b: FusionGroup) -> bool:
        """Is there a path a -> ... -> b of length >= 1 in the group DAG?"""
        return any(s == b.id or nx.has_path(self.dag, s, b.id) for s in self.dag.successors(a.id))

    def reaches_indirectly(self, a: FusionGroup, b: FusionGroup) -> bool:
        """Is there a path a -> x -> ... -> b through some other group x?"""
        return any(s != b.id and nx.has_path(self.dag, s, b.id) for s in self.dag.successors(a.id))

    def merge(self, into: FusionGroup, other: FusionGroup) -> None:
        for n in other.nodes:
            self.group_of[id(n)] = into
        into.nodes.extend(other.nodes)
        into.nodes.sort(key=lambda n: self.position[id(n)])
        # Contract in place (nx.contracted_nodes copies the whole DAG: quadratic in the
        # number of merges of an unrolled loop).
        edges = [(p, into.id) for p in self.dag.predecessors(other.id)]
        edges += [(into.id, s) for s in self.dag.successors(other.id)]
        self.dag.remove_node(other.id)
        self.dag.add_edges_from((a, b) for a, b in edges if a != b)
        del self.groups[other.id]

    # ---- legality ----------------------------------------------------------------------

    def fits(self, g: FusionGroup, v: Value) -> bool:
        """Can a value of this type be computed in g's iteration space?"""
        if g.kind == "reduction":
            return v.shape == g.row_shape or _numel(v) == g.numel
        return _numel(v) == g.numel

    def join_refusal(self, g: FusionGroup, node: Node) -> str | None:
        """Why injective ``node`` cannot join producer group ``g`` (None if it can)."""
        if g.kind == "opaque":
            return f"producer group runs an opaque op ({g.nodes[0].op})"
        if len(g.nodes) >= MAX_GROUP_NODES:
            return f"the group has {MAX_GROUP_NODES} nodes already"
        if not self.fits(g, node.outputs[0]):
            space = f"rows {g.row_shape} / outer {g.numel}" if g.kind == "reduction" else g.numel
            return f"iteration spaces differ ({space} vs {node.outputs[0].shape})"
        if g.kind == "reduction" and not self.row_safe(g, node):
            return f"{node.op} would move data across rows of the group's reduction"
        for h in self.producer_groups(node):
            if h is not g and self.reaches(g, h):
                return f"would create a cycle through the group of {h.nodes[0].name}"
        return None

    def merge_refusal(self, g: FusionGroup, h: FusionGroup) -> str | None:
        if h.kind != "elementwise":
            return f"a {h.kind} group cannot merge into another group"
        if len(g.nodes) + len(h.nodes) > MAX_GROUP_NODES:
            return f"together they would have more than {MAX_GROUP_NODES} nodes"
        scalar = all(_numel(v) == 1 for n in h.nodes for v in n.outputs)
        if not scalar and not all(self.fits(g, v) for n in h.nodes for v in n.outputs):
            return f"iteration spaces differ ({g.numel} vs {h.numel} elements)"
        if self.reaches_indirectly(g, h) or self.reaches_indirectly(h, g):
            return "would create a cycle between the groups"
        if g.kind == "contraction" and any(
            v.producer is not None and v.producer in h.nodes for v in g.anchor.inputs
        ):
            return "it computes an input of the group's contraction, which must come first"
        return None

    def row_safe(self, g: FusionGroup, node: Node) -> bool:
        """After a reduction, a kernel runs row by row with the reduced values of the
        current row at hand, so a joining op must not move data between rows: pointwise
        ops (with broadcasting), reshapes, element gathers and scatters along the reduced
        axes, and broadcasts along them."""
        if node.op in POINTWISE:
            return self.broadcasts_within_rows(g, node)
        if node.op == "reshape":
            return True
        if node.op in ("gather_elements", "scatter_elements_add"):
            return node.attrs["axis"] % len(node.outputs[0].shape) in g.row_axes
        if node.op == "expand":  # broadcasting along the reduced axes stays in the row
            out, src = node.outputs[0].shape, node.inputs[0].shape
            lead = len(out) - len(src)
            return all(
                i in g.row_axes
                for i, d in enumerate(out)
                if d != 1 and (i < lead or src[i - lead] == 1)
            )
        return False

    def broadcasts_within_rows(self, g: FusionGroup, node: Node) -> bool:
        """The group holds a value computed per row (a reduction's result, and what is
        computed from it) as one number for the current outer index, whatever index an op
        asks for. So a pointwise op may broadcast such a value over the row only as
        keepdims would place it: ``sum(m, 1)`` of shape (4,) broadcasts along m's *last*
        axis in NumPy, across rows, and must be read from memory instead."""
        out = node.outputs[0].shape
        keepdims = tuple(1 if i in g.row_axes else d for i, d in enumerate(g.row_shape))
        for v in node.inputs:
            if v.shape == out or _numel(v) == 1 or self.group_of.get(id(v.producer)) is not g:
                continue
            padded = (1,) * (len(out) - len(v.shape)) + v.shape
            if out != g.row_shape or padded != keepdims:
                return False
        return True

    def reject(self, producer_group: FusionGroup, node: Node, reason: str) -> None:
        for v in node.inputs:
            if v.producer is not None and self.group_of.get(id(v.producer)) is producer_group:
                self.rejections.append(NotFused(v.producer.name, node.name, reason))
                return

    # ---- the walk -----------------------------------------------------------------------

    def run(self) -> list[FusionGroup]:
        self.position = {id(n): i for i, n in enumerate(self.graph.nodes)}
        self.consumers: dict[int, list[Node]] = {}
        for n in self.graph.nodes:
            for v in n.inputs:
                self.consumers.setdefault(id(v), []).append(n)
        for node in self.graph.nodes:
            cls = node_class(node)
            if cls == "constant":
                continue
            # Prefer joining a group built around a contraction or reduction: the
            # elementwise groups of the other inputs can then merge into it.
            producers = sorted(self.producer_groups(node), key=lambda g: g.anchor is None)
            if cls == "injective":
                self.place_injective(node, producers)
            elif cls == "reduction":
                self.place_reduction(node, producers)
            else:
                self.place_alone(node, cls, producers)
        return self.finish()

    def place_alone(self, node: Node, cls: str, producers: list[FusionGroup]) -> None:
        """Contractions and opaque ops start a group. A matmul also takes in transposes
        and reshapes that only it reads: GEMM packing reads a transposed operand for free,
        and a reshape is the same buffer (an image batch flattened for a dense layer)."""
        absorbed = []
        if node.op == "matmul":
            for v in node.inputs:
                g = self.view_group(v, node, ("transpose", "reshape"))
                if g is None:
                    continue
                absorbed.append(g)
                if v.producer.op == "transpose":  # a transpose of a reshape: both views
                    inner = self.view_group(v.producer.inputs[0], v.producer, ("reshape",))
                    if inner is not None:
                        absorbed.append(inner)
        for g in producers:
            if g in absorbed:
                continue
            reason = (
                "contractions start their own kernel (inputs are materialized)"
                if cls == "contraction"
                else f"{node.op} is opaque"
            )
            self.reject(g, node, reason)
        group = self.new_group(node, cls)
        for g in absorbed:
            self.merge(group, g)

    def view_group(self, v: Value, reader: Node, ops: tuple[str, ...]) -> FusionGroup | None:
        """The group of ``v``'s producer when it is a lone transpose or reshape (one of
        ``ops``) that only ``reader`` reads: a matmul reads it as a strided view."""
        g = self.group_of.get(id(v.producer)) if v.producer is not None else None
        if (
            g is not None
            and g.kind == "elementwise"
            and len(g.nodes) == 1
            and v.producer.op in ops
            and self.only_consumer(v, reader)
        ):
            return g
        return None

    def reshape_read_as_view(self, node: Node) -> bool:
        """A reshape of a value stored anyway (others read it too) whose result only a
        matmul reads, directly or through a transpose only matmuls read: the matmul reads
        the stored value through both views, so the reshape is never written (an LSTM's
        gate gradients, concatenated over time steps, were stored twice: 1.8 MB a step)."""
        x = node.inputs[0]
        stored = len(self.consumers.get(id(x), [])) > 1 or any(o is x for o in self.graph.outputs)
        users = self.consumers.get(id(node.outputs[0]), [])
        if not stored or len(users) != 1 or any(o is node.outputs[0] for o in self.graph.outputs):
            return False
        user = users[0]
        return user.op == "matmul" or (user.op == "transpose" and self.feeds_only_matmuls(user))

    def feeds_only_matmuls(self, node: Node) -> bool:
        v = node.outputs[0]
        users = self.consumers.get(id(v), [])
        return (
            bool(users)
            and all(u.op == "matmul" for u in users)
            and len(users) == 1
            and not any(o is v for o in self.graph.outputs)
        )

    def only_consumer(self, v: Value, node: Node) -> bool:

        if any(o is v for o in self.graph.outputs):
            return False
        return self.consumers[id(v)] == [node]

    def place_injective(self, node: Node, producers: list[FusionGroup]) -> None:
        if node.op == "transpose" and self.feeds_only_matmuls(node):
            # Left alone so the matmul can read it as a strided operand (no copy).
            for g in producers:
                self.reject(g, node, "a transpose that only matmuls read is read in place")
            self.new_group(node, "elementwise")
            return
        if node.op == "reshape" and self.reshape_read_as_view(node):
            for g in producers:
                self.reject(g, node, "a reshape of a stored value that a matmul reads in place")
            self.new_group(node, "elementwise")
            return
        target = None
        for g in producers:
            reason = self.join_refusal(g, node)
            if reason is None:
                target = g
                break
            self.reject(g, node, reason)
        if target is None:
            self.new_group(node, "elementwise")
            return
        self.add(target, node)
        for h in producers:
            if h is target or h.id not in self.groups:
                continue
            reason = self.merge_refusal(target, h)
            if reason is None:
                self.merge(target, h)
            else:
                self.reject(h, node, reason)

    def place_reduction(self, node: Node, producers: list[FusionGroup]) -> None:
        x = node.inputs[0]
        axes = _reduced_axes(node)
        g = self.group_of.get(id(x.producer)) if x.producer is not None else None
        reason = None
        if g is None:
            self.new_reduction(node, x, axes)
            return
        wide = next((n for n in g.nodes if n.op == "concat" and len(n.inputs) >= WIDE_CONCAT), None)
        if wide is not None:
            reason = (
                f"a concat of {len(wide.inputs)} inputs is stored piece by piece by its own "
                "kernel (in a reduction it would select among its inputs per element)"
            )
        elif len(g.nodes) >= MAX_GROUP_NODES:
            reason = f"the group has {MAX_GROUP_NODES} nodes already"
        elif g.kind == "elementwise" and g.numel == _numel(x):
            pass
        elif g.kind == "reduction" and g.row_shape == x.shape and g.row_axes == axes:
            pass  # another pass over the same rows
        elif g.kind == "reduction":
            reason = (
                f"reduces other rows ({g.row_shape} over {g.row_axes} vs {x.shape} over {axes})"
            )
        elif g.kind == "elementwise":
            reason = f"iteration spaces differ ({g.numel} vs {_numel(x)} elements)"
        else:
            reason = f"the input comes from a {g.kind} group"
        if reason is None and any(h is not g and self.reaches(g, h) for h in producers):
            reason = "would create a cycle"
        if reason is not None:
            self.reject(g, node, reason)
            self.new_reduction(node, x, axes)
            return
        self.add(g, node)
        if g.kind == "elementwise":
            g.kind, g.anchor, g.row_shape, g.row_axes = "reduction", node, x.shape, axes
            g.numel = _numel(node.outputs[0])

    def new_reduction(self, node: Node, x: Value, axes: tuple[int, ...]) -> None:
        g = self.new_group(node, "reduction")
        g.row_shape, g.row_axes = x.shape, axes

    def sink_comparisons(self) -> None:
        """A comparison computed in its input's group but read by one other group that
        reads that input anyway (ReLU's backward mask ``y > 0``, made in the forward
        kernel beside ``y`` and read by the backward kernel, which reads ``y`` too) moves
        into the reading group: it is recomputed there from what that group loads, and
        its boolean buffer is never written nor read (seed CNN: 1.4 MB each way)."""
        outputs = {id(v) for v in self.graph.outputs}
        for node in list(self.graph.nodes):
            g = self.group_of.get(id(node))
            if node.op not in SINKABLE or g is None or len(g.nodes) < 2:
                continue
            v = node.outputs[0]
            users = self.consumers.get(id(v), [])
            targets = {id(self.group_of[id(u)]): self.group_of[id(u)] for u in users}
            if id(v) in outputs or len(targets) != 1:
                continue
            (h,) = targets.values()
            if h is g or any(_numel(u.outputs[0]) != _numel(v) for u in users):
                continue
            reads = {id(x) for n in h.nodes for x in n.inputs}
            if not all(
                (x.producer is not None and x.producer.op == "constant")
                or (id(x) in reads and x.shape == v.shape)
                for x in node.inputs
            ):
                continue
            g.nodes.remove(node)
            at = min(h.nodes.index(u) for u in users)
            h.nodes.insert(at, node)
            self.group_of[id(node)] = h

    def finish(self) -> list[FusionGroup]:
        self.sink_comparisons()
        # A refused edge may still have ended inside one group (a later merge): drop it.
        by_name = {n.name: n for n in self.graph.nodes}
        self.rejections = [
            r
            for r in self.rejections
            if self.group_of.get(id(by_name[r.producer]))
            is not self.group_of.get(id(by_name[r.consumer]))
        ]
        # Kernels run in a topological order of the group DAG (a merged-in preamble can
        # make a group needed before its first node's position suggests).
        if not nx.is_directed_acyclic_graph(self.dag):
            raise AssertionError("fusion produced a cycle between groups")
        first = {gid: self.position[id(g.nodes[0])] for gid, g in self.groups.items()}
        order = nx.lexicographical_topological_sort(self.dag, key=first.__getitem__)
        groups = [self.groups[gid] for gid in order]
        used_outside: set[int] = {id(v) for v in self.graph.outputs}
        for node in self.graph.nodes:
            g = self.group_of.get(id(node))
            for v in node.inputs:
                if v.producer is not None and self.group_of.get(id(v.producer)) is not g:
                    used_outside.add(id(v))
        for i, g in enumerate(groups):
            g.id = i
            members = {id(n) for n in g.nodes}
            seen: set[int] = set()
            for n in g.nodes:
                for v in n.inputs:
                    if (v.producer is None or id(v.producer) not in members) and id(v) not in seen:
                        seen.add(id(v))
                        g.inputs.append(v)
                g.outputs += [v for v in n.outputs if id(v) in used_outside]
            ops = [n.op for n in g.nodes if n.op not in ("reshape", "expand")] or [g.nodes[0].op]
            g.name = f"k{i}_" + "_".join(dict.fromkeys(ops[:4]))
        return groups


@dataclass(frozen=True)
class FusedGraph:
    """What fusion produces: a copy of the graph and its partition into kernels."""

    graph: Graph
    groups: list[FusionGroup]
    rejections: list[NotFused]  # the producer -> consumer edges refused, with reasons


def copy_graph(graph: Graph) -> Graph:
    """A node-for-node copy of ``graph`` (names kept), not linked to any fusion result."""
    rw = GraphRewriter(graph, "fuse")
    for node in graph.nodes:
        rw.copy(node)
    return rw.finish()


def fuse(graph: Graph) -> FusedGraph:
    """A copy of ``graph`` partitioned into fusion groups; ``graph`` is not modified."""
    out = copy_graph(graph)
    partitioner = _Partitioner(out)
    groups = partitioner.run()
    fused = FusedGraph(out, groups, partitioner.rejections)
    # The copy is fusion's own: linking it keeps Graph.fusion_groups (what nc.optimize's
    # public result exposes) readable without a second return value.
    out._fusion = fused
    return fused


def format_fusion(fused: FusedGraph | Graph) -> str:
    """The groups (one line each, with their nodes) and the reasons edges were not fused."""
    if isinstance(fused, Graph):
        fused = fused.fusion
    if fused is None:
        return "(graph not fused)"
    graph, groups = fused.graph, fused.groups
    lines = [f"{len(groups)} fusion groups for {len(graph.nodes)} nodes:"]
    for g in groups:
        ins = ", ".join(f"%{v.name}" for v in g.inputs)
        outs = ", ".join(f"%{v.name}" for v in g.outputs)
        lines.append(f"  {g.name} [{g.kind}] ({ins}) -> ({outs})")
        lines.append(f"      nodes: {' '.join(g.node_names)}")
    lines.append("why not fused:")
    lines += [f"  %{r.producer} -> %{r.consumer}: {r.reason}" for r in fused.rejections]
    return "\n".join(lines)
