"""What lowering needs to know about the machine a Program runs on.

The kernel IR is backend-neutral, but a few lowering choices depend on how much
parallelism the target has. Lowering asks a ``Target`` for those capabilities instead of
comparing a device name, so a new back end states what it can do in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backend import default_threads


@dataclass(frozen=True)
class Target:
    """``row_sums``: how a sum over many rows (a bias gradient over NHWC data, a
    convolution's weight gradient) is parallelized. "chunks": a few threads (a CPU), so
    the rows split into 8-16 chunks of partial sums combined at the end; "blocks":
    thousands of threads (a GPU), so each output is its own reduction, which the back end
    runs as a thread block (``backends/cuda/reductions.py``)."""

    name: str
    row_sums: str = "chunks"
    # How a convolution's im2col GEMMs cover a batch. "slots": images in parallel, each
    # thread unfolding one image at a time into its own small scratch and running a
    # one-thread GEMM on it while it is in cache (a CPU: a whole batch's im2col matrix
    # would go to memory and back). "batch": one im2col of the whole batch, then batched
    # GEMMs (a GPU, which computes the im2col elements inside its GEMM).
    conv_batch: str = "slots"
    # Output columns an NHWC direct convolution computes per step, sharing each weight
    # vector's load among them: on a CPU loads bound that loop (4); a GPU wants a thread per
    # output instead (1).
    conv_columns: int = 4

    def __post_init__(self) -> None:
        if self.row_sums not in ("chunks", "blocks"):
            raise ValueError(f"row_sums must be 'chunks' or 'blocks', not {self.row_sums!r}")
        if self.conv_batch not in ("slots", "batch"):
            raise ValueError(f"conv_batch must be 'slots' or 'batch', not {self.conv_batch!r}")


def cpu_slots() -> int:
    """How many images a CPU convolution works on at once: as many as the backend's default
    thread count (NNCOMPILE_THREADS, else the usable cores), a slot for each thread."""
    return default_threads()


CPU = Target("cpu", row_sums="chunks", conv_batch="slots")
GPU = Target("gpu", row_sums="blocks", conv_batch="batch", conv_columns=1)
TARGETS = {t.name: t for t in (CPU, GPU)}


def as_target(target: Target | str) -> Target:
    """A Target, from itself or a device name ("cpu" | "gpu", as backends name them)."""
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise ValueError(f"unknown lowering target {target!r}; known: {sorted(TARGETS)}") from None
