"""Recurrent layers over a static sequence length, with PyTorch's gate equations and
weight layout (weight_ih: (gates * H, F), weight_hh: (gates * H, H)); batch-first data
(N, T, F). The input projection of every step is one matmul before the loop."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..ir.errors import ShapeError
from ..ir.symbolic import Dim
from ..tensor import Tensor, as_tensor
from .layers import matmul_last_axis


def _input_projection(x: Tensor, w_ih: Any, b_ih: Any, b_hh: Any) -> Tensor:
    if x.ndim != 3:
        raise ShapeError(f"recurrent layers take (batch, time, features), got {x._type}")
    proj = matmul_last_axis(x, ops.transpose(as_tensor(w_ih)))  # (N, T, gates*H)
    if b_ih is not None:
        proj = proj + b_ih
    if b_hh is not None:
        proj = proj + b_hh
    return proj


def _step(proj: Tensor, t: int) -> Tensor:
    return proj[:, t, :]


def _outputs(hs: list[Tensor], return_sequences: bool) -> Tensor:
    return ops.stack(hs, axis=1) if return_sequences else hs[-1]


def _zeros_state(x: Tensor, hidden: int) -> Tensor:
    if type(x.shape[0]) is Dim:  # a symbolic batch: zeros broadcast to it at run time
        return ops.broadcast_to(as_tensor(np.zeros((), x.dtype)), (x.shape[0], hidden))
    return as_tensor(np.zeros((x.shape[0], hidden), x.dtype))


def simple_rnn(
    x: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any = None,
    b_hh: Any = None,
    h0: Any = None,
    nonlinearity: str = "tanh",
    return_sequences: bool = False,
) -> tuple[Tensor, Tensor]:
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh). Returns (output, h_T)."""
    x = as_tensor(x)
    hidden = as_tensor(w_hh).shape[0]
    act = {"tanh": ops.tanh, "relu": ops.relu}[nonlinearity]
    proj = _input_projection(x, w_ih, b_ih, b_hh)
    w_hh_t = ops.transpose(as_tensor(w_hh))
    h = as_tensor(h0) if h0 is not None else _zeros_state(x, hidden)
    hs = []
    for t in range(x.shape[1]):
        h = act(_step(proj, t) + ops.matmul(h, w_hh_t))
        hs.append(h)
    return _outputs(hs, return_sequences), h


def lstm(
    x: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any = None,
    b_hh: Any = None,
    h0: Any = None,
    c0: Any = None,
    return_sequences: bool = False,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """torch.nn.LSTM gates in the order (i, f, g, o):
    c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t). Returns (output, (h_T, c_T))."""
    x = as_tensor(x)
    hidden = as_tensor(w_hh).shape[1]
    proj = _input_projection(x, w_ih, b_ih, b_hh)
    w_hh_t = ops.transpose(as_tensor(w_hh))
    h = as_tensor(h0) if h0 is not None else _zeros_state(x, hidden)
    c = as_tensor(c0) if c0 is not None else _zeros_state(x, hidden)
    hs = []
    for t in range(x.shape[1]):
        z = _step(proj, t) + ops.matmul(h, w_hh_t)
        i = ops.sigmoid(z[:, 0 * hidden : 1 * hidden])
        f = ops.sigmoid(z[:, 1 * hidden : 2 * hidden])
        g = ops.tanh(z[:, 2 * hidden : 3 * hidden])
        o = ops.sigmoid(z[:, 3 * hidden : 4 * hidden])
        c = f * c + i * g
        h = o * ops.tanh(c)
        hs.append(h)
    return _outputs(hs, return_sequences), (h, c)


def gru(
    x: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any = None,
    b_hh: Any = None,
    h0: Any = None,
    return_sequences: bool = False,
) -> tuple[Tensor, Tensor]:
    """torch.nn.GRU gates in the order (r, z, n):
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h_t = (1 - z) * n + z * h_{t-1}.
    b_hn stays inside the reset product, so it is not folded into the input projection."""
    x = as_tensor(x)
    hidden = as_tensor(w_hh).shape[1]
    b_hh_t = as_tensor(b_hh) if b_hh is not None else None
    proj = _input_projection(x, w_ih, b_ih, None)
    w_hh_t = ops.transpose(as_tensor(w_hh))
    h = as_tensor(h0) if h0 is not None else _zeros_state(x, hidden)
    hs = []
    for t in range(x.shape[1]):
        xi = _step(proj, t)
        hh = ops.matmul(h, w_hh_t)
        if b_hh_t is not None:
            hh = hh + b_hh_t
        r = ops.sigmoid(xi[:, :hidden] + hh[:, :hidden])
        z = ops.sigmoid(xi[:, hidden : 2 * hidden] + hh[:, hidden : 2 * hidden])
        n = ops.tanh(xi[:, 2 * hidden :] + r * hh[:, 2 * hidden :])
        h = (1 - z) * n + z * h
        hs.append(h)
    return _outputs(hs, return_sequences), h
