"""The pass pipeline: named passes in order, run to a fixed point, then fusion.

Levels: 0 = nothing; 1 = fold, simplify, CSE, DCE; 2 = also layout clean-up and fusion.
With ``NNCOMPILE_DUMP=<dir>`` the IR after every pass is written to
``<dir>/<graph>/NN_<pass>.txt`` with its statistics, and the fusion groups with their
"why not fused" reasons to ``<dir>/<graph>/NN_fusion.txt``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ..dump_files import dump_folder
from ..fileio import atomic_write
from ..ir.graph import Graph
from .channels_last import channels_last_pools
from .concat_tree import split_wide_concats
from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .flatten_weights import flatten_into_weights
from .fold import fold_constants
from .fusion import format_fusion, fuse
from .layout import sink_transposes
from .simplify import simplify

Pass = Callable[[Graph], Graph]

CLEANUP: list[tuple[str, Pass]] = [
    ("fold", fold_constants),
    ("simplify", simplify),
    ("cse", eliminate_common_subexpressions),
    ("dce", eliminate_dead_code),
]
LAYOUT: list[tuple[str, Pass]] = [
    ("channels_last", channels_last_pools),
    ("layout", sink_transposes),
    ("flatten_weights", flatten_into_weights),
]
MAX_ROUNDS = 50  # a safety net: each round must shrink or settle the graph


def passes_for(level: int) -> list[tuple[str, Pass]]:
    if level not in (0, 1, 2):
        raise ValueError(f"optimization level must be 0, 1 or 2, got {level}")
    return [] if level == 0 else CLEANUP + (LAYOUT if level == 2 else [])


def _fingerprint(g: Graph) -> str:
    return str(g)


class _Dumper:
    def __init__(self, graph: Graph):
        self.dir = dump_folder(graph.name)
        self.count = 0

    def write(self, name: str, text: str) -> None:
        # Callers test ``self.dir`` first: printing a large graph after every pass costs
        # more than the passes.
        if self.dir is None:
            return
        path = os.path.join(self.dir, f"{self.count:02d}_{name}.txt")
        self.count += 1
        atomic_write(path, text + "\n")


def optimize(graph: Graph, level: int = 2) -> Graph:
    """The optimized graph; at level 2 it is fusion's copy (``graph.fusion``, a FusedGraph,
    lists the kernels to be)."""
    graph.verify()
    dump = _Dumper(graph)
    if dump.dir:
        dump.write("input", f"# input: {len(graph.nodes)} nodes\n{graph}")
    passes = passes_for(level)
    before = _fingerprint(graph)
    for round_ in range(MAX_ROUNDS if passes else 0):
        for name, fn in passes:
            start, n_before = time.perf_counter(), len(graph.nodes)
            graph = fn(graph)
            ms = (time.perf_counter() - start) * 1e3
            if dump.dir:
                dump.write(
                    f"{name}",
                    f"# pass {name} (round {round_}): nodes {n_before} -> "
                    f"{len(graph.nodes)}, {ms:.2f} ms\n{graph}",
                )
        after = _fingerprint(graph)
        if after == before:
            break
        before = after
    if level == 2:
        start = time.perf_counter()
        fused = fuse(split_wide_concats(graph))
        graph = fused.graph
        ms = (time.perf_counter() - start) * 1e3
        if dump.dir:
            text = format_fusion(fused)
            dump.write("fusion", f"# pass fusion: {len(fused.groups)} groups, {ms:.2f} ms\n{text}")
    graph.verify()
    return graph
