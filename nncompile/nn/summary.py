"""Keras' ``model.summary()`` table."""

from __future__ import annotations

from typing import Any

WIDTHS = (33, 26, 12)


def _shape(shape: Any) -> str:
    return str((None, *shape)) if shape is not None else "?"


def _row(cells: tuple[str, str, str]) -> str:
    return "".join(c.ljust(w) for c, w in zip(cells, WIDTHS, strict=True)).rstrip()


def summary_table(model: Any) -> str:
    width = sum(WIDTHS)
    lines = [f'Model: "{model.name}"', "_" * width]
    lines += [_row((" Layer (type)", "Output Shape", "Param #")), "=" * width]
    for i, layer in enumerate(model.layers):
        name = f" {layer.name} ({type(layer).__name__})"
        count = layer.param_count + layer.state_count if layer.built else "?"
        lines.append(_row((name, _shape(layer.output_shape), f"{count:,}" if layer.built else "?")))
        lines.append("" if i < len(model.layers) - 1 else "=" * width)
    trainable = sum(layer.param_count for layer in model.layers if layer.trainable)
    total = model.count_params()
    if not model.built:
        lines.append("(not built yet: give the first layer input_shape, or call fit/build)")
    lines += [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        "_" * width,
    ]
    return "\n".join(lines)
