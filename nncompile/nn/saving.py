"""``model.save(path)`` / ``nn.load_model(path)``: a folder holding ``model.json`` (the
architecture, and the compile settings when compiled) and the arrays it names:
``weights-<id>.npz`` (keyed ``layer/name``) and, optionally, ``optimizer-<id>.npz``.
Loading never unpickles (``allow_pickle=False``) and checks every name and shape against
the architecture.

Saving over an existing save is atomic: the new arrays go to files with a fresh id (each
written atomically), then ``model.json``, which names them, replaces the old one in one
rename; only then are the previous arrays removed. A save that fails midway (a full disk,
a kill) leaves the previous save loadable. One writer per folder at a time.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import secrets
from typing import Any

import numpy as np

from .. import optim, pytree
from ..fileio import atomic_write, remove_quietly, sync_folder, temp_target
from ..ir.errors import NCError, SerializationError
from ..tracing import is_array_leaf
from .layer import LAYER_TYPES, Weight, weights_from
from .npz import NpzArrays

FORMAT = "nncompile.sequential"
VERSION = 2  # 2: model.json names its array files; 1: fixed weights.npz / optimizer.npz
VERSIONS = (1, 2)
# The array files a save writes (version 1 names them without an id).
ARRAY_FILE = re.compile(r"(weights|optimizer)(-[0-9a-f]{16})?\.npz")


def _optimizer_config(opt: optim.Optimizer) -> dict[str, Any]:
    params = inspect.signature(type(opt)).parameters
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(opt).items()}
    config = {k: v for k, v in config.items() if k in params}
    return {"class_name": type(opt).__name__, "config": config}


def _optimizer_from(spec: Any, where: str) -> optim.Optimizer:
    """The optimizer a ``compile.optimizer`` entry describes; every config value is checked
    against the kind of the constructor's default (a number, a flag, a pair)."""
    classes = {cls.__name__: cls for cls in optim.OPTIMIZERS.values()}
    name = spec.get("class_name") if isinstance(spec, dict) else None
    cls = classes.get(name) if isinstance(name, str) else None
    if cls is None:
        raise SerializationError(
            f"{where}.optimizer: unknown optimizer {name!r}; known: {sorted(classes)}"
        )
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise SerializationError(f"{where}.optimizer.config must be an object, got {config!r}")
    params = inspect.signature(cls).parameters
    kwargs = {}
    for key, value in config.items():
        if key not in params:
            raise SerializationError(f"{where}.optimizer.config: {name} takes no {key!r}")
        default = params[key].default
        kwargs[key] = _config_value(value, default, f"{where}.optimizer.config.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise SerializationError(f"{where}.optimizer: {name}: {e}") from None


def _config_value(value: Any, default: Any, where: str) -> Any:
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and len(value) == len(default) and all(map(number, value))
        value = tuple(value) if ok else value
    else:
        ok = number(value)
    if not ok:
        like = list(default) if isinstance(default, tuple) else default
        raise SerializationError(f"{where} must be like {like!r}, got {value!r}")
    return value


def _flat(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    leaves, _, treedef = pytree.flatten(tree, is_array_leaf)
    return dict(zip(pytree.leaf_paths(treedef, prefix), map(np.asarray, leaves), strict=True))


def save_model(model: Any, path: str, include_optimizer: bool = True) -> None:
    if not model.built:
        raise SerializationError("save: the model is not built yet (no weights to save)")
    if os.path.exists(path) and not os.path.isdir(path):
        raise SerializationError(f"save: {path!r} exists and is not a folder")
    graph = getattr(model, "is_graph_network", None)
    if graph is False:
        raise NotImplementedError(
            f"save of a subclassed model ({type(model).__name__}): its architecture is Python "
            "code (Keras needs the class registered); save its weights with "
            "model.save_weights(path) and load_weights them into a new instance"
        )
    spec: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": model.name}
    if graph:
        from .functional_saving import FORMAT as GRAPH_FORMAT
        from .functional_saving import graph_spec

        spec.update(format=GRAPH_FORMAT, **graph_spec(model))
    else:
        spec["input_shape"] = list(model.input_shape)
        spec["layers"] = [
            {"class_name": type(layer).__name__, "config": layer.get_config()}
            for layer in model.layers
        ]
    trainer = model.trainer
    if trainer is not None and _json_loss(trainer.loss):
        spec["compile"] = {
            "optimizer": _optimizer_config(trainer.optimizer),
            "loss": trainer.loss,
            "metrics": trainer.metrics
            if trainer.metrics_spec is None or trainer.metrics
            else trainer.metrics_spec,
            "backend": trainer.backend,
            "steps_run": trainer.steps_run,
        }
        if trainer.loss_weights is not None:
            spec["compile"]["loss_weights"] = trainer.loss_weights
    arrays = {
        "weights": {
            f"{layer.name}/{key}": array
            for layer in model.layers
            for key, array in (*layer.params.items(), *layer.state.items())
        }
    }
    if include_optimizer and trainer is not None and trainer.opt_state is not None:
        arrays["optimizer"] = _flat(trainer.opt_state, "opt")
    token = secrets.token_hex(8)  # a fresh id: the previous save's files stay untouched
    spec["files"] = {kind: f"{kind}-{token}.npz" for kind in arrays}
    os.makedirs(path, exist_ok=True)
    written = []
    try:
        for kind, named in arrays.items():
            target = os.path.join(path, spec["files"][kind])
            atomic_write(target, lambda f, named=named: np.savez(f, **named))
            written.append(target)
        # The commit: until this rename, model.json names the previous save's files.
        atomic_write(os.path.join(path, "model.json"), json.dumps(spec, indent=1))
    except BaseException:
        for target in written:
            remove_quietly(target)
        raise
    _remove_stale_files(path, set(spec["files"].values()))


def _json_loss(loss: Any) -> bool:
    """The loss is saved when given by name: one, a list or a dict of names (None: an
    output without loss)."""
    if loss is None or isinstance(loss, str):
        return True
    values = loss.values() if isinstance(loss, dict) else loss
    if isinstance(loss, dict) and not all(isinstance(k, str) for k in loss):
        return False
    return isinstance(loss, (list, tuple, dict)) and all(
        v is None or isinstance(v, str) for v in values
    )


def _json_metrics(metrics: Any) -> bool:
    """A list of names, or per output a list (or dict by name) of names or lists of them."""

    def names(v: Any) -> bool:
        return (
            v is None
            or isinstance(v, str)
            or (isinstance(v, list) and all(isinstance(m, str) for m in v))
        )

    if isinstance(metrics, dict):
        return all(isinstance(k, str) and names(v) for k, v in metrics.items())
    return isinstance(metrics, list) and all(names(v) for v in metrics)


def _remove_stale_files(path: str, keep: set[str]) -> None:
    """The previous save's array files, and temporary files of killed saves."""
    for name in os.listdir(path):
        target = temp_target(name)
        stale_temp = target is not None and (target == "model.json" or ARRAY_FILE.fullmatch(target))
        if stale_temp or (ARRAY_FILE.fullmatch(name) and name not in keep):
            remove_quietly(os.path.join(path, name))
    sync_folder(path)


def _array_files(spec: dict[str, Any], path: str) -> dict[str, str]:
    """The paths of the array files ``model.json`` names ("weights", and "optimizer" when
    saved)."""
    if spec["version"] == 1:
        files = {"weights": "weights.npz"}
        if os.path.exists(os.path.join(path, "optimizer.npz")):
            files["optimizer"] = "optimizer.npz"
    else:
        files = spec.get("files")
        if (
            not isinstance(files, dict)
            or "weights" not in files
            or set(files) - {"weights", "optimizer"}
        ):
            raise SerializationError(
                f"{path}/model.json: 'files' must name the weights file (and optionally the "
                f"optimizer file), got {files!r}"
            )
        for kind, name in files.items():
            if not isinstance(name, str) or not ARRAY_FILE.fullmatch(name):
                raise SerializationError(
                    f"{path}/model.json: files.{kind} must be a file name like "
                    f"'{kind}-<id>.npz' in the same folder, got {name!r}"
                )
    return {kind: os.path.join(path, name) for kind, name in files.items()}


def _read_spec(path: str) -> dict[str, Any]:
    try:
        with open(os.path.join(path, "model.json"), encoding="utf-8") as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise SerializationError(f"{path!r} holds no model.json (not a saved model)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SerializationError(f"{path}/model.json is not valid JSON: {e}") from None
    from .functional_saving import FORMAT as GRAPH_FORMAT

    if not isinstance(spec, dict) or spec.get("format") not in (FORMAT, GRAPH_FORMAT):
        raise SerializationError(f"{path}/model.json is not an nncompile model")
    if spec.get("version") not in VERSIONS:
        raise SerializationError(f"{path}: model format version {spec.get('version')} unknown")
    return spec


def _build(spec: dict[str, Any], weights: NpzArrays) -> Any:
    """The model ``spec`` describes, its declared weights taken from ``weights``: each
    shape is checked against the file before anything is allocated (a model.json edited
    to ``units: 10**12`` is an error, not a MemoryError)."""
    from .functional_saving import FORMAT as GRAPH_FORMAT
    from .functional_saving import model_from_spec
    from .model import Sequential

    def from_file(layer: Any, key: str, declared: Weight) -> np.ndarray:
        return _checked_array(weights, f"{layer.name}/{key}", declared.shape, declared.dtype)

    if spec["format"] == GRAPH_FORMAT:
        with weights_from(from_file):
            return model_from_spec(spec)
    layers = []
    entries = spec.get("layers")
    if not isinstance(entries, list) or not entries:
        raise SerializationError(f"model.json: 'layers' must be a non-empty list, got {entries!r}")
    for entry in entries:
        cls = LAYER_TYPES.get(entry.get("class_name") if isinstance(entry, dict) else None)
        if cls is None or not isinstance(entry.get("config"), dict):
            raise SerializationError(f"model.json: unknown or malformed layer {entry!r}")
        try:
            layers.append(cls(**entry["config"]))
        except (TypeError, ValueError, NCError) as e:
            raise SerializationError(f"model.json: layer {entry['class_name']}: {e}") from None
    shape = spec.get("input_shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise SerializationError(
            f"model.json: input_shape must be a list of positive integers, got {shape!r}"
        )

    try:
        with weights_from(from_file):
            model = Sequential(layers, name=str(spec.get("name", "sequential")))
            if not model.built:
                model.build(tuple(shape))
    except (NCError, TypeError, ValueError) as e:
        if isinstance(e, SerializationError):
            raise
        raise SerializationError(f"model.json: the layers do not fit together: {e}") from None
    return model


def _checked_array(arrays: NpzArrays, name: str, shape: tuple, dtype: Any) -> np.ndarray:
    """``name`` from ``arrays`` once its header says it is ``dtype[shape]``."""
    if name not in arrays.headers:
        raise SerializationError(
            f"{arrays.path} does not match model.json: missing {name!r} "
            f"({np.dtype(dtype)}{list(shape)})"
        )
    stored_shape, stored_dtype = arrays.headers[name]
    if stored_shape != tuple(shape) or stored_dtype != np.dtype(dtype):
        raise SerializationError(
            f"{arrays.path}: {name} is {stored_dtype}{list(stored_shape)}, the model "
            f"needs {np.dtype(dtype)}{list(shape)}"
        )
    return np.array(arrays.read(name))


def _restore_weights(model: Any, weights: NpzArrays) -> None:
    """Weights of layers that make their own arrays (``create``), and a check that the
    file holds nothing the model lacks."""
    expected = set()
    for layer in model.layers:
        for group in (layer.params, layer.state):
            for key, array in group.items():
                name = f"{layer.name}/{key}"
                expected.add(name)
                if layer.weights(layer.input_shape) is None:  # not loaded while building
                    group[key] = _checked_array(weights, name, array.shape, array.dtype)
    extra = set(weights.headers) - expected
    if extra:
        raise SerializationError(
            f"{weights.path} does not match model.json: unexpected {sorted(extra)}"
        )


def _restore_optimizer(model: Any, opt_file: str | None) -> None:
    if opt_file is None:
        return
    trainer = model.trainer
    template = trainer.optimizer.init(model.params(trainable=True))
    leaves, _, treedef = pytree.flatten(template, is_array_leaf)
    names = pytree.leaf_paths(treedef, "opt")
    with NpzArrays(opt_file) as stored:
        if set(names) != set(stored.headers):
            raise SerializationError(f"{opt_file} does not match the model's optimizer state")
        arrays = []
        for name, leaf in zip(names, leaves, strict=True):
            if stored.headers[name][0] != np.shape(leaf):
                raise SerializationError(f"{opt_file}: {name} has the wrong shape")
            arrays.append(np.array(stored.read(name), dtype=np.asarray(leaf).dtype))
    trainer.opt_state = pytree.unflatten(treedef, arrays)


def _compile_from(model: Any, settings: Any, path: str) -> None:
    """``model.compile`` with the settings of model.json's ``compile`` section, each field
    checked (an edited file gives a SerializationError naming the field)."""
    where = f"{path}/model.json: compile"
    if not isinstance(settings, dict):
        raise SerializationError(f"{where} must be an object, got {settings!r}")
    fields = {"optimizer", "loss", "metrics", "backend", "steps_run", "loss_weights"}
    unknown = set(settings) - fields
    if unknown:
        raise SerializationError(f"{where}: unknown fields {sorted(unknown)}")
    optimizer = _optimizer_from(settings.get("optimizer"), where)
    loss, metrics = settings.get("loss"), settings.get("metrics", [])
    backend, steps = settings.get("backend", "llvm"), settings.get("steps_run", 0)
    if not _json_loss(loss):
        raise SerializationError(
            f"{where}.loss must be a loss name (a list or dict of them per output) or null, "
            f"got {loss!r}"
        )
    if not _json_metrics(metrics):
        raise SerializationError(f"{where}.metrics must be a list of names, got {metrics!r}")
    weights = settings.get("loss_weights")
    if weights is not None and not isinstance(weights, (list, dict)):
        raise SerializationError(f"{where}.loss_weights must be a list or dict, got {weights!r}")
    if not isinstance(backend, str):
        raise SerializationError(f"{where}.backend must be a backend name, got {backend!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise SerializationError(f"{where}.steps_run must be an integer >= 0, got {steps!r}")
    try:
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            backend=backend,
            loss_weights=weights,
        )
    except (NCError, TypeError, ValueError) as e:
        raise SerializationError(f"{where}: {e}") from None
    model.trainer.steps_run = steps


def load_model(path: str, compile: bool = True) -> Any:
    """A model saved with ``model.save(path)``: the same architecture and weights (and,
    with ``compile``, the same optimizer, optimizer state, loss and metrics)."""
    spec = _read_spec(path)
    files = _array_files(spec, path)
    with NpzArrays(files["weights"]) as weights:
        model = _build(spec, weights)
        _restore_weights(model, weights)
    settings = spec.get("compile")
    if compile and settings is not None:
        _compile_from(model, settings, path)
        _restore_optimizer(model, files.get("optimizer"))
    return model
