"""``model.plot(path)``: Keras' plot_model for a Sequential model (one box per layer with
its type, input and output shapes and parameter count), or, with ``stage``, the model's
compiled training step drawn by ``nc.viz``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.errors import ConfigError
from ..visualize import _quote, draw_training_graph, render


def layer_dot(model: Any) -> str:
    lines = [
        f"digraph {_quote(model.name)} {{",
        "  rankdir=TB; fontname=Helvetica;",
        '  node [shape=record, fontname=Helvetica, fontsize=10, style="filled,rounded", '
        "fillcolor=aliceblue];",
    ]
    shape = model.input_shape
    lines.append(f'  input [label="input | {(None, *shape)}", fillcolor=lightblue];')
    previous = "input"
    for layer in model.layers:
        params = layer.param_count + layer.state_count
        act = f" ({layer.activation})" if isinstance(layer.activation, str) else ""
        label = (
            f"{{{layer.name}: {type(layer).__name__}{act} | "
            f"{{in {(None, *shape)} | out {(None, *layer.output_shape)}}} | {params:,} params}}"
        )
        lines.append(f"  {_quote(layer.name)} [label={_quote(label)}];")
        lines.append(f"  {_quote(previous)} -> {_quote(layer.name)};")
        previous, shape = layer.name, layer.output_shape
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_model(model: Any, path: str, stage: str | None = None) -> str:
    if not model.built:
        raise ConfigError("plot: build the model first (input_shape on the first layer)")
    if stage is None:
        written, message = render(layer_dot(model), path)
        return written
    if model.trainer is None or model.trainer.loss_fn is None:
        raise ConfigError("plot(stage=...) draws the training step: compile with a loss first")
    x = np.zeros((1, *model.input_shape), model.input_dtype)
    if model.trainer.loss == "sparse_categorical_crossentropy":
        y = np.zeros(1, np.int64)
    else:
        y = np.zeros((1, *model.output_shape), np.float32)
    message = draw_training_graph(model, x, y, path, stage)
    return message
