"""Keras' ``model.summary()`` table."""

from __future__ import annotations

from typing import Any

MIN_WIDTHS = (33, 26, 12)


def _shape(shape: Any) -> str:
    return str((None, *shape)) if shape is not None else "?"


def _connections(model: Any) -> dict[str, list[str]] | None:
    """A functional model's "Connected to" cells: per layer, each input of each of its
    calls as Keras writes it, ``layer[node][tensor]``; None for other models."""
    if not getattr(model, "is_graph_network", False):
        return None
    return {
        name: [f"{src}[{node}][{tensor}]" for call in calls for src, node, tensor in call]
        for name, calls in model.inbound().items()
    }


def summary_table(model: Any) -> str:
    connections = _connections(model)
    rows = []
    extra: list[list[str]] = []  # a layer's further connections, one line each
    for layer in model.layers:
        count = f"{layer.param_count + layer.state_count:,}" if layer.built else "?"
        row = (f" {layer.name} ({type(layer).__name__})", _shape(layer.output_shape), count)
        if connections is not None:
            links = connections.get(layer.name) or ["-"]
            row, more = (*row, links[0]), links[1:]
            extra.append(more)
        rows.append(row)
    minimums = MIN_WIDTHS + ((20,) if connections is not None else ())
    # columns grow to fit long layer names and shapes, as Keras' do
    widths = [
        max(minimum, *(len(r[i]) + 2 for r in rows)) if rows else minimum
        for i, minimum in enumerate(minimums)
    ]
    width = sum(widths)

    def line(cells: tuple[str, ...]) -> str:
        return "".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    header = (" Layer (type)", "Output Shape", "Param #")
    if connections is not None:
        header += ("Connected to",)
    lines = [f'Model: "{model.name}"', "_" * width]
    lines += [line(header), "=" * width]
    for i, row in enumerate(rows):
        lines.append(line(row))
        for link in extra[i] if extra else ():
            lines.append(line(("", "", "", link)))
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
