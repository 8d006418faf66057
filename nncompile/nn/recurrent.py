"""Keras-style recurrent layers over (batch, time, features), unrolled over the static
sequence length. Weights use PyTorch's layout (kernel: (gates * units, features),
recurrent_kernel: (gates * units, units)) and Keras' initialization: glorot_uniform
kernels, orthogonal recurrent kernels, zero biases (LSTM forget gate bias 1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .. import init
from ..ir.errors import ConfigError, ShapeError
from ..tensor import Tensor
from .layer import CallContext, Layer, Shape, Weight, positive_int


class _Recurrent(Layer):
    gates = 1

    def __init__(self, units: int, return_sequences: bool = False, **kwargs: Any):
        super().__init__(None, **kwargs)
        self.units = positive_int(units, f"{type(self).__name__} units")
        self.return_sequences = bool(return_sequences)

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        if len(input_shape) != 2:
            raise ShapeError(
                f"{type(self).__name__} {self.name}: expects sequences (time, features), "
                f"got input shape {input_shape}"
            )
        rows = self.gates * self.units
        return {
            "kernel": Weight((rows, input_shape[1]), init.glorot_uniform),
            "recurrent_kernel": Weight((rows, self.units), init.orthogonal),
            "bias": Weight((rows,), init.zeros),
        }

    def config(self) -> dict[str, Any]:
        return {"units": self.units, "return_sequences": self.return_sequences}


class SimpleRNN(_Recurrent):
    def __init__(self, units: int, activation: str = "tanh", **kwargs: Any):
        super().__init__(units, **kwargs)
        if activation not in ("tanh", "relu"):
            raise ConfigError(f"SimpleRNN activation must be 'tanh' or 'relu', got {activation!r}")
        self.cell_activation = activation

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        p = params
        out, _ = F.simple_rnn(
            x,
            p["kernel"],
            p["recurrent_kernel"],
            p["bias"],
            nonlinearity=self.cell_activation,
            return_sequences=self.return_sequences,
        )
        return out

    def config(self) -> dict[str, Any]:
        return {**super().config(), "activation": self.cell_activation}


class LSTM(_Recurrent):
    """Gates (input, forget, cell, output), as torch.nn.LSTM."""

    gates = 4

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        declared = super().weights(input_shape)
        declared["bias"] = Weight(declared["bias"].shape, self._forget_bias)
        return declared

    def _forget_bias(self, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        bias = np.zeros(shape, np.float32)
        bias[self.units : 2 * self.units] = 1.0  # Keras' unit_forget_bias
        return bias

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        p = params
        out, _ = F.lstm(
            x,
            p["kernel"],
            p["recurrent_kernel"],
            p["bias"],
            return_sequences=self.return_sequences,
        )
        return out


class GRU(_Recurrent):
    """Gates (reset, update, new) with the reset gate applied after the recurrent matmul
    (Keras' reset_after=True, torch.nn.GRU): separate input and recurrent biases."""

    gates = 3

    def weights(self, input_shape: Shape) -> dict[str, Weight]:
        declared = super().weights(input_shape)
        declared["recurrent_bias"] = Weight((self.gates * self.units,), init.zeros)
        return declared

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Tensor:
        p = params
        out, _ = F.gru(
            x,
            p["kernel"],
            p["recurrent_kernel"],
            p["bias"],
            p["recurrent_bias"],
            return_sequences=self.return_sequences,
        )
        return out
