"""Donation: let outputs reuse the memory of inputs the caller gives up.

``nc.compile(step, donate_argnums=(0, 1))`` marks the leaves of arguments 0 and 1 as
donated. An output takes over a donated input when (a) they have the same type and the
same key path in the argument / result trees (``params["w"]`` in, ``params["w"]`` out as
element 0 of both), or failing that the next donated input of the same type, and (b) the
program allows it: no kernel after the one writing the output reads the input, and in
that kernel every read of the input inside a loop that writes the output is at the same
index as the write. Then a training step updates its parameters and optimizer state in
place and copies nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import pytree
from .ir.kernel import Expr, Gemm, If, Kernel, Load, Loop, Stmt, Store, postorder
from .ir.kernel_visit import buffers_written, own_expressions, walk
from .lowering.program import Program


def _loads(e: Expr, buffer: str) -> list[Load]:
    """The loads of ``buffer`` in ``e``, each load object once (expressions are DAGs)."""
    return [x for x in postorder([e]) if isinstance(x, Load) and x.buffer == buffer]


def _stmt_loads(s: Stmt, buffer: str) -> list[Load]:
    """Loads of ``buffer`` directly in ``s`` (not inside nested loops)."""
    return [ld for e in own_expressions(s) for ld in _loads(e, buffer)]


def _reads_block(body: list[Stmt], buffer: str) -> bool:
    return any(_stmt_loads(s, buffer) for s in walk(body))


def _safe_body(body: list[Stmt], src: str, dst: str, inside: bool = False) -> bool:
    """Inside any loop that writes ``dst``, ``src`` is read only at an index that the same
    block stores to ``dst``, and read there only before that store: each element is read
    before it is overwritten. (A read after the store is the same load object as one before
    it: the code generators compute a shared subexpression once per block, which an
    optimizer's update relies on, reading the old moment for the new weight after storing
    the new moment over it. A load of its own after the store, as when an optimizer stores
    the new moment before reading the weight, would read the moment.)"""
    store_index = [s.index for s in body if isinstance(s, Store) and s.buffer == dst]
    stored: list[Expr] = []  # the indices of dst this block has stored to so far
    evaluated: set[int] = set()  # the loads of src computed so far (by identity)
    for s in body:
        if isinstance(s, Gemm):
            if s.c == dst and src in (s.a, s.b):
                return False
            if inside and src in (s.a, s.b):
                return False
            continue
        if isinstance(s, (Loop, If)) and stored and _reads_block([s], src):
            return False  # (read in a nested block after this block overwrote dst)
        if isinstance(s, Loop):
            if not _safe_body(s.body, src, dst, inside or _writes_block(s.body, dst)):
                return False
            continue
        if isinstance(s, If):
            if not (
                _safe_body(s.then, src, dst, inside) and _safe_body(s.otherwise, src, dst, inside)
            ):
                return False
        loads = _stmt_loads(s, src)
        for load in loads:
            if inside and all(load.index != i for i in store_index):
                return False
            if id(load) not in evaluated and any(load.index == i for i in stored):
                return False  # read where this block already stored the output
        evaluated.update(id(load) for load in loads)
        if isinstance(s, Store) and s.buffer == dst:
            stored.append(s.index)
    return True


def _writes(kernel: Kernel, buffer: str) -> bool:
    return _writes_block(kernel.body, buffer)


def _writes_block(body: Iterable[Stmt], buffer: str) -> bool:
    return any(buffer in buffers_written(s) for s in walk(list(body)))


def donation_safe(program: Program, out_buf: str, in_buf: str) -> bool:
    writers = [k for k, kern in enumerate(program.kernels) if _writes(kern, out_buf)]
    if len(writers) != 1:
        return False
    w = writers[0]
    for k, kern in enumerate(program.kernels):
        uses = any(p.name == in_buf for p in kern.params)
        if k > w and uses:
            return False
    kern = program.kernels[w]
    # Loops that write the output: the input may only be read at the written index;
    # statements before the first such loop (e.g. the Gemm of a contraction) are fine.
    return _safe_body(kern.body, in_buf, out_buf)


def plan_donations(program: Program, donated_inputs: set[int]) -> dict[int, int]:
    """Map output number -> input number for every output that can reuse an input."""
    graph = program.graph
    if not donated_inputs:
        return {}
    in_keys = pytree.leaf_keys(graph.in_tree) if graph.in_tree else [()] * len(graph.inputs)
    out_keys = pytree.leaf_keys(graph.out_tree) if graph.out_tree else [()] * len(graph.outputs)
    copied = {i for i, _ in program.output_copies}
    free = [i for i in sorted(donated_inputs)]
    plan: dict[int, int] = {}

    def try_pair(o: int, i: int) -> bool:
        if graph.inputs[i].type != graph.outputs[o].type or o in copied:
            return False
        if not donation_safe(program, program.outputs[o], program.inputs[i]):
            return False
        plan[o] = i
        free.remove(i)
        return True

    by_key = {in_keys[i]: i for i in free}
    for o, key in enumerate(out_keys):  # same key path first
        i = by_key.get(key)
        if i is not None and i in free:
            try_pair(o, i)
    for o in range(len(graph.outputs)):  # then any donated input of the same type
        if o not in plan:
            for i in list(free):
                if try_pair(o, i):
                    break
    return plan
