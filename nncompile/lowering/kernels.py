"""Lower one fusion group to one Kernel.

- elementwise groups: a loop nest over the group's iteration space; each output is the
  inlined expression of its producers at the loop index;
- reduction groups: reduction_kernels.py;
- contraction groups: the anchor op (Gemm template, or window loops for pooling and
  convolution data movement), then the epilogue as an elementwise loop over its output;
- opaque groups (scatter-adds): zero the output, then accumulate serially.
Scalars (values with one element that do not depend on the loop) are computed once
before the loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..ir import dtypes as dt
from ..ir.graph import Node, Value
from ..ir.kernel import (
    INDEX,
    Binary,
    BufferParam,
    Const,
    Expr,
    If,
    Kernel,
    Let,
    Loop,
    Stmt,
    Store,
    Var,
    const_index,
    delinearize,
    iadd,
    linearize,
)
from ..ir.kernel_depth import bound_depth
from ..ir.kernel_simplify import simplify_kernel
from ..ir.kernel_verify import verify_enabled, verify_kernel
from ..ir.symbolic import Dim, can_exceed, hint
from ..passes.concat_tree import MAX_CONCAT_INPUTS
from ..passes.fusion import POINTWISE, FusionGroup
from . import contraction
from .exprs import ElementBuilder
from .reduction_kernels import lower_reduction
from .target import CPU, Target

PARALLEL_MIN = 2048  # iterations below this stay on one thread
# A nest whose iterations each go through a row: elements in all below this stay on one
# thread (a team's start and barrier cost about what one thread does with ~16K elements)
PARALLEL_MIN_ELEMENTS = 16384


def _worth_a_team(iterations: int | Dim, work: int | Dim) -> bool:
    if hint(work) <= 1:
        return hint(iterations) >= PARALLEL_MIN
    return hint(iterations) >= 2 and hint(iterations) * hint(work) >= PARALLEL_MIN_ELEMENTS


class KernelBuilder:
    """State shared while lowering one group: buffer parameters, names, checks."""

    def __init__(
        self,
        group: FusionGroup,
        buffer_of: Callable[[Value], str],
        buffer_info: Callable[[str], tuple[dt.DType, int]],
        scalar_constants: dict[int, np.ndarray],
        report: Callable[[str], int],
        scratch: Callable[[str, dt.DType, int], str],
        target: Target = CPU,
    ):
        self.group = group
        self.target = target  # its capabilities pick the form of sums over many rows
        self._buffer_of = buffer_of
        self._buffer_info = buffer_info
        self._report = report  # message -> status code
        self._scratch = scratch  # (hint, dtype, size) -> arena buffer name
        self.params: dict[str, BufferParam] = {}
        self._names = 0
        self.fused_epilogue: tuple[Value, list[Value]] | None = None
        self.epilogue_done = False
        members = {id(n) for n in group.nodes}
        if group.kind == "contraction":
            members -= {id(group.anchor)} | {id(n) for n in self.absorbed()}
        self.elements = ElementBuilder(members, self.buffer, scalar_constants)

    # ---- names and buffers -------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def buffer(self, v: Value) -> str:
        return self.use(self._buffer_of(v))

    def use(self, name: str) -> str:
        if name not in self.params:
            dtype, size = self._buffer_info(name)
            self.params[name] = BufferParam(name, dtype, size)
        return name

    def scratch(self, hint: str, dtype: dt.DType, size: int) -> str:
        return self.use(self._scratch(f"{self.group.name}_{hint}", dtype, size))

    def absorbed(self) -> list[Node]:
        """Transposes and reshapes taken into a matmul group (the Gemm reads them in place,
        with strides): those whose result the matmul reads, and a reshape under such a
        transpose."""
        anchor = self.group.anchor
        if anchor is None or anchor.op != "matmul":
            return []
        members = {id(n) for n in self.group.nodes}
        views: list[Node] = []
        frontier = [v.producer for v in anchor.inputs]
        while frontier:
            n = frontier.pop()
            if n is None or id(n) not in members or n.op not in ("transpose", "reshape"):
                continue
            if n not in views:
                views.append(n)
                frontier.append(n.inputs[0].producer)
        return views

    # ---- loops -------------------------------------------------------------------------

    def nest(
        self,
        shape: tuple[int, ...],
        body: Callable[[list[Expr]], list[Stmt]],
        parallel: bool = True,
        prefix: str = "i",
        work: int | Dim = 1,
    ) -> list[Stmt]:
        """A loop nest over ``shape``: outermost loop parallel if big enough, innermost
        marked for vectorization; size-1 dims get no loop. ``work``: the elements each
        iteration goes through (a reduction's row): enough of them make a few iterations
        worth a team (a softmax over 512 rows of 1000, 32 channels' sums over a batch)."""
        names = [self.fresh(prefix) if d != 1 else None for d in shape]
        index: list[Expr] = [Var(n, INDEX) if n else const_index(0) for n in names]
        for n, d in zip(names, shape, strict=True):
            if n is not None and type(d) is not Dim:
                self.elements.ranges[n] = (0, d)  # lets element rules resolve statically
        stmts = body(index)
        looped = [(n, d) for n, d in zip(names, shape, strict=True) if n is not None]
        total = math.prod(shape)
        for depth, (n, d) in enumerate(reversed(looped)):
            outermost = depth == len(looped) - 1
            stmts = [
                Loop(
                    n,
                    d,
                    stmts,
                    parallel=parallel and outermost and _worth_a_team(total, work),
                    vectorize=depth == 0,
                    independent=parallel and outermost,
                )
            ]
        return stmts

    def checked(self, stmts: list[Stmt], start: int) -> list[Stmt]:
        """Append the out-of-range checks collected since ``start``."""
        out = list(stmts)
        for cond, message in self.elements.checks[start:]:
            code = self._report(message)
            out.append(If(cond, [Store(self.use("status"), const_index(0), Const(code, INDEX))]))
        return out

    def store_result(
        self, target: str, index: list[Expr], shape: tuple[int, ...], value: Expr
    ) -> list[Stmt]:
        """How an anchor lowering stores one final element of its result. With a
        pointwise epilogue (bias, activation, mask, optimizer update...) the epilogue is
        computed right here on the value, so the anchor's result never goes to memory
        and back."""
        if self.fused_epilogue is None:
            return [Store(target, linearize(index, shape), value)]
        anchor_out, outputs = self.fused_epilogue
        tmp = self.fresh("r")
        self.elements.bind(anchor_out, Var(tmp, anchor_out.dtype))
        start = len(self.elements.checks)
        stores = [self.store_at(v, index, shape) for v in outputs]
        del self.elements.bound[id(anchor_out)]
        self.epilogue_done = True
        return self.checked([Let(tmp, value), *stores], start)

    def store_at(self, v: Value, index: list[Expr], space: tuple[int, ...]) -> Store:
        """Store ``v`` at the point ``index`` of ``space`` (same element count)."""
        if v.shape == space:
            flat, at = linearize(index, space), index
        else:
            flat = linearize(index, space)
            at = delinearize(flat, v.shape)
        return Store(self.buffer(v), flat, self.elements.at(v, at))

    def hoist_scalars(self, nodes: list[Node], blocked: set[int]) -> list[Stmt]:
        """Let-bind one-element values that do not depend on anything in ``blocked``."""
        stmts: list[Stmt] = []
        dependent = set(blocked)
        for n in nodes:
            if id(n) in dependent:
                continue
            if any(v.producer is not None and id(v.producer) in dependent for v in n.inputs):
                dependent.add(id(n))
                continue
            if id(n) not in self.elements.members or len(n.outputs) != 1:
                continue
            v = n.outputs[0]
            if v.type.size != 1:
                dependent.add(id(n))
                continue
            name = self.fresh("s")
            stmts.append(Let(name, self.elements.at(v, [const_index(0)] * len(v.shape))))
            self.elements.bind(v, Var(name, v.dtype))
        return stmts

    def kernel(self, body: list[Stmt]) -> Kernel:
        self.use("status")  # every kernel can report (and bounds-checked builds do)
        ops = ", ".join(f"{n.name}={n.op}" for n in self.group.nodes)
        kernel = Kernel(self.group.name, list(self.params.values()), body, comment=ops)
        if not verify_enabled():
            return bound_depth(simplify_kernel(kernel))
        # NNCOMPILE_VERIFY=1: check the kernel as built and after each rewrite, so a
        # broken invariant is blamed on the stage that broke it.
        for stage in (lambda k: k, simplify_kernel, bound_depth):
            kernel = stage(kernel)
            verify_kernel(kernel)
        return kernel


# ---- elementwise ----------------------------------------------------------------------------


def store_outputs(kb: KernelBuilder, outputs: list[Value], blocked: set[int]) -> list[Stmt]:
    """Statements computing and storing ``outputs`` (all of one element count, or one
    element): hoisted scalars first, then one loop nest per *natural shape*. An output
    made by reshapes is iterated in the shape before the reshapes (row-major order is the
    same, so the store stays at the flat loop index), which keeps transposes affine
    instead of splitting a merged dimension with divisions."""
    numel = max((v.type.size for v in outputs), default=0)
    body = kb.hoist_scalars(kb.group.nodes, blocked) if can_exceed(numel, 1) else []
    by_shape: dict[tuple[int, ...], list[tuple[Value, Value]]] = {}
    for v in outputs:
        if v.type.size == 1 and can_exceed(numel, 1):
            body.append(Store(kb.buffer(v), const_index(0), kb.elements.at(v, [])))
            continue
        u = v
        while (
            u.producer is not None
            and u.producer.op == "reshape"
            and id(u.producer) in kb.elements.members
        ):
            u = u.producer.inputs[0]
        by_shape.setdefault(u.shape, []).append((v, u))
    for shape, pairs in by_shape.items():

        def inner(index: list[Expr], pairs=pairs, shape=shape) -> list[Stmt]:
            start = len(kb.elements.checks)
            flat = linearize(index, shape)
            stores = [Store(kb.buffer(v), flat, kb.elements.at(u, index)) for v, u in pairs]
            return kb.checked(stores, start)

        split = _concat_split(kb, shape)
        if split is None:
            body += kb.nest(shape, inner)
            continue
        axis, pieces = split
        # One nest per concat input, each reading one buffer. Many pieces are dealt out
        # to a few parallel tasks (each runs its pieces serially) rather than each piece
        # being a parallel loop of its own: one parallel region instead of dozens.
        tasks = min(len(pieces), CONCAT_TASKS) if len(pieces) > CONCAT_TASKS else 0
        nests: list[list[Stmt]] = []
        for begin, size in pieces:

            def shifted(index: list[Expr], begin=begin, inner=inner, axis=axis) -> list[Stmt]:
                index = list(index)
                index[axis] = iadd(index[axis], const_index(begin))
                return inner(index)

            piece_shape = shape[:axis] + (size,) + shape[axis + 1 :]
            nests.append(kb.nest(piece_shape, shifted, parallel=not tasks))
        if not tasks:
            body += [s for nest in nests for s in nest]
            continue
        task = kb.fresh("task")
        dealt = [
            If(Binary("eq", Var(task, INDEX), const_index(k % tasks), dt.bool_), nest)
            for k, nest in enumerate(nests)
        ]
        body.append(Loop(task, tasks, dealt, parallel=True, independent=True))
    return body


CONCAT_TASKS = 8  # a concat of more inputs deals them out to this many parallel tasks


def _concat_split(kb: KernelBuilder, shape: tuple[int, ...]) -> tuple[int, list] | None:
    """A concat in the group over exactly this iteration shape: iterate piece by piece
    along its axis, so each piece's loop reads one input (the element rule resolves the
    piece from the index range) instead of selecting among all inputs per element."""
    best = None
    for n in kb.group.nodes:
        if n.op != "concat" or n.outputs[0].shape != shape or len(n.inputs) < 2:
            continue
        wider = best is None or len(n.inputs) > len(best.inputs)
        if len(n.inputs) <= MAX_CONCAT_INPUTS and wider:  # (wider ones: passes/concat_tree.py)
            best = n
    if best is None:
        return None
    axis = best.attrs["axis"] % len(shape)
    pieces, begin = [], 0
    for x in best.inputs:
        if x.shape[axis]:
            pieces.append((begin, x.shape[axis]))
        begin += x.shape[axis]
    return axis, pieces


def lower_elementwise(kb: KernelBuilder) -> Kernel:
    return kb.kernel(store_outputs(kb, kb.group.outputs, set()))


def lower_contraction(kb: KernelBuilder) -> Kernel:
    g = kb.group
    anchor = g.anchor
    out = anchor.outputs[0]
    epilogue = [v for v in g.outputs if v is not out]
    if _only_reshaped(g, epilogue):
        # The anchor's result is only reshaped (a layer's output gradient unflattened into
        # images): the same elements at the same flat indices, so the anchor - a GEMM
        # writing C itself included - writes the reshaped buffer directly.
        return kb.kernel(contraction.lower_anchor(kb, anchor, kb.buffer(epilogue[0])))
    # The memory plan gives the anchor's result a buffer even when only the epilogue
    # reads it (then it is kernel-local scratch in the arena).
    target = kb.buffer(out)
    preamble: list[Stmt] = []
    scalars: list[Value] = []
    if epilogue and _pointwise_epilogue(g):
        preamble = kb.hoist_scalars([n for n in g.nodes if n is not anchor], {id(anchor)})
        # One-element outputs (an optimizer's step count) are stored once, not per element.
        scalars = [v for v in epilogue if v.type.size == 1 and can_exceed(out.type.size, 1)]
        stored = [v for v in epilogue if v not in scalars] + ([out] if out in g.outputs else [])
        kb.fused_epilogue = (out, stored)
        preamble += [Store(kb.buffer(v), const_index(0), kb.elements.at(v, [])) for v in scalars]
    body = preamble + contraction.lower_anchor(kb, anchor, target)

    if epilogue and not kb.epilogue_done:
        body += store_outputs(kb, epilogue, {id(anchor)})
    return kb.kernel(body)


def _only_reshaped(g, epilogue: list[Value]) -> bool:
    """The group's only output is a reshape of its anchor's result, and nothing else in
    the group reads that result."""
    out = g.anchor.outputs[0]
    if len(epilogue) != 1 or out in g.outputs:
        return False
    reshape = epilogue[0].producer
    readers = [n for n in g.nodes if any(i is out for i in n.inputs)]
    return reshape is not None and reshape.op == "reshape" and readers == [reshape]


def _pointwise_epilogue(g) -> bool:
    """Every epilogue node is elementwise over the anchor's own shape (or a hoistable
    scalar), or a reshape of such a value (the same element at the same flat index: a
    pooled image flattened for a dense layer), so each result element's epilogue needs
    only that element."""
    shape = g.anchor.outputs[0].shape
    size = g.anchor.outputs[0].type.size
    for n in g.nodes:
        if n is g.anchor:
            continue
        v = n.outputs[0]
        if v.type.size == 1 and all(i.type.size == 1 for i in n.inputs):
            continue
        if n.op == "reshape" and v.type.size == size and n.inputs[0].shape == shape:
            continue
        if n.op not in POINTWISE or v.shape != shape:
            return False
    return True


def lower_opaque(kb: KernelBuilder) -> Kernel:
    (node,) = kb.group.nodes
    return kb.kernel(contraction.lower_scatter(kb, node))


def lower_group(kb: KernelBuilder) -> Kernel:
    kind = kb.group.kind
    if kind == "elementwise":
        return lower_elementwise(kb)
    if kind == "reduction":
        return lower_reduction(kb)
    if kind == "contraction":
        return lower_contraction(kb)
    if kind == "opaque":
        return lower_opaque(kb)
    raise NotImplementedError(f"no lowering for fusion groups of kind {kind!r}")
