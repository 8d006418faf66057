"""Functional building blocks with explicit parameters: the pieces the Keras-style layers
are made of. Everything here is written with nc ops, so it runs eagerly, traces, and
differentiates."""

from .layers import (
    ACTIVATIONS,
    activation,
    avg_pool,
    batch_norm,
    conv2d_layer,
    dense,
    dropout,
    embedding,
    flatten,
    max_pool,
)
from .recurrent import gru, lstm, simple_rnn

__all__ = [
    "ACTIVATIONS",
    "activation",
    "avg_pool",
    "batch_norm",
    "conv2d_layer",
    "dense",
    "dropout",
    "embedding",
    "flatten",
    "gru",
    "lstm",
    "max_pool",
    "simple_rnn",
]
