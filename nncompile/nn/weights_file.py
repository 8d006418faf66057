"""``model.save_weights(path)`` / ``model.load_weights(path)``: the weights alone, one .npz
keyed ``layer/array`` (the form ``model.save`` uses). This is how a subclassed model is
saved: its architecture is its Python class, so it is rebuilt by constructing the class
and then takes the weights. Written atomically; read without unpickling, every name and
shape checked before any weight is replaced."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fileio import atomic_write
from ..ir.errors import SerializationError
from .npz import NpzArrays


def save_weights(model: Any, path: str) -> None:
    if not model.built:
        raise SerializationError("save_weights: the model is not built yet (no weights)")
    named = {
        f"{layer.name}/{key}": array
        for layer in model.layers
        for key, array in (*layer.params.items(), *layer.state.items())
    }
    atomic_write(path, lambda f: np.savez(f, **named))


def load_weights(model: Any, path: str) -> None:
    if not model.built:
        raise SerializationError(
            "load_weights: build the model first (call it on data of the saved input shape)"
        )
    with NpzArrays(path) as stored:
        expected = {
            f"{layer.name}/{key}": array
            for layer in model.layers
            for key, array in (*layer.params.items(), *layer.state.items())
        }
        missing = sorted(set(expected) - set(stored.headers))
        extra = sorted(set(stored.headers) - set(expected))
        if missing or extra:
            raise SerializationError(
                f"{path} does not match model {model.name!r}: missing {missing}, unexpected {extra}"
            )
        for name, array in expected.items():
            shape, dtype = stored.headers[name]
            if shape != array.shape or dtype != array.dtype:
                raise SerializationError(
                    f"{path}: {name} is {dtype}{list(shape)}, the model needs "
                    f"{array.dtype}{list(array.shape)}"
                )
        arrays = {name: np.array(stored.read(name)) for name in expected}
    for layer in model.layers:
        for group in (layer.params, layer.state):
            for key in group:
                group[key] = arrays[f"{layer.name}/{key}"]
