"""The per-epoch progress display of ``fit``: a tqdm bar (verbose=1) with steps, running
loss and metrics and samples/s, or one line per epoch (verbose=2)."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class ProgressBar:
    def __init__(self, verbose: int, epochs: int, steps: int, stream: TextIO | None = None):
        self.verbose = verbose
        self.epochs = epochs
        self.steps = steps
        self.stream = stream or sys.stdout
        self.bar: Any = None

    def epoch_begin(self, epoch: int) -> None:
        if self.verbose == 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.steps,
                desc=f"Epoch {epoch + 1}/{self.epochs}",
                unit="step",
                file=self.stream,
                dynamic_ncols=True,
                leave=True,
            )

    @property
    def showing(self) -> bool:
        return self.bar is not None

    def batch_end(self, running: dict[str, float], samples_per_second: float) -> None:
        if self.bar is not None:
            shown = {k: f"{v:.4f}" for k, v in running.items()}
            shown["samples/s"] = f"{samples_per_second:,.0f}"
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def epoch_end(self, epoch: int, logs: dict[str, float], seconds: float, samples: int) -> None:
        rate = samples / seconds if seconds > 0 else float("nan")
        if self.bar is not None:
            shown = {k: f"{v:.4f}" for k, v in logs.items()}
            shown["samples/s"] = f"{rate:,.0f}"
            self.bar.set_postfix(shown, refresh=True)
            self.bar.close()
            self.bar = None
        elif self.verbose == 2:
            print(
                f"Epoch {epoch + 1}/{self.epochs} - {seconds:.1f}s - {format_logs(logs)} "
                f"- {rate:,.0f} samples/s",
                file=self.stream,
            )
