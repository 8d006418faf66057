"""What lowering needs to know about the machine a Program runs on.

The kernel IR is backend-neutral, but a few lowering choices depend on how much
parallelism the target has. Lowering asks a ``Target`` for those capabilities instead of
comparing a device name, so a new back end states what it can do in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """``row_sums``: how a sum over many rows (a bias gradient over NHWC data, a
    convolution's weight gradient) is parallelized. "chunks": a few threads (a CPU), so
    the rows split into 8-16 chunks of partial sums combined at the end; "blocks":
    thousands of threads (a GPU), so each output is its own reduction, which the back end
    runs as a thread block (``backends/cuda/reductions.py``)."""

    name: str
    row_sums: str = "chunks"

    def __post_init__(self) -> None:
        if self.row_sums not in ("chunks", "blocks"):
            raise ValueError(f"row_sums must be 'chunks' or 'blocks', not {self.row_sums!r}")


CPU = Target("cpu", row_sums="chunks")
GPU = Target("gpu", row_sums="blocks")
TARGETS = {t.name: t for t in (CPU, GPU)}


def as_target(target: Target | str) -> Target:
    """A Target, from itself or a device name ("cpu" | "gpu", as backends name them)."""
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise ValueError(f"unknown lowering target {target!r}; known: {sorted(TARGETS)}") from None
