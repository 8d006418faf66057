"""Random small functions compiled by the LLVM backend against the NumPy reference.

Hypothesis draws a program over a small op set (elementwise unary and binary ops with
broadcasting, max via where, reductions over random axes with or without keepdims,
matmul, reshape, transpose, slicing with negative steps, concatenation), random input
shapes (dims 1, 2, 3, 5, 17) and a data seed. The function returns its last value and a
few earlier ones, so fusion groups get several outputs. Every op keeps values bounded
and continuous, so float rounding differences stay small.

Shrinking is off (every example compiles native code); a failure prints the program.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

import nncompile as nc

from . import llvm_support as S


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path / "cache"))


UNARY = {
    "neg": nc.negative,
    "abs": nc.abs,
    "relu": nc.relu,
    "tanh": nc.tanh,
    "sigmoid": nc.sigmoid,
    "exp": lambda x: nc.exp(nc.minimum(x, 3.0)),
    "log": lambda x: nc.log(nc.abs(x) + 1.0),
    "sqrt": lambda x: nc.sqrt(nc.abs(x)),
    "erf": nc.erf,
    "square": nc.square,
}
BINARY = {
    "add": nc.add,
    "sub": nc.subtract,
    "mul": nc.multiply,
    "div": lambda a, b: a / (nc.abs(b) + 1.0),
    "maximum": nc.maximum,
    "minimum": nc.minimum,
    "where_max": lambda a, b: nc.where(a > b, a, b),
}
REDUCE = {"sum": nc.sum, "mean": nc.mean, "max": nc.max, "min": nc.min}
DIMS = st.sampled_from([1, 2, 3, 5, 17])
KINDS = ["unary", "binary", "binary", "reduce", "reduce", "matmul", "move", "move"]


@dataclass
class Program:
    dtype: str
    inputs: list[tuple[int, ...]]
    instrs: list[tuple] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def __call__(self, *args):
        vals = list(args[: len(self.inputs)])
        extra = iter(args[len(self.inputs) :])
        for op, *rest in self.instrs:
            if op in UNARY:
                vals.append(UNARY[op](vals[rest[0]]))
            elif op in BINARY:
                b = vals[rest[1]] if rest[1] is not None else next(extra)
                vals.append(BINARY[op](vals[rest[0]], b))
            elif op in REDUCE:
                i, axes, keep = rest
                vals.append(REDUCE[op](vals[i], axes, keep))
            elif op == "matmul":
                vals.append(nc.matmul(vals[rest[0]], next(extra)))
            elif op == "reshape":
                vals.append(nc.reshape(vals[rest[0]], rest[1]))
            elif op == "transpose":
                vals.append(nc.transpose(vals[rest[0]], rest[1]))
            elif op == "slice":
                vals.append(vals[rest[0]][tuple(slice(*s) for s in rest[1])])
            elif op == "concat":
                a = vals[rest[0]]
                vals.append(nc.concatenate([a, nc.tanh(a)], axis=rest[1]))
            else:
                raise AssertionError(op)
        return tuple(vals[i] for i in self.outputs)


def _broadcast_partner(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape``: some dims 1, maybe fewer leading dims."""
    drop = draw(st.integers(0, len(shape)))
    return tuple(1 if draw(st.booleans()) else d for d in shape[drop:])


@st.composite
def programs(draw) -> tuple[Program, list[tuple[int, ...]]]:
    """A program and the shapes of its extra inputs (matmul weights, broadcast partners)."""
    dtype = draw(st.sampled_from(["float32", "float64"]))
    rank = draw(st.sampled_from([0, 1, 2, 2, 3, 3, 3]))
    inputs = [tuple(draw(st.lists(DIMS, min_size=rank, max_size=rank)))]
    if draw(st.booleans()):
        inputs.append(_broadcast_partner(draw, inputs[0]))
    prog = Program(dtype, inputs)
    shapes = list(inputs)
    extra: list[tuple[int, ...]] = []
    for _ in range(draw(st.integers(2, 8))):
        last = len(shapes) - 1
        i = last if draw(st.booleans()) else draw(st.integers(0, last))
        shape = shapes[i]
        kind = draw(st.sampled_from(KINDS))
        if kind == "unary" or (kind in ("reduce", "matmul") and not shape):
            prog.instrs.append((draw(st.sampled_from(sorted(UNARY))), i))
        elif kind == "binary":
            op = draw(st.sampled_from(sorted(BINARY)))
            partners = [
                j for j, s in enumerate(shapes) if _broadcasts(s, shape) and s != () and j != i
            ]
            if partners and draw(st.booleans()):
                j = draw(st.sampled_from(partners))
                prog.instrs.append((op, i, j))
                shape = np.broadcast_shapes(shape, shapes[j])
            else:
                partner = _broadcast_partner(draw, shape)
                extra.append(partner)
                prog.instrs.append((op, i, None))
                shape = np.broadcast_shapes(shape, partner)
        elif kind == "reduce":
            axes = tuple(sorted(draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
            keep = draw(st.booleans())
            prog.instrs.append((draw(st.sampled_from(sorted(REDUCE))), i, axes, keep))
            shape = tuple(
                1 if k in axes else d for k, d in enumerate(shape) if keep or k not in axes
            )
        elif kind == "matmul":
            k, n = shape[-1], draw(DIMS)
            w = (k, n) if draw(st.integers(0, 3)) else (k,)
            extra.append(w)
            prog.instrs.append(("matmul", i))
            shape = shape[:-1] + w[1:]
        else:
            shape = _movement(draw, prog, i, shape)
        shapes.append(tuple(int(d) for d in shape))
    last = len(shapes) - 1
    others = draw(st.sets(st.integers(len(inputs), last), max_size=2))
    prog.outputs = [last] + sorted(others - {last})
    return prog, extra


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(a, b) == tuple(b)
    except ValueError:
        return False


def _movement(draw, prog: Program, i: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    choices = ["reshape"] + (["transpose", "slice", "concat"] if shape else [])
    op = draw(st.sampled_from(choices))
    if op == "reshape":
        size = math.prod(shape)
        target = draw(
            st.sampled_from([(size,), tuple(reversed(shape)), (1,) + shape, shape + (1,)])
        )
        prog.instrs.append(("reshape", i, target))
        return target
    if op == "transpose":
        perm = tuple(draw(st.permutations(range(len(shape)))))
        prog.instrs.append(("transpose", i, perm))
        return tuple(shape[p] for p in perm)
    if op == "concat":
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        prog.instrs.append(("concat", i, axis))
        return tuple(2 * d if k == axis % len(shape) else d for k, d in enumerate(shape))
    slices, out = [], []
    for d in shape:
        step = draw(st.sampled_from([1, 1, 2, -1, -2]))
        start = draw(st.integers(0, d - 1))
        if step > 0:
            stop = draw(st.integers(start + 1, d))
        else:
            stop = draw(st.integers(-1, start - 1))
            stop = None if stop == -1 else stop
        slices.append((start, stop, step))
        out.append(len(range(d)[slice(start, stop, step)]))
    prog.instrs.append(("slice", i, tuple(slices)))
    return tuple(out)


def _tol(dtype: str, ref: np.ndarray) -> tuple[float, float]:
    finite = ref[np.isfinite(ref)]
    scale = 1.0 + (float(np.max(np.abs(finite))) if finite.size else 0.0)
    return (1e-4, 1e-4 * scale) if dtype == "float32" else (1e-9, 1e-9 * scale)


@settings(
    max_examples=500,
    derandomize=True,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(programs(), st.integers(0, 2**32 - 1))
def test_random_graph_matches_reference(prog_extra, seed):
    prog, extra = prog_extra
    rng = np.random.default_rng(seed)
    args = [S.data(rng, s, prog.dtype, -2.0, 2.0) for s in prog.inputs + extra]
    note(f"{prog!r}\nextra inputs {extra}")
    graph = nc.trace(prog, *args)
    note(str(graph))
    want = nc.run(graph, *args)
    got = nc.compile(prog, backend="llvm")(*args)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        S.assert_close(g, w, _tol(prog.dtype, w), f"output {k}")
