"""Lower an optimized, fused graph to a Program: kernels in order plus the memory plan.

A Program is backend-neutral: the LLVM and CUDA back ends render its kernels and lay out
its buffers. Buffers: the graph's inputs and outputs (the caller's arrays), constants
(owned by the executable; one-element constants become literals instead), one arena for
everything else, and a one-element int64 ``status`` through which kernels report
data-dependent errors (an out-of-range gather index) without ever reading out of bounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from ..ir import dtypes as dt
from ..ir.graph import Graph, Value
from ..ir.kernel import BufferParam, Kernel, Store, walk
from ..ir.kernel_printer import format_kernel
from ..ir.symbolic import is_symbolic
from ..passes.fusion import FusedGraph
from .kernels import KernelBuilder, lower_group
from .memory import Buffer, assign_offsets
from .target import Target, as_target


@dataclass
class Program:
    graph: Graph
    kernels: list[Kernel]
    buffers: dict[str, Buffer]
    inputs: list[str]  # buffer per graph input, in order
    outputs: list[str]  # buffer per graph output, in order
    # Graph outputs that no kernel writes (an input or a constant returned as is, or a
    # value returned twice): (output number, source buffer) copied by the executable.
    output_copies: list[tuple[int, str]]
    constants: dict[str, np.ndarray]
    arena_bytes: int
    status_messages: dict[int, str] = field(default_factory=dict)
    donations: dict[int, int] = field(default_factory=dict)  # output -> donated input

    @property
    def dynamic(self) -> bool:
        """A dynamic-batch program: sizes depend on the batch size ``n`` of each call."""
        return any(is_symbolic(v.shape) for v in self.graph.inputs)

    @property
    def physical(self) -> dict[str, str]:
        """Donated outputs live in their input's memory: output buffer -> input buffer.
        Kernels address such a pair through one pointer, so it never aliases another."""
        return {self.outputs[o]: self.inputs[i] for o, i in self.donations.items()}

    def text(self) -> str:
        lines = [
            f"# program {self.graph.name}: {len(self.kernels)} kernels, "
            f"arena {self.arena_bytes} bytes"
        ]
        for b in self.buffers.values():
            where = f"@{b.offset} live [{b.first}, {b.last}]" if b.kind == "arena" else ""
            lines.append(f"#   {b.kind:<8} {b.name}: {b.dtype}[{b.size}] {where}")
        return "\n".join(lines + [""] + [format_kernel(k) + "\n" for k in self.kernels])


def physical_params(kernel: Kernel, physical: dict[str, str]) -> list[BufferParam]:
    """The kernel's parameters with donated outputs folded into their input's pointer
    (``physical``: output buffer -> input buffer, see ``Program.physical``)."""
    out, seen = [], set()
    for p in kernel.params:
        name = physical.get(p.name, p.name)
        if name not in seen:
            seen.add(name)
            out.append(BufferParam(name, p.dtype, p.size))
    return out


class _Planner:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.buffers: dict[str, Buffer] = {}
        self.of_value: dict[int, str] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.scalar_constants: dict[int, np.ndarray] = {}
        self.messages: dict[str, int] = {}
        self.kernel_index = 0

    def add(self, name: str, dtype: dt.DType, size: int, kind: str, **kw) -> Buffer:
        b = Buffer(name, dtype, size, kind, **kw)
        self.buffers[name] = b
        return b

    def value_buffer(self, v: Value) -> str:
        if id(v) not in self.of_value:
            raise AssertionError(f"value %{v.name} has no buffer")
        name = self.of_value[id(v)]
        b = self.buffers[name]
        if b.kind == "arena":  # extend its lifetime to the kernel being lowered
            b.first = min(b.first, self.kernel_index) if b.first >= 0 else self.kernel_index
            b.last = max(b.last, self.kernel_index)
        return name

    def buffer_info(self, name: str) -> tuple[dt.DType, int]:
        b = self.buffers[name]
        return b.dtype, b.size

    def scratch(self, hint: str, dtype: dt.DType, size: int) -> str:
        name = f"scratch_{hint}"
        while name in self.buffers:
            name += "_"
        self.add(name, dtype, size, "arena", first=self.kernel_index, last=self.kernel_index)
        return name

    def report(self, message: str) -> int:
        return self.messages.setdefault(message, len(self.messages) + 1)


def lower_graph(
    fused: FusedGraph | Graph, device: Target | str = "cpu", donated_inputs: Iterable[int] = ()
) -> Program:
    """The Program for fusion's result (``passes.fuse``, or the graph ``nc.optimize(level=2)``
    returns). ``device`` (a Target, or "cpu" | "gpu") picks the form of the sums over many
    rows (see Target). ``donated_inputs`` (input numbers the caller gives up) fill
    ``Program.donations``."""
    target = as_target(device)
    if isinstance(fused, Graph):
        fused = fused.fusion
    if fused is None:
        raise ValueError("lower_graph needs a fused graph (nc.optimize(graph, level=2))")
    graph, groups = fused.graph, fused.groups
    pl = _Planner(graph)
    inputs = []
    for i, v in enumerate(graph.inputs):
        name = f"in{i}_{v.name}"
        pl.add(name, v.dtype, v.type.size, "input", position=i)
        pl.of_value[id(v)] = name
        inputs.append(name)
    for n in graph.nodes:
        if n.op == "constant":
            v = n.outputs[0]
            if v.type.size == 1:
                pl.scalar_constants[id(v)] = n.attrs["value"]
            name = f"const{len(pl.constants)}_{v.name}"
            pl.add(name, v.dtype, v.type.size, "constant", position=len(pl.constants))
            pl.constants[name] = np.ascontiguousarray(n.attrs["value"]).reshape(-1)
            pl.of_value[id(v)] = name

    outputs: list[str] = []
    copies: list[tuple[int, str]] = []
    written = {id(v) for g in groups for v in g.outputs}
    for i, v in enumerate(graph.outputs):
        name = f"out{i}_{v.name}"
        pl.add(name, v.dtype, v.type.size, "output", position=i)
        outputs.append(name)
        if id(v) in written and id(v) not in pl.of_value:
            pl.of_value[id(v)] = name
        else:  # not computed by a kernel, or already stored in another output
            copies.append((i, pl.of_value.get(id(v), "")))
    for g in groups:
        values = list(g.outputs)
        if g.kind == "contraction" and g.anchor.outputs[0] not in values:
            values.append(g.anchor.outputs[0])  # kernel-local: the epilogue reads it
        for v in values:
            if id(v) not in pl.of_value:
                pl.of_value[id(v)] = f"t_{v.name}"
                pl.add(f"t_{v.name}", v.dtype, v.type.size, "arena")
    pl.add("status", dt.int64, 1, "status")
    copies = [(i, src or pl.of_value[id(graph.outputs[i])]) for i, src in copies]

    kernels = []
    for k, g in enumerate(groups):
        pl.kernel_index = k
        kb = KernelBuilder(
            g,
            pl.value_buffer,
            pl.buffer_info,
            pl.scalar_constants,
            pl.report,
            pl.scratch,
            target,
        )
        kernels.append(lower_group(kb))
    # A value copied out at the end must live to the end.
    for _, src in copies:
        b = pl.buffers[src]
        if b.kind == "arena":
            b.last = len(groups)
    for b in pl.buffers.values():
        if b.kind == "arena" and b.first < 0:
            b.first = b.last = 0
    arena = assign_offsets(list(pl.buffers.values()))
    by_id = {id(v): v for v in graph.values()}
    for vid, name in pl.of_value.items():
        pl.buffers[name].values.append(by_id[vid].name)
    program = Program(
        graph,
        kernels,
        pl.buffers,
        inputs,
        outputs,
        copies,
        pl.constants,
        arena,
        {code: msg for msg, code in pl.messages.items()},
    )
    donated = set(donated_inputs)
    if not donated:
        return program
    from ..donation import plan_donations  # (donation analyses a finished Program)

    return replace(program, donations=plan_donations(program, donated))


def reports_errors(kernel: Kernel) -> bool:
    """Whether the kernel can set the status word (a data-dependent check)."""
    return any(isinstance(s, Store) and s.buffer == "status" for s in walk(kernel.body))


def donated_write_may_precede_error(program: Program) -> bool:
    """Whether a kernel that can report an error runs at or after the first kernel that
    writes a donated input's memory. The entry stops at the first error, so when this is
    False a failing call has not touched any donated input; when True the executable
    keeps a copy of them to restore."""
    donated = {program.outputs[o] for o in program.donations}
    if not donated:
        return False
    first_write = next(
        (
            k
            for k, kern in enumerate(program.kernels)
            if any(p.name in donated for p in kern.params)
        ),
        None,
    )
    if first_write is None:
        return False
    return any(reports_errors(kern) for kern in program.kernels[first_write:])
