"""RNN, GRU and LSTM with ONNX's weight layout and gate orders (LSTM i, o, f, c; GRU
z, r, h), unrolled over the static sequence length: direction forward / reverse /
bidirectional, initial states, LSTM peepholes, GRU linear_before_reset, layout 0
(time-major) and 1 (batch-major). The input projection of all steps is one matmul."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter

_ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "sigmoid": nc.sigmoid,
    "tanh": nc.tanh,
    "relu": nc.relu,
}
_DEFAULTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


class _Setup:
    """What every recurrent op reads: sizes, directions, activations, time-major X,
    weights split per direction, initial states."""

    def __init__(self, ctx: NodeContext, op: str):
        self.ctx, self.op = ctx, op
        x = ctx.input(0)
        if np.dtype(x.dtype).kind != "f":
            ctx.unsupported(f"X of dtype {x.dtype} (a float type is required)")
        self.dtype = np.dtype(x.dtype)
        self.layout = ctx.attr("layout", 0) if ctx.opset >= 14 else 0
        if self.layout not in (0, 1):
            ctx.unsupported(f"attribute layout={self.layout}")
        self.x = nc.transpose(x, (1, 0, 2)) if self.layout else x  # (T, N, F)
        self.steps, self.batch = int(self.x.shape[0]), int(self.x.shape[1])
        self.hidden = ctx.attr("hidden_size")
        direction = ctx.attr("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            ctx.unsupported(f"attribute direction={direction!r}")
        self.reverse = [False, True] if direction == "bidirectional" else [direction == "reverse"]
        if ctx.attr("clip", None) is not None:
            ctx.unsupported("attribute clip (cell clipping) is not supported")
        self.acts = self._activations()
        if ctx.opset < 7:
            ctx.attr("output_sequence", 0)  # only whether Y is computed: Y is when wanted
        if op == "GRU":
            self.linear_before_reset = bool(ctx.attr("linear_before_reset", 0))
        if op == "LSTM" and ctx.attr("input_forget", 0):
            ctx.unsupported("attribute input_forget=1 (coupled input and forget gates)")
        self._check_lengths()
        w, r, b = ctx.input(1), ctx.input(2), ctx.optional_input(3)
        gates = _GATES[op] * self.hidden
        if tuple(w.shape)[:2] != (len(self.reverse), gates):
            ctx.unsupported(f"W of shape {tuple(w.shape)} for {len(self.reverse)} directions")
        self.w, self.r, self.b = w, r, b

    def _activations(self) -> list[list[Callable[[Any], Any]]]:
        names = self.ctx.attr("activations", None)
        alpha = self.ctx.attr("activation_alpha", None)
        beta = self.ctx.attr("activation_beta", None)
        per = len(_DEFAULTS[self.op])
        names = names or _DEFAULTS[self.op] * len(self.reverse)
        if len(names) != per * len(self.reverse):
            self.ctx.unsupported(f"activations {names} (needs {per} per direction)")
        if alpha or beta:
            self.ctx.unsupported("activation_alpha/activation_beta (parametric activations)")
        acts = []
        for name in names:
            if name.lower() not in _ACTIVATIONS:
                self.ctx.unsupported(f"activation {name!r} (only Sigmoid, Tanh, Relu)")
            acts.append(_ACTIVATIONS[name.lower()])
        return [acts[i * per : (i + 1) * per] for i in range(len(self.reverse))]

    def _check_lengths(self) -> None:
        """sequence_lens: per-sample lengths. Steps past a sample's length leave its
        state unchanged and its Y rows 0; a reverse direction starts each sample at its
        own last step (its input is reversed per sample, run forward, reversed back)."""
        self.lens: Any = None
        if not self.ctx.has_input(4):
            return
        lens = self.ctx.input(4)
        if isinstance(lens, np.ndarray):
            if np.all(lens == self.steps):
                return
            lens = lens.astype(np.int64)
        self.lens = nc.reshape(lens, (-1, 1))
        if any(self.reverse):
            self._flip = self._per_sample_flip(lens)

    def _per_sample_flip(self, lens: Any) -> Any:
        """Row indices into (T * N) rows that reverse each sample's first len steps and
        keep the rest: its own inverse, so it also puts reversed outputs back."""
        t = np.arange(self.steps).reshape(-1, 1)
        n = self.batch
        dt = np.dtype(lens.dtype)
        row = nc.reshape(lens, (1, -1))
        step = nc.where(nc.less(t.astype(dt), row), row - np.asarray(1, dt) - t.astype(dt), t)
        return nc.reshape(step * np.asarray(n, dt) + np.arange(n, dtype=dt), (-1,))

    def _flipped(self, v: Any) -> Any:
        shape = tuple(v.shape)
        rows = nc.take(nc.reshape(v, (shape[0] * shape[1], -1)), self._flip, axis=0)
        return nc.reshape(rows, shape)

    def x_for(self, d: int) -> Any:
        """Direction d's input, time-major; reversed per sample for a reverse direction
        with sequence lengths."""
        return self._flipped(self.x) if self.reverse[d] and self.lens is not None else self.x

    def restore(self, d: int, hs: list[Any]) -> list[Any]:
        """Per-step outputs in input time order."""
        if not (self.reverse[d] and self.lens is not None):
            return hs
        y = self._flipped(nc.stack(hs, axis=0))
        return [y[t] for t in range(self.steps)]

    def masked(self, t: int, new: Any, old: Any) -> Any:
        """``new`` where step t is inside the sample's length, else ``old``."""
        if self.lens is None:
            return new
        inside = nc.less(np.asarray(t, np.dtype(self.lens.dtype)), self.lens)
        return nc.where(inside, new, old)

    def step_output(self, t: int, h: Any) -> Any:
        """Y at step t: 0 past a sample's length."""
        if self.lens is None:
            return h
        return self.masked(t, h, np.zeros((), self.dtype))

    def weights(self, d: int) -> tuple[Any, Any, Any, Any]:
        """(W_d^T, R_d^T, Wb_d, Rb_d); biases None when B is absent."""
        w_t = nc.transpose(self.w[d])
        r_t = nc.transpose(self.r[d])
        if self.b is None:
            return w_t, r_t, None, None
        gates = _GATES[self.op] * self.hidden
        return w_t, r_t, self.b[d, :gates], self.b[d, gates:]

    def initial(self, i: int, d: int) -> Any:
        """Initial state input ``i`` (initial_h or initial_c) of direction d, (N, H)."""
        v = self.ctx.optional_input(i)
        if v is None:
            return nc.as_tensor(np.zeros((self.batch, self.hidden), self.dtype))
        return v[:, d] if self.layout else v[d]

    def peepholes(self, d: int) -> tuple[Any, Any, Any] | None:
        """LSTM's P (D, 3H) of direction d as its (i, o, f) parts."""
        p = self.ctx.optional_input(7)
        if p is None:
            return None
        hidden = self.hidden
        return p[d, :hidden], p[d, hidden : 2 * hidden], p[d, 2 * hidden :]

    def order(self, d: int) -> list[int]:
        backwards = self.reverse[d] and self.lens is None
        return list(range(self.steps))[::-1] if backwards else list(range(self.steps))

    def outputs(self, hs: list[list[Any]], finals: list[list[Any]]) -> list[Any]:
        """Y (T, D, N, H) from each direction's per-step states in time order, and the
        final states (D, N, H); batch-major when layout is 1."""
        names = list(self.ctx.node.output)
        wanted = [len(names) > k and bool(names[k]) for k in range(3)]
        outs: list[Any] = [None]
        if wanted[0]:
            y = nc.stack([nc.stack(h, axis=0) for h in hs], axis=1)
            outs[0] = nc.transpose(y, (2, 0, 1, 3)) if self.layout else y
        for k, states in enumerate(finals, start=1):
            s = nc.stack(states, axis=0)
            outs.append(nc.transpose(s, (1, 0, 2)) if self.layout else s)
            if not wanted[k]:
                outs[k] = None
        return outs


def _project(x: Any, w_t: Any, bias: Any) -> Any:
    proj = nc.matmul(x, w_t)  # (T, N, gates * H)
    return proj if bias is None else proj + bias


def _run(ctx: NodeContext, op: str, cell: Callable[..., tuple[list[Any], list[Any]]]) -> list:
    s = _Setup(ctx, op)
    hs, finals = [], []
    for d in range(len(s.reverse)):
        seq, last = cell(s, d)
        hs.append(seq)
        finals.append(last)
    return s.outputs(hs, [list(f) for f in zip(*finals, strict=True)])


def _rnn_cell(s: _Setup, d: int) -> tuple[list[Any], list[Any]]:
    w_t, r_t, wb, rb = s.weights(d)
    proj = _project(s.x_for(d), w_t, None if wb is None else wb + rb)
    (act,) = s.acts[d]
    h = s.initial(5, d)
    hs: list[Any] = [None] * s.steps
    for t in s.order(d):
        h = s.masked(t, act(proj[t] + nc.matmul(h, r_t)), h)
        hs[t] = s.step_output(t, h)
    return s.restore(d, hs), [h]


def _gru_cell(s: _Setup, d: int) -> tuple[list[Any], list[Any]]:
    """z = f(Xz + Hz), r = f(Xr + Hr); h~ = g(Xh + (r * H) Rh^T + Rbh), or with
    linear_before_reset g(Xh + r * (H Rh^T + Rbh)); H' = (1 - z) h~ + z H."""
    hidden = s.hidden
    w_t, r_t, wb, rb = s.weights(d)
    proj = _project(s.x_for(d), w_t, wb)
    f, g = s.acts[d]
    h = s.initial(5, d)
    r_zr, r_h = r_t[:, : 2 * hidden], r_t[:, 2 * hidden :]
    rb_zr = None if rb is None else rb[: 2 * hidden]
    rb_h = None if rb is None else rb[2 * hidden :]
    hs: list[Any] = [None] * s.steps
    for t in s.order(d):
        xt = proj[t]
        hzr = nc.matmul(h, r_zr)
        if rb_zr is not None:
            hzr = hzr + rb_zr
        z = f(xt[:, :hidden] + hzr[:, :hidden])
        r = f(xt[:, hidden : 2 * hidden] + hzr[:, hidden:])
        if s.linear_before_reset:
            hh = nc.matmul(h, r_h)
            hh = r * (hh if rb_h is None else hh + rb_h)
        else:
            hh = nc.matmul(r * h, r_h)
            hh = hh if rb_h is None else hh + rb_h
        candidate = g(xt[:, 2 * hidden :] + hh)
        h = s.masked(t, (1 - z) * candidate + z * h, h)
        hs[t] = s.step_output(t, h)
    return s.restore(d, hs), [h]


def _lstm_cell(s: _Setup, d: int) -> tuple[list[Any], list[Any]]:
    """Gates i, o, f, c: i = f(Xi + Hi + Pi c), f = f(Xf + Hf + Pf c), c~ = g(Xc + Hc),
    c' = f c + i c~, o = f(Xo + Ho + Po c'), H' = o h(c')."""
    hidden = s.hidden
    w_t, r_t, wb, rb = s.weights(d)
    proj = _project(s.x_for(d), w_t, None if wb is None else wb + rb)
    f, g, act_h = s.acts[d]
    h, c = s.initial(5, d), s.initial(6, d)
    p = s.peepholes(d)
    hs: list[Any] = [None] * s.steps
    for t in s.order(d):
        z = proj[t] + nc.matmul(h, r_t)
        zi, zo = z[:, :hidden], z[:, hidden : 2 * hidden]
        zf, zc = z[:, 2 * hidden : 3 * hidden], z[:, 3 * hidden :]
        if p is not None:
            zi, zf = zi + p[0] * c, zf + p[2] * c
        i, fg = f(zi), f(zf)
        c_new = fg * c + i * g(zc)
        o = f(zo if p is None else zo + p[1] * c_new)
        h = s.masked(t, o * act_h(c_new), h)
        c = s.masked(t, c_new, c)
        hs[t] = s.step_output(t, h)
    return s.restore(d, hs), [h, c]


@converter("RNN", constant_inputs=(4,))
def rnn(ctx: NodeContext) -> list[Any]:
    return _run(ctx, "RNN", _rnn_cell)


@converter("GRU", constant_inputs=(4,))
def gru(ctx: NodeContext) -> list[Any]:
    return _run(ctx, "GRU", _gru_cell)


@converter("LSTM", constant_inputs=(4,))
def lstm(ctx: NodeContext) -> list[Any]:
    return _run(ctx, "LSTM", _lstm_cell)
