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
import os
import re
import secrets
import zipfile
from typing import Any

import numpy as np

from .. import optim, pytree
from ..fileio import atomic_write, remove_quietly, sync_folder, temp_target
from ..ir.errors import NCError, SerializationError
from ..tracing import is_array_leaf
from .layer import LAYER_TYPES

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


def _optimizer_from(spec: dict[str, Any]) -> optim.Optimizer:
    classes = {cls.__name__: cls for cls in optim.OPTIMIZERS.values()}
    cls = classes.get(spec.get("class_name"))
    if cls is None:
        raise SerializationError(f"unknown optimizer {spec.get('class_name')!r} in model.json")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["config"].items()}
    return cls(**config)


def _flat(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    leaves, _, treedef = pytree.flatten(tree, is_array_leaf)
    return dict(zip(pytree.leaf_paths(treedef, prefix), map(np.asarray, leaves), strict=True))


def save_model(model: Any, path: str, include_optimizer: bool = True) -> None:
    if not model.built:
        raise SerializationError("save: the model is not built yet (no weights to save)")
    if os.path.exists(path) and not os.path.isdir(path):
        raise SerializationError(f"save: {path!r} exists and is not a folder")
    spec: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "input_shape": list(model.input_shape),
        "layers": [
            {"class_name": type(layer).__name__, "config": layer.get_config()}
            for layer in model.layers
        ],
    }
    trainer = model.trainer
    if trainer is not None and (trainer.loss is None or isinstance(trainer.loss, str)):
        spec["compile"] = {
            "optimizer": _optimizer_config(trainer.optimizer),
            "loss": trainer.loss,
            "metrics": trainer.metrics,
            "backend": trainer.backend,
            "steps_run": trainer.steps_run,
        }
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


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise SerializationError(f"cannot read {path}: {e}") from None


def _read_spec(path: str) -> dict[str, Any]:
    try:
        with open(os.path.join(path, "model.json"), encoding="utf-8") as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise SerializationError(f"{path!r} holds no model.json (not a saved model)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SerializationError(f"{path}/model.json is not valid JSON: {e}") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise SerializationError(f"{path}/model.json is not an nncompile model")
    if spec.get("version") not in VERSIONS:
        raise SerializationError(f"{path}: model format version {spec.get('version')} unknown")
    return spec


def _build(spec: dict[str, Any]) -> Any:
    from .model import Sequential

    layers = []
    for entry in spec.get("layers", []):
        cls = LAYER_TYPES.get(entry.get("class_name") if isinstance(entry, dict) else None)
        if cls is None or not isinstance(entry.get("config"), dict):
            raise SerializationError(f"model.json: unknown or malformed layer {entry!r}")
        try:
            layers.append(cls(**entry["config"]))
        except (TypeError, NCError) as e:
            raise SerializationError(f"model.json: layer {entry['class_name']}: {e}") from None
    model = Sequential(layers, name=str(spec.get("name", "sequential")))
    if not model.built:
        model.build(tuple(spec["input_shape"]))
    return model


def _restore_weights(model: Any, weights: dict[str, np.ndarray], path: str) -> None:
    expected = {
        f"{layer.name}/{key}": (group, key, array)
        for layer in model.layers
        for group in (layer.params, layer.state)
        for key, array in group.items()
    }
    if set(weights) != set(expected):
        missing, extra = set(expected) - set(weights), set(weights) - set(expected)
        raise SerializationError(
            f"{path} does not match model.json: missing {sorted(missing)}, "
            f"unexpected {sorted(extra)}"
        )
    for name, (group, key, array) in expected.items():
        loaded = weights[name]
        if loaded.shape != array.shape or loaded.dtype != array.dtype:
            raise SerializationError(
                f"{path}: {name} is {loaded.dtype}{list(loaded.shape)}, the model "
                f"needs {array.dtype}{list(array.shape)}"
            )
        group[key] = np.array(loaded)


def _restore_optimizer(model: Any, opt_file: str | None) -> None:
    if opt_file is None:
        return
    trainer = model.trainer
    template = trainer.optimizer.init(model.params(trainable=True))
    leaves, _, treedef = pytree.flatten(template, is_array_leaf)
    stored = _read_npz(opt_file)
    names = pytree.leaf_paths(treedef, "opt")
    if set(names) != set(stored):
        raise SerializationError(f"{opt_file} does not match the model's optimizer state")
    arrays = []
    for name, leaf in zip(names, leaves, strict=True):
        if stored[name].shape != np.shape(leaf):
            raise SerializationError(f"{opt_file}: {name} has the wrong shape")
        arrays.append(np.array(stored[name], dtype=np.asarray(leaf).dtype))
    trainer.opt_state = pytree.unflatten(treedef, arrays)


def load_model(path: str, compile: bool = True) -> Any:
    """A model saved with ``model.save(path)``: the same architecture and weights (and,
    with ``compile``, the same optimizer, optimizer state, loss and metrics)."""
    spec = _read_spec(path)
    files = _array_files(spec, path)
    model = _build(spec)
    _restore_weights(model, _read_npz(files["weights"]), files["weights"])
    settings = spec.get("compile")
    if compile and settings:
        model.compile(
            optimizer=_optimizer_from(settings["optimizer"]),
            loss=settings["loss"],
            metrics=settings["metrics"],
            backend=settings["backend"],
        )
        model.trainer.steps_run = int(settings.get("steps_run", 0))
        _restore_optimizer(model, files.get("optimizer"))
    return model
