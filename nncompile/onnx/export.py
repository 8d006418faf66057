"""Writing an imported model back with new parameter values (after fine-tuning): the
same graph, each initializer replaced by its new value in the initializer's own dtype."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError
from ..fileio import atomic_write
from .dependency import require_onnx
from .function import OnnxFunction


def save(f: OnnxFunction, params: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``f``'s model to ``path`` with the initializers named in ``params`` replaced
    (a subset is fine; the others keep their values). Values are cast to each
    initializer's dtype; unknown names and wrong shapes are errors before anything is
    written, and the file is replaced atomically."""
    onnx = require_onnx()
    if not isinstance(f, OnnxFunction):
        raise ConfigError(f"save: expected an OnnxFunction (nc.onnx.load), got {type(f).__name__}")
    if not isinstance(params, dict):
        raise ConfigError(f"save: params must be a dict of arrays, got {type(params).__name__}")
    model = onnx.ModelProto()
    model.CopyFrom(f.model)
    initializers = {t.name: t for t in model.graph.initializer}
    unknown = sorted(set(params) - set(initializers))
    if unknown:
        raise ConfigError(
            f"save: the model has no initializer {unknown[:5]}; its initializers: "
            f"{sorted(initializers)[:10]}"
        )
    for name, value in params.items():
        old = initializers[name]
        want = tuple(int(d) for d in old.dims)
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        if array.shape != want:
            raise ShapeError(
                f"save: initializer {name!r} has shape {want}, the new value has {array.shape}"
            )
        dtype = onnx.helper.tensor_dtype_to_np_dtype(old.data_type)
        new = onnx.numpy_helper.from_array(array.astype(dtype), name)
        old.CopyFrom(new)  # raw_data; the old typed fields go with the CopyFrom
    atomic_write(os.fspath(path), model.SerializeToString())
