"""The whole training step as one function of (params, optimizer state, x, y, lr).

Traced, it is one graph: forward, backward and optimizer update, with the learning rate
as an input so schedules never recompile::

    step = nc.train_step(loss_fn, optim.Adam())
    graph = nc.trace(step, params, opt.init(params), x, y, np.float32(1e-3))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .autodiff import value_and_grad
from .optim import Optimizer


def train_step(loss_fn: Callable[..., Any], optimizer: Optimizer) -> Callable[..., Any]:
    """``loss_fn(params, x, y)`` returns a scalar loss or ``(loss, metrics)`` with metrics a
    dict of tensors. Returns ``step(params, state, x, y, lr) -> (params, state, loss,
    metrics)``, a pure function that runs eagerly or traces into one graph."""

    def step(params: Any, opt_state: Any, x: Any, y: Any, lr: Any) -> tuple[Any, Any, Any, Any]:
        def objective(p: Any) -> tuple[Any, dict]:
            out = loss_fn(p, x, y)
            return out if isinstance(out, tuple) else (out, {})

        (loss, metrics), grads = value_and_grad(objective, has_aux=True)(params)
        new_params, new_state = optimizer.update(params, grads, opt_state, lr)
        return new_params, new_state, loss, metrics

    step.__name__ = f"train_step_{getattr(loss_fn, '__name__', 'loss')}"
    return step
