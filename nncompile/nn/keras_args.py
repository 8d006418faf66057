"""Argument checks and initializers shared by the Keras-layout layers (layers_*.py):
``data_format``, Keras' kernel fans, and nested layer configs for wrappers."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import init
from ..ir.errors import ConfigError, ShapeError
from .layer import LAYER_TYPES, Layer, Shape

DATA_FORMATS = ("channels_last", "channels_first")


def check_data_format(data_format: Any, layer: str) -> str:
    """Keras' data_format; None is Keras' global default, channels_last."""
    data_format = "channels_last" if data_format is None else data_format
    if data_format not in DATA_FORMATS:
        raise ConfigError(f"{layer} data_format must be one of {DATA_FORMATS}, got {data_format!r}")
    return data_format


def require_rank(layer: Layer, input_shape: Shape, rank: int, what: str) -> None:
    """``input_shape`` excludes the batch axis; ``rank`` counts it too."""
    if len(input_shape) != rank - 1:
        raise ShapeError(
            f"{type(layer).__name__} {layer.name}: expects {what}, got input shape {input_shape}"
        )


def keras_initializer(name: str) -> Callable[[Shape, np.random.Generator], np.ndarray]:
    """The initializer ``name`` with Keras' fans for kernels of any rank: the last two axes
    are (in, out) and every leading axis is receptive field, so a (kh, kw, in, out) conv
    kernel or a (dim, heads, key_dim) attention kernel gets the scale Keras gives it."""
    try:
        base = init.get(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    takes_layout = "layout" in inspect.signature(base).parameters

    def make(shape: Shape, rng: np.random.Generator) -> np.ndarray:
        shape = tuple(shape)
        if not takes_layout or len(shape) < 2:
            return base(shape, rng)
        # init.fans((in, out, receptive), "in_out") = (in * receptive, out * receptive);
        # the values are i.i.d., so drawing them in that shape and reshaping is exact
        receptive = math.prod(shape[:-2])
        return base((shape[-2], shape[-1], receptive), rng, layout="in_out").reshape(shape)

    return make


def layer_from(spec: Any, what: str) -> Layer:
    """A layer instance, or the ``{"class_name", "config"}`` a saved wrapper holds."""
    if isinstance(spec, Layer):
        return spec
    if isinstance(spec, dict) and isinstance(spec.get("config"), dict):
        cls = LAYER_TYPES.get(spec.get("class_name"))
        if cls is not None:
            return cls(**spec["config"])
    raise ConfigError(f"{what} must be an nn layer (or its saved config), got {spec!r}")


def layer_spec(layer: Layer) -> dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}
