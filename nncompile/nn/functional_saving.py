"""The architecture of a functional ``nn.Model`` in model.json, Keras-like: each layer's
class and config with its ``inbound_nodes`` (per call of the layer, the tensors it took as
``[layer name, node index, tensor index]``), and the model's ``input_layers`` /
``output_layers`` as such references. Loading replays the calls in file order, so each
layer is built (and its weights checked against the weights file) as it is connected."""

from __future__ import annotations

from typing import Any

from ..ir.errors import NCError, SerializationError
from .layer import LAYER_TYPES

FORMAT = "nncompile.functional"


def graph_spec(model: Any) -> dict[str, Any]:
    inbound = model.inbound()
    layers = []
    for layer in model.layers:
        config = layer.get_config()
        config.pop("input_shape", None)  # the connections give every shape
        layers.append(
            {
                "class_name": type(layer).__name__,
                "config": config,
                "inbound_nodes": [
                    {"args": [list(ref) for ref in call], "packed": packed}
                    for call, packed in zip(inbound[layer.name], _packed(model, layer), strict=True)
                ],
            }
        )
    return {
        "layers": layers,
        "input_layers": [list(model.tensor_ref(t)) for t in model.inputs],
        "output_layers": [list(model.tensor_ref(t)) for t in model.outputs],
        "input_structure": _structure(model.single_input, model._input_keys),
        "output_structure": _structure(model.single_output, model._output_keys),
    }


def _packed(model: Any, layer: Any) -> list[bool]:
    return [node.packed for node in model.layer_calls(layer) if node.inputs]


def _structure(single: bool, keys: list[str] | None) -> Any:
    """How inputs/outputs were given: "single", "list", or the dict's keys."""
    return "single" if single else (list(keys) if keys else "list")


def _fail(message: str) -> SerializationError:
    return SerializationError(f"model.json: {message}")


def _ref(value: Any, where: str) -> tuple[str, int, int]:
    ok = (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value[1:])
    )
    if not ok:
        raise _fail(
            f"{where}: a tensor reference is [layer name, node index, tensor index], got {value!r}"
        )
    return value[0], value[1], value[2]


def model_from_spec(spec: dict[str, Any]) -> Any:
    """The functional model ``spec`` describes; run inside ``weights_from`` so each layer
    takes its weights from the file as it is built."""
    from .functional_model import Model
    from .symbolic import InputLayer

    entries = spec.get("layers")
    if not isinstance(entries, list) or not entries:
        raise _fail(f"'layers' must be a non-empty list, got {entries!r}")
    layers: dict[str, Any] = {}
    for entry in entries:
        cls = LAYER_TYPES.get(entry.get("class_name") if isinstance(entry, dict) else None)
        if cls is None or not isinstance(entry.get("config"), dict):
            raise _fail(f"unknown or malformed layer {entry!r}")
        if not isinstance(entry.get("inbound_nodes", []), list):
            raise _fail(f"layer {entry['class_name']}: inbound_nodes must be a list")
        try:
            layer = cls(**entry["config"])
        except (TypeError, ValueError, NCError) as e:
            raise _fail(f"layer {entry['class_name']}: {e}") from None
        if not isinstance(layer.name, str) or layer.name in layers:
            raise _fail(f"layer names must be given and distinct, got {layer.name!r}")
        layers[layer.name] = layer
    # outputs of each layer call, by (layer name, node index); inputs are node 0
    made: dict[tuple[str, int], Any] = {
        (name, 0): layer.output for name, layer in layers.items() if isinstance(layer, InputLayer)
    }

    def tensor(ref: Any, where: str) -> Any:
        name, node, index = _ref(ref, where)
        if (name, node) not in made or index != 0:
            raise _fail(f"{where}: {ref!r} names no tensor made before it")
        return made[(name, node)]

    pending = []
    for entry in entries:
        layer = layers[entry["config"]["name"]]
        for node_index, call in enumerate(entry.get("inbound_nodes", [])):
            where = f"layer {layer.name} call {node_index}"
            if not isinstance(call, dict) or not isinstance(call.get("args"), list):
                raise _fail(f"{where}: expected {{'args': [...], 'packed': bool}}")
            refs = [_ref(ref, where) for ref in call["args"]]
            pending.append((layer, node_index, refs, bool(call.get("packed")), where))
    try:
        # A shared layer's later call may need layers listed after it: replay in rounds,
        # each layer's calls in node order, until every call has its inputs.
        while pending:
            waiting = []
            for layer, node_index, refs, packed, where in pending:
                ready = all((n, k) in made for n, k, _ in refs) and (
                    node_index == 0 or (layer.name, node_index - 1) in made
                )
                if not ready:
                    waiting.append((layer, node_index, refs, packed, where))
                    continue
                args = [tensor(list(ref), where) for ref in refs]
                made[(layer.name, node_index)] = layer(args if packed else args[0])
            if len(waiting) == len(pending):
                layer, _, refs, _, where = waiting[0]
                raise _fail(f"{where}: its inputs {refs} are never made")
            pending = waiting
        inputs = [tensor(r, "input_layers") for r in _list(spec, "input_layers")]
        outputs = [tensor(r, "output_layers") for r in _list(spec, "output_layers")]
        return Model(
            _restructure(inputs, spec.get("input_structure"), "input_structure"),
            _restructure(outputs, spec.get("output_structure"), "output_structure"),
            name=str(spec.get("name", "model")),
        )
    except (NCError, TypeError, ValueError, IndexError) as e:
        if isinstance(e, SerializationError):
            raise
        raise _fail(f"the layers do not fit together: {e}") from None


def _list(spec: dict[str, Any], key: str) -> list[Any]:
    value = spec.get(key)
    if not isinstance(value, list) or not value:
        raise _fail(f"'{key}' must be a non-empty list, got {value!r}")
    return value


def _restructure(tensors: list[Any], structure: Any, key: str) -> Any:
    if structure == "single" and len(tensors) == 1:
        return tensors[0]
    if structure == "list":
        return tensors
    if isinstance(structure, list) and len(structure) == len(tensors):
        return dict(zip(map(str, structure), tensors, strict=True))
    raise _fail(f"'{key}' must be 'single', 'list' or the dict's keys, got {structure!r}")
