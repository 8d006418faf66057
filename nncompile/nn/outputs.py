"""Per-output training settings of models with several outputs, as Keras reads them: a
loss, loss weight or metric list given once (for every output), as a list (one per
output), or as a dict by output name; and the per-epoch bookkeeping that reports the total
loss as ``loss``, each output's as ``<output>_loss`` and its metrics as ``<output>_<metric>``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..ir.errors import ConfigError
from .metrics_accumulator import EpochMetrics


def per_output(spec: Any, names: list[str], what: str, default: Any = None) -> list[Any]:
    """``spec`` spread over the outputs ``names``: one value for all, a list (one per
    output), or a dict by output name (outputs it leaves out get ``default``)."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ConfigError(f"{what}: the model has no output {unknown}; its outputs: {names}")
        return [spec.get(n, default) for n in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != len(names):
            raise ConfigError(
                f"{what}: {len(spec)} entries for {len(names)} outputs {names} (give one per "
                "output, or a dict by output name)"
            )
        return list(spec)
    return [spec if spec is not None else default] * len(names)


def loss_weights_for(spec: Any, names: list[str]) -> list[float]:
    weights = per_output(spec, names, "loss_weights", 1.0)
    for name, w in zip(names, weights, strict=True):
        if not isinstance(w, numbers.Real) or isinstance(w, bool) or w < 0:
            raise ConfigError(f"loss_weights: {name!r} needs a number >= 0, got {w!r}")
    return [float(w) for w in weights]


def metrics_for(spec: Any, names: list[str]) -> list[list[str]]:
    """Metric names per output. A flat list of names applies to every output."""
    if spec is None:
        return [[] for _ in names]
    if isinstance(spec, (list, tuple)) and all(isinstance(m, str) for m in spec):
        return [list(spec) for _ in names]
    per = per_output(spec, names, "metrics")
    return [[m] if isinstance(m, str) else list(m or []) for m in per]


class OutputsMetrics:
    """An epoch's figures for several outputs: the weighted total loss and, per output,
    an ``EpochMetrics`` fed that output's unweighted loss (under the key "loss" of its
    batch outputs) and its metric values."""

    def __init__(self, names: list[str], per_output: list[EpochMetrics], has_loss: list[bool]):
        self.names, self.per_output, self.has_loss = names, per_output, has_loss
        self.samples = 0
        self.loss_sum = 0.0

    def add(self, n: int, loss: Any, outputs: list[dict], labels: list[Any]) -> None:
        self.samples += n
        self.loss_sum += float(loss) * n
        for em, out, y, has in zip(self.per_output, outputs, labels, self.has_loss, strict=True):
            em.add(n, out["loss"] if has else 0.0, out, y)

    def add_rows(self, real: int, losses: Any, outputs: list[dict], labels: list[Any]) -> None:
        self.samples += real
        self.loss_sum += float(np.sum(np.asarray(losses)[:real], dtype=np.float64))
        for em, out, y, has in zip(self.per_output, outputs, labels, self.has_loss, strict=True):
            em.add_rows(real, out["loss"] if has else np.zeros(real), out, y)

    def running(self) -> dict[str, float]:
        return {"loss": self.loss_sum / max(self.samples, 1)}

    def totals(self) -> Any:
        """See ``EpochMetrics.totals``: this epoch's sums and counts as one vector."""
        parts = [np.array([self.samples, self.loss_sum], np.float64)]
        return np.concatenate(parts + [em.totals() for em in self.per_output])

    def set_totals(self, totals: Any) -> None:
        self.samples, self.loss_sum = int(totals[0]), float(totals[1])
        start = 2
        for em in self.per_output:
            size = len(em.totals())
            em.set_totals(totals[start : start + size])
            start += size

    def result(self) -> dict[str, float]:
        logs = {"loss": self.loss_sum / max(self.samples, 1)}
        results = [em.result() for em in self.per_output]
        for name, r, has in zip(self.names, results, self.has_loss, strict=True):
            if has:
                logs[f"{name}_loss"] = r["loss"]
        for name, r in zip(self.names, results, strict=True):
            logs.update({f"{name}_{k}": v for k, v in r.items() if k != "loss"})
        return logs
