"""Callbacks: hooks ``fit`` calls at the start and end of training, epochs and batches.
``History`` and the progress bar are callbacks too; ``EarlyStopping`` and
``ModelCheckpoint`` follow Keras 3's semantics."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from ..distributed import world as distributed_world
from ..ir.errors import ConfigError

Logs = dict[str, float]

MAXIMIZED = ("acc", "accuracy", "precision", "recall", "f1", "auc")


class Callback:
    """Override any of the ``on_*`` methods; ``self.model`` is the model being trained."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: Logs | None = None) -> None:
        pass

    def on_train_end(self, logs: Logs | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        pass

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        pass


class CallbackList:
    def __init__(self, callbacks: list[Callback], model: Any):
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise ConfigError(f"callbacks must be nn.Callback instances, got {cb!r}")
            cb.set_model(model)
        self.callbacks = callbacks

    def __getattr__(self, hook: str):
        def call(*args: Any) -> None:
            for cb in self.callbacks:
                getattr(cb, hook)(*args)

        return call


class History(Callback):
    """``history[name]`` lists one value per epoch; ``epoch`` the epoch numbers and
    ``epoch_seconds`` the wall time of each epoch (training plus validation)."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.epoch_seconds: list[float] = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)

    def timing(self) -> str:
        """The first epoch's time (it includes compiling the steps) and the median of the
        others, e.g. for an example's report."""
        if not self.epoch_seconds:
            return "no epochs ran"
        first, rest = self.epoch_seconds[0], sorted(self.epoch_seconds[1:])
        text = f"{len(self.epoch_seconds)} epochs; the first (compiling) {first:.2f} s"
        return text + (f", then {rest[len(rest) // 2]:.3f} s per epoch (median)" if rest else "")


def _direction(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    base = monitor.removeprefix("val_")
    return "max" if base in MAXIMIZED else "min"


class _Monitor(Callback):
    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        self.monitor = monitor
        self.mode = _direction(monitor, mode)
        self.min_delta = abs(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, current: float, reference: float) -> bool:
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def current(self, logs: Logs | None) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            known = ", ".join(sorted(logs or {}))
            print(
                f"{type(self).__name__}: metric {self.monitor!r} is not in the logs "
                f"(available: {known}); skipping",
                file=sys.stderr,
            )
        return value


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs. With ``restore_best_weights`` the best epoch's weights are put back when
    training ends, whether or not it stopped early (Keras 3 behaviour)."""

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ):
        super().__init__(monitor, mode, min_delta)
        if patience < 0:
            raise ConfigError(f"patience must be >= 0, got {patience}")
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = None
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        current = self.current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self.improved(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self.improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch is not None and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring the weights of epoch {self.best_epoch + 1} (best {self.monitor})")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model after each epoch to ``filepath`` (which may contain ``{epoch}`` and
    log names, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}"``); with ``save_best_only`` only
    when ``monitor`` improved. In a data-parallel job only rank 0 writes."""

    def __init__(
        self,
        filepath: str,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        include_optimizer: bool = True,
        verbose: int = 0,
    ):
        super().__init__(monitor, mode)
        self.filepath = filepath
        self.save_best_only = save_best_only
        self.include_optimizer = include_optimizer
        self.verbose = verbose
        self.saved: list[str] = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = self.current(logs)
            if current is None or not self.improved(current, self.best):
                return
            self.best = current
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if not distributed_world.is_primary():
            return  # data-parallel: every rank holds the same weights; rank 0 writes them
        self.model.save(path, include_optimizer=self.include_optimizer)
        self.saved.append(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved model to {path}")
