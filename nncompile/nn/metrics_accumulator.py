"""Per-epoch metric bookkeeping for fit/evaluate: the loss as a sample-weighted mean over
batches, a confusion matrix of predicted against true classes (accuracy, macro precision,
recall and F1 come from it), and graph-computed metrics (mse, mae) averaged by samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics import class_ids, scores_from_confusion


class EpochMetrics:
    def __init__(self, class_metrics: list[str], graph_metrics: list[str], num_classes: int):
        self.class_metrics = class_metrics
        self.graph_metrics = graph_metrics
        self.num_classes = max(num_classes, 2)
        self.samples = 0
        self.loss_sum = 0.0
        self.sums = dict.fromkeys(graph_metrics, 0.0)
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def add(self, n: int, loss: Any, outputs: dict[str, Any], labels: np.ndarray) -> None:
        """A batch of ``n`` samples with its mean loss and mean graph metrics."""
        self.samples += n
        self.loss_sum += float(loss) * n
        for name in self.graph_metrics:
            self.sums[name] += float(outputs[name]) * n
        if self.class_metrics:
            self._count(np.asarray(outputs["classes"]), labels)

    def add_rows(self, real: int, losses: Any, outputs: dict[str, Any], labels: np.ndarray) -> None:
        """A padded batch with per-sample losses and metrics: the first ``real`` rows
        count."""
        self.samples += real
        self.loss_sum += float(np.sum(np.asarray(losses)[:real], dtype=np.float64))
        for name in self.graph_metrics:
            self.sums[name] += float(np.sum(np.asarray(outputs[name])[:real], dtype=np.float64))
        if self.class_metrics:
            self._count(np.asarray(outputs["classes"])[:real], labels)

    def _count(self, predicted: np.ndarray, labels: np.ndarray) -> None:
        predicted = predicted.reshape(-1)
        truth = class_ids(labels).reshape(-1)
        c = self.num_classes
        valid = (truth >= 0) & (truth < c)
        self.confusion += np.bincount(truth[valid] * c + predicted[valid], minlength=c * c).reshape(
            c, c
        )

    def totals(self) -> np.ndarray:
        """Everything accumulated, as one float64 vector (sums and counts only, so that
        data-parallel ranks combine their epochs by adding these vectors)."""
        sums = [self.sums[name] for name in self.graph_metrics]
        return np.concatenate(
            [[self.samples, self.loss_sum], sums, self.confusion.reshape(-1)]
        ).astype(np.float64)

    def set_totals(self, totals: np.ndarray) -> None:
        """Take over ``totals()`` summed over ranks (counts stay exact below 2**53)."""
        k = len(self.graph_metrics)
        self.samples, self.loss_sum = int(totals[0]), float(totals[1])
        values = totals[2 : 2 + k]
        self.sums = {name: float(v) for name, v in zip(self.graph_metrics, values, strict=True)}
        self.confusion = np.rint(totals[2 + k :]).astype(np.int64).reshape(self.confusion.shape)

    def running(self) -> dict[str, float]:
        """What the progress bar shows during an epoch (cheap to compute every step)."""
        shown = {"loss": self.loss_sum / max(self.samples, 1)}
        if "accuracy" in self.class_metrics:
            shown["accuracy"] = float(np.trace(self.confusion) / max(self.confusion.sum(), 1))
        return shown

    def result(self) -> dict[str, float]:
        logs = {"loss": self.loss_sum / max(self.samples, 1)}
        if self.class_metrics:
            scores = scores_from_confusion(self.confusion)
            logs.update({m: scores[m] for m in self.class_metrics})
        for name in self.graph_metrics:
            logs[name] = self.sums[name] / max(self.samples, 1)
        return logs
