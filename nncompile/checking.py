"""``nc.compile(f, check=True)`` / ``NNCOMPILE_CHECK=1``: run the reference interpreter
alongside compiled code and compare every buffer the compiled program materializes.

The program runs kernel by kernel (one entry point per kernel). After each kernel, every
buffer it wrote is compared with the reference value of the graph value it holds; the
first mismatch beyond tolerance raises ``CheckError`` naming the node that produced the
value, its fusion group (kernel) and the ops fused into it, and the largest error.
Kernels run in program order, so the first divergent kernel is the one to blame; values
fused inside a kernel are never materialized, so on a mismatch the check localizes: it
recompiles the graph with every value of the divergent kernel's group made an output (so
each is stored) and reports the first of them that diverges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .backends.numpy.interpreter import evaluate_graph
from .ir.errors import ExecutionError
from .ir.kernel import Kernel
from .ir.kernel_visit import buffers_written, walk

# Tolerances per dtype: compiled float code may reorder sums and use vector math.
TOLERANCES = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-9, 1e-12)}


class CheckError(ExecutionError):
    """Compiled code and the reference interpreter disagree (``check=True``)."""


def written_buffers(kernel: Kernel) -> list[str]:
    """The buffers the kernel writes, in first-write order (unknown kinds raise)."""
    found = dict.fromkeys(b for s in walk(kernel.body) for b in buffers_written(s))
    return list(found)


def mismatch(got: np.ndarray, want: np.ndarray) -> tuple[float, int] | None:
    """(max error, flat index of it) if ``got`` differs from ``want`` beyond tolerance."""
    if want.dtype.kind in "biu":
        bad = got != want
        if not bad.any():
            return None
        i = int(np.argmax(bad.reshape(-1)))
        return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()), i
    rtol, atol = TOLERANCES.get(want.dtype, (1e-4, 1e-5))
    g, w = got.astype(np.float64), want.astype(np.float64)
    same_nan = np.isnan(g) & np.isnan(w)
    same_inf = np.isinf(w) & (g == w)
    with np.errstate(invalid="ignore"):
        err = np.abs(g - w)
        bad = ~(same_nan | same_inf) & ~(err <= atol + rtol * np.abs(w))
    if not bad.any():
        return None
    worst = np.where(bad, np.nan_to_num(err, nan=np.inf), 0)
    i = int(np.argmax(worst.reshape(-1)))
    return float(worst.reshape(-1)[i]), i


class Checker:
    """Compares a lowered program's kernels against the reference, one call at a time."""

    def __init__(self, lowered, executable, localize: bool = True):
        self.lowered = lowered
        # localize: recompile a divergent fusion group unfused to name the exact node
        # (off in that recompiled checker itself, so localizing does not recurse)
        self.localize = localize
        self.executable = executable
        self.entries = executable.kernel_entries()
        graph = lowered.graph
        self.values = {v.name: v for v in graph.values()}
        self.order = {name: i for i, name in enumerate(self.values)}  # graph order
        self.groups = {}
        for group in graph.fusion_groups or []:
            for node in group.nodes:
                self.groups[node.name] = group

    def __call__(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        graph = self.lowered.graph
        # The reference first: donated inputs are overwritten by the compiled call.
        self.arrays = [np.array(a, copy=True) for a in arrays]
        env = evaluate_graph(graph, self.arrays)
        reference = {v.name: env[id(v)] for v in graph.values() if id(v) in env}
        program = self.lowered.program

        def on_kernel(i: int, read) -> None:
            kernel = program.kernels[i]
            stored = [
                (value_name, name)
                for name in written_buffers(kernel)
                if program.buffers.get(name) is not None
                for value_name in program.buffers[name].values
                if value_name in reference
            ]
            # earliest in the graph first: a kernel may store several values
            for value_name, name in sorted(stored, key=lambda s: self.order[s[0]]):
                self._compare(kernel, value_name, read(name), reference[value_name])

        return self.executable.call_checked(arrays, self.entries, on_kernel)

    def _localize(self, group) -> str | None:
        """Recompile with each value of ``group`` stored as an extra output and rerun the
        check on the same inputs; the message of the first divergent value, if any."""
        from .compiler import lower_graph_for
        from .ir.graph import Graph

        graph = Graph.from_json(self.lowered.graph.to_json())
        members = {n.name for n in group.nodes}
        extra = [v for n in graph.nodes if n.name in members for v in n.outputs]
        graph.set_outputs(list(graph.outputs) + extra)
        graph.out_tree = None
        lowered = lower_graph_for(
            graph, self.lowered.backend, threads=self.lowered.threads, kernel_entries=True
        )
        checker = Checker(lowered, lowered.compile(), localize=False)
        try:
            checker(self.arrays)
        except CheckError as e:
            return str(e)
        return None

    def _compare(self, kernel: Kernel, value_name: str, raw: np.ndarray, want: np.ndarray):
        value = self.values[value_name]
        got = raw.reshape(-1)[: want.size].reshape(want.shape)
        found = mismatch(got, want)
        if found is None:
            return
        error, flat = found
        node = value.producer
        group = self.groups.get(node.name) if node is not None else None
        if group is not None and len(group.nodes) > 1 and self.localize:
            inner = self._localize(group)
            if inner is not None:
                raise CheckError(f"{inner}; it was fused into kernel {kernel.name}") from None
        where = np.unravel_index(flat, want.shape) if want.shape else ()
        fused = f"fusion group {group.name} ({group.kind})" if group else "no fusion group"
        origin = (
            f"node %{node.name} ({node.op}"
            + (f", scope {node.scope}" if node.scope else "")
            + (f", from {node.loc}" if node.loc else "")
            + ")"
            if node is not None
            else f"input %{value_name}"
        )
        raise CheckError(
            f"compiled result diverges from the reference at {origin}: value %{value_name} "
            f"{value.type}, {fused}, kernel {kernel.name} [{kernel.comment}]; max abs error "
            f"{error:.6g} at index {tuple(int(i) for i in where)} (compiled "
            f"{got.reshape(-1)[flat]!r}, reference {want.reshape(-1)[flat]!r})"
        )
