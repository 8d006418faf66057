"""Classification metrics computed on the host from a confusion matrix: accuracy and macro
precision / recall / F1 (scikit-learn's definitions: classes that occur in the labels or the
predictions are averaged, and a class never predicted has precision 0).

Predictions may be class ids (N,), scores (N, C) (argmax) or one-column probabilities
(N,) / (N, 1) for binary tasks (> 0.5); labels may be class ids or one-hot rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir.errors import ShapeError

__all__ = [
    "CLASS_METRICS",
    "accuracy",
    "class_ids",
    "confusion_matrix",
    "f1",
    "precision",
    "recall",
    "scores_from_confusion",
]

CLASS_METRICS = ("accuracy", "precision", "recall", "f1")


def class_ids(values: Any) -> np.ndarray:
    """Class ids from ids, scores (argmax over the last axis) or binary probabilities."""
    a = np.asarray(values)
    if a.ndim == 2 and a.shape[1] > 1:
        return a.argmax(axis=1).astype(np.int64)
    a = a.reshape(a.shape[0]) if a.ndim == 2 else a
    if a.ndim != 1:
        raise ShapeError(f"expected class ids (N,) or scores (N, C), got shape {np.shape(values)}")
    if np.issubdtype(a.dtype, np.floating):
        if np.all((a == 0) | (a == 1)) or np.any(a > 1):
            return a.astype(np.int64)
        return (a > 0.5).astype(np.int64)
    return a.astype(np.int64)


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """counts[i, j]: samples of true class i predicted as class j."""
    t, p = class_ids(y_true), class_ids(y_pred)
    if t.shape != p.shape:
        raise ShapeError(f"confusion_matrix: {t.shape[0]} labels but {p.shape[0]} predictions")
    if t.size and (t.min() < 0 or p.min() < 0):
        raise ShapeError("confusion_matrix: class ids must be >= 0")
    n = num_classes or (int(max(t.max(initial=-1), p.max(initial=-1))) + 1)
    if t.size and max(t.max(), p.max()) >= n:
        raise ShapeError(f"confusion_matrix: a class id is >= num_classes={n}")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def scores_from_confusion(cm: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1 from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    present = (predicted > 0) | (actual > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)

    def macro(v: np.ndarray) -> float:
        return float(v[present].mean()) if present.any() else 0.0

    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "precision": macro(precision),
        "recall": macro(recall),
        "f1": macro(f1),
    }


def accuracy(y_true: Any, y_pred: Any) -> float:
    return scores_from_confusion(confusion_matrix(y_true, y_pred))["accuracy"]


def precision(y_true: Any, y_pred: Any) -> float:
    """Macro-averaged precision."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred))["precision"]


def recall(y_true: Any, y_pred: Any) -> float:
    """Macro-averaged recall."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred))["recall"]


def f1(y_true: Any, y_pred: Any) -> float:
    """Macro-averaged F1: the mean of the per-class F1 scores."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred))["f1"]
