"""``nncompile dump``: every compilation stage of a workload written to a folder, the same
files ``NNCOMPILE_DUMP=<dir>`` writes: the IR after each pass and the fusion groups
(``NN_<pass>.txt``), the kernel IR (``kernels.txt``), LLVM IR before and after LLVM's
optimizer (``llvm.ll``, ``llvm_optimized.ll``), assembly (``assembly.s``), or CUDA C
(``kernels.cu``)."""

from __future__ import annotations

import os
import re

from .backend import get_backend
from .compiler import lower_graph_for, precision_for
from .dump_files import write_dump
from .dynamic_batch import batched_leaves
from .envvars import override
from .ir.errors import ConfigError
from .ir.precision import matmul_precision as matmul_precision_scope
from .ir.symbolic import batch_hint
from .tracing import trace
from .workloads import resolve

STAGE_FILES = {
    "ir": re.compile(r"^\d\d_.*\.txt$"),
    "kernels": re.compile(r"^kernels\.txt$"),
    "llvm": re.compile(r"^llvm(_optimized)?\.ll$"),
    "asm": re.compile(r"^assembly\.s$"),
    "cuda": re.compile(r"^kernels\.cu$"),
}


def dump_target(
    spec: str,
    output: str,
    stages: list[str] | None = None,
    backend: str = "llvm",
    batch: int = 64,
    size: int | None = None,
    dynamic_batch: bool = False,
    matmul_precision: str | None = None,
) -> list[str]:
    """Write the stages of ``spec`` (see ``workloads.resolve``) under ``output``; returns
    the files kept. ``stages``: any of ir, kernels, llvm, asm, cuda, all (default).
    ``dynamic_batch``: compiled for every batch size (the dumps show the symbol ``n``).
    ``matmul_precision``: as nc.compile's ("bf16": the kernels show bf16 products)."""
    precision = precision_for(backend, matmul_precision)
    if os.path.exists(output) and not os.path.isdir(output):
        raise ConfigError(
            f"dump: the output {output!r} is a file; give a folder (created if missing)"
        )
    keep = set(stages or ["all"])
    if "all" in keep:
        keep = set(STAGE_FILES)
    workload = resolve(spec, batch, size)
    batched: frozenset[int] = frozenset()
    if dynamic_batch:
        if not workload.batched:
            raise ConfigError(f"dump: workload {spec!r} has no batch axis (--dynamic-batch)")
        batched = batched_leaves(workload.fn, workload.args, workload.batched)
    graph = trace(workload.fn, *workload.args, batched_leaves=batched)
    with override("NNCOMPILE_DUMP", output), batch_hint(batch), matmul_precision_scope(precision):
        lowered = lower_graph_for(graph, backend)
        if keep - {"ir", "kernels"}:  # the backend's own artifacts (LLVM: builds it)
            for name, text in get_backend(backend).dump_files(lowered).items():
                write_dump(lowered.graph.name, name, text)
    written = []
    for root, _, files in os.walk(output):
        for name in sorted(files):
            path = os.path.join(root, name)
            if any(STAGE_FILES[s].match(name) for s in keep):
                written.append(path)
            elif any(p.match(name) for p in STAGE_FILES.values()):
                os.remove(path)
    return sorted(written)
