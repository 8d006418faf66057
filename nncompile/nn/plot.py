"""``model.plot(path)``: Keras' plot_model for a Sequential model (one box per layer with
its type, input and output shapes and parameter count), or, with ``stage``, the model's
compiled training step drawn by ``nc.viz``."""

from __future__ import annotations

from typing import Any

import graphviz
import numpy as np

from ..ir.errors import ConfigError
from ..picture import render
from ..visualize import draw_training_graph


def layer_digraph(model: Any) -> graphviz.Digraph:
    """One record box per layer, in order, from an input box."""
    dot = graphviz.Digraph(
        model.name,
        graph_attr={"rankdir": "TB", "fontname": "Helvetica"},
        node_attr={
            "shape": "record",
            "fontname": "Helvetica",
            "fontsize": "10",
            "style": "filled,rounded",
            "fillcolor": "aliceblue",
        },
    )
    shape = model.input_shape
    # a fixed id: layer names are user text and could collide with "input"
    dot.node("input/", f"input | {(None, *shape)}", fillcolor="lightblue")
    previous = "input/"
    for layer in model.layers:
        params = layer.param_count + layer.state_count
        act = f" ({layer.activation})" if isinstance(layer.activation, str) else ""
        # record labels: | separates fields, braces flip the layout direction
        label = (
            f"{{{layer.name}: {type(layer).__name__}{act} | "
            f"{{in {(None, *shape)} | out {(None, *layer.output_shape)}}} | {params:,} params}}"
        )
        node = layer.name.replace(":", "_")  # the graphviz package reads a:b as a port
        dot.node(node, graphviz.nohtml(label))
        dot.edge(previous, node)
        previous, shape = node, layer.output_shape
    return dot


def layer_dot(model: Any) -> str:
    """The DOT text of the layer diagram."""
    return layer_digraph(model).source


def plot_model(model: Any, path: str, stage: str | None = None) -> str:
    if not model.built:
        raise ConfigError("plot: build the model first (input_shape on the first layer)")
    if stage is None:
        written, message = render(layer_digraph(model), path)
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
