"""Keras' ``model.summary()`` table."""

from __future__ import annotations

from typing import Any

MIN_WIDTHS = (33, 26, 12)


def _shape(shape: Any) -> str:
    return str((None, *shape)) if shape is not None else "?"


def summary_table(model: Any) -> str:
    rows = []
    for layer in model.layers:
        count = f"{layer.param_count + layer.state_count:,}" if layer.built else "?"
        rows.append((f" {layer.name} ({type(layer).__name__})", _shape(layer.output_shape), count))
    # columns grow to fit long layer names and shapes, as Keras' do
    widths = [
        max(minimum, *(len(r[i]) + 2 for r in rows)) if rows else minimum
        for i, minimum in enumerate(MIN_WIDTHS)
    ]
    width = sum(widths)

    def line(cells: tuple[str, str, str]) -> str:
        return "".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [f'Model: "{model.name}"', "_" * width]
    lines += [line((" Layer (type)", "Output Shape", "Param #")), "=" * width]
    for i, row in enumerate(rows):
        lines.append(line(row))
        lines.append("" if i < len(rows) - 1 else "=" * width)
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
