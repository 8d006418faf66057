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
    graph = getattr(model, "is_graph_network", None)
    if graph is False:
        raise NotImplementedError(
            "plot of a subclassed model's layers: they are connected by Python code in call; "
            "plot(stage='traced') draws its training step"
        )
    if graph:
        return _graph_layers(dot, model)
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


def _shape_text(shape: Any) -> str:
    if isinstance(shape, list):
        return ", ".join(str((None, *s)) for s in shape)
    return str((None, *shape))


def _graph_layers(dot: graphviz.Digraph, model: Any) -> graphviz.Digraph:
    """A functional model's layer DAG: one box per layer, an edge per connection (a
    shared layer has one box and the edges of all its calls)."""
    for layer in model.layers:
        params = layer.param_count + layer.state_count
        act = f" ({layer.activation})" if isinstance(layer.activation, str) else ""
        shape_in = _shape_text(layer.input_shape) if layer.input_shape is not None else "?"
        label = (
            f"{{{layer.name}: {type(layer).__name__}{act} | "
            f"{{in {shape_in} | out {_shape_text(layer.output_shape)}}} | {params:,} params}}"
        )
        color = "lightblue" if type(layer).__name__ == "InputLayer" else "aliceblue"
        dot.node(_node_id(layer.name), graphviz.nohtml(label), fillcolor=color)
    for name, calls in model.inbound().items():
        for call in calls:
            for src, _, _ in call:
                dot.edge(_node_id(src), _node_id(name))
    return dot


def _node_id(name: str) -> str:
    return "layer/" + name.replace(":", "_")  # the graphviz package reads a:b as a port


def _zeros_batch(model: Any) -> tuple[Any, Any]:
    """One sample of zeros for every input, and targets for every output."""
    trainer = model.trainer
    xs = [
        np.zeros((1, *shape), dtype)
        for shape, dtype in zip(model.input_shapes, model.input_dtypes, strict=True)
    ]
    ys = []
    for i, shape in enumerate(model.output_shapes):
        if trainer.outputs.losses[i] == "sparse_categorical_crossentropy":
            ys.append(np.zeros(1, np.int64))
        else:
            ys.append(np.zeros((1, *shape), np.float32))
    return model.pack_inputs(xs), ys[0] if model.single_output else ys


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
    x, y = _zeros_batch(model)
    message = draw_training_graph(model, x, y, path, stage)
    return message
