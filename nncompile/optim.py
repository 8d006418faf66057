"""Optimizers as pure functions: ``init(params) -> state`` and
``update(params, grads, state, lr) -> (params, state)``.

The update equations and defaults are PyTorch's (torch.optim). The learning rate is an
argument, not a constant, so a traced training step takes it as a graph input and
learning-rate schedules never recompile. ``params``, ``grads`` and each buffer in the state
share one (nested) structure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops, pytree
from .dispatch import name_scope
from .tensor import Tensor, as_tensor
from .tracing import is_array_leaf

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "Params",
    "RMSprop",
    "get",
]

Params = Any  # a pytree of arrays / Tensors


def _leaves(tree: Params) -> tuple[list[Any], dict]:
    leaves, statics, treedef = pytree.flatten(tree, is_array_leaf)
    if statics:
        raise TypeError("parameters must be a (nested) dict/list/tuple of arrays only")
    return leaves, treedef


def _zeros_like_tree(params: Params) -> Params:
    leaves, treedef = _leaves(params)
    return pytree.unflatten(treedef, [np.zeros(np.shape(p), np.asarray(p).dtype) for p in leaves])


def _map(fn, params: Params, *trees: Params) -> list[Any]:
    p_leaves, _ = _leaves(params)
    others = [_leaves(t)[0] for t in trees]
    return [fn(p, *rest) for p, *rest in zip(p_leaves, *others, strict=True)]


class Optimizer:
    """Base class: subclasses define ``buffers`` (names of per-parameter state),
    ``step_one(p, g, bufs, shared) -> (p, bufs)`` and optionally ``shared_terms(step, lr,
    dtype)``: scalars every parameter uses (computed once per step, not per parameter)."""

    buffers: tuple[str, ...] = ()

    def __init__(self, lr: float):
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        self.lr = lr

    def init(self, params: Params) -> dict[str, Any]:
        leaves, _ = _leaves(params)
        dtype = np.asarray(leaves[0]).dtype if leaves else np.float32
        state: dict[str, Any] = {"step": np.zeros((), dtype)}
        for name in self.buffers:
            state[name] = _zeros_like_tree(params)
        return state

    def update(
        self, params: Params, grads: Params, state: dict[str, Any], lr: Any = None
    ) -> tuple[Params, dict[str, Any]]:
        with name_scope("optimizer"):
            return self._update(params, grads, state, lr)

    def _update(
        self, params: Params, grads: Params, state: dict[str, Any], lr: Any
    ) -> tuple[Params, dict[str, Any]]:
        lr = self.lr if lr is None else lr
        step = as_tensor(state["step"]) + 1
        p_leaves, treedef = _leaves(params)
        g_leaves, _ = _leaves(grads)
        buf_leaves = [_leaves(state[name])[0] for name in self.buffers]
        new_p, new_bufs = [], [[] for _ in self.buffers]
        shared_by_dtype: dict[Any, dict[str, Tensor]] = {}
        for i, (p, g) in enumerate(zip(p_leaves, g_leaves, strict=True)):
            p, g = as_tensor(p), as_tensor(g)
            bufs = {name: as_tensor(buf_leaves[k][i]) for k, name in enumerate(self.buffers)}
            if p.dtype not in shared_by_dtype:
                # A Python lr stays a weak scalar; a tensor lr is cast to the params' dtype.
                lr_p = lr if isinstance(lr, (int, float)) else ops.astype(lr, p.dtype)
                shared_by_dtype[p.dtype] = self.shared_terms(step, lr_p, p.dtype)
            p2, bufs2 = self.step_one(p, g, bufs, shared_by_dtype[p.dtype])
            new_p.append(ops.astype(p2, p.dtype))
            for k, name in enumerate(self.buffers):
                new_bufs[k].append(ops.astype(bufs2[name], p.dtype))
        new_state: dict[str, Any] = {"step": step}
        for k, name in enumerate(self.buffers):
            new_state[name] = pytree.unflatten(treedef, new_bufs[k])
        return pytree.unflatten(treedef, new_p), new_state

    def shared_terms(self, step: Tensor, lr: Tensor, dtype: Any) -> dict[str, Tensor]:
        return {"step": step, "lr": lr}

    def step_one(
        self, p: Tensor, g: Tensor, bufs: dict[str, Tensor], shared: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """torch.optim.SGD: weight decay as L2 on the gradient; momentum with dampening; the
    first step's buffer is the gradient itself; Nesterov uses g + momentum * buf."""

    def __init__(
        self,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.buffers = ("momentum_buffer",) if momentum else ()

    def step_one(self, p, g, bufs, shared):
        step, lr = shared["step"], shared["lr"]
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = bufs["momentum_buffer"]
            later = self.momentum * buf + (1 - self.dampening) * g
            buf = ops.where(step == 1, g, later) if self.dampening else later
            g = g + self.momentum * buf if self.nesterov else buf
            bufs = {"momentum_buffer": buf}
        return p - lr * g, bufs


class Adam(Optimizer):
    """torch.optim.Adam (amsgrad=False): weight decay as L2 on the gradient, bias-corrected
    moments, eps added after the corrected square root."""

    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(lr)
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay

    def _decay(self, p, lr):
        return p

    def shared_terms(self, step, lr, dtype):
        b1, b2 = self.betas
        step = ops.astype(step, dtype)
        return {
            "lr": lr,
            "step_size": lr / (1 - ops.power(b1, step)),  # lr / bias correction 1
            "sqrt_correction2": ops.sqrt(1 - ops.power(b2, step)),
        }

    def step_one(self, p, g, bufs, shared):
        b1, b2 = self.betas
        if self.weight_decay and type(self) is Adam:
            g = g + self.weight_decay * p
        p = self._decay(p, shared["lr"])
        m = b1 * bufs["exp_avg"] + (1 - b1) * g
        v = b2 * bufs["exp_avg_sq"] + (1 - b2) * (g * g)
        denom = ops.sqrt(v) / shared["sqrt_correction2"] + self.eps
        return p - shared["step_size"] * (m / denom), {"exp_avg": m, "exp_avg_sq": v}


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay p <- p (1 - lr wd), then Adam."""

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(lr, betas, eps, weight_decay)

    def _decay(self, p, lr):
        return p * (1 - lr * self.weight_decay) if self.weight_decay else p


class RMSprop(Optimizer):
    """torch.optim.RMSprop: square average with smoothing alpha; optional centering and
    momentum; eps added after the square root."""

    def __init__(
        self,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(lr)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered
        self.buffers = (
            ("square_avg",)
            + (("grad_avg",) if centered else ())
            + (("momentum_buffer",) if momentum else ())
        )

    def step_one(self, p, g, bufs, shared):
        lr = shared["lr"]
        if self.weight_decay:
            g = g + self.weight_decay * p
        sq = self.alpha * bufs["square_avg"] + (1 - self.alpha) * (g * g)
        new = {"square_avg": sq}
        if self.centered:
            ga = self.alpha * bufs["grad_avg"] + (1 - self.alpha) * g
            new["grad_avg"] = ga
            avg = ops.sqrt(sq - ga * ga) + self.eps
        else:
            avg = ops.sqrt(sq) + self.eps
        if self.momentum:
            buf = self.momentum * bufs["momentum_buffer"] + g / avg
            new["momentum_buffer"] = buf
            return p - lr * buf, new
        return p - lr * (g / avg), new


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(name_or_opt: str | Optimizer) -> Optimizer:
    if isinstance(name_or_opt, Optimizer):
        return name_or_opt
    try:
        return OPTIMIZERS[name_or_opt.lower()]()
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown optimizer {name_or_opt!r}; known: {sorted(OPTIMIZERS)}"
        ) from None
