"""Shared helpers of the test_nc_passes_* files (not a test module itself).

- ``random_program``: a random function over a small op DSL, from a seed, that
  traces into graphs on which every pass has something to do (unit constants, repeated
  subexpressions, dead values, transposes, reshapes, size-1 reductions, ...).
- ``check_fusion_invariants``: what a fusion partition must satisfy.
- ``assert_same_results``: bit-exact comparison (NaN == NaN, -0.0 == 0.0).

Test files import it relatively (``from . import nc_passes_support as S``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

import nncompile as nc
from nncompile.passes import op_class
from nncompile.passes.fusion import node_class

# ---- bit-exact comparison -----------------------------------------------------------------


def flat_results(out: Any) -> list[np.ndarray]:
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in flat_results(o)]
    if isinstance(out, dict):
        return [a for k in sorted(out) for a in flat_results(out[k])]
    return [np.asarray(out)]


def assert_same_results(expected: Any, actual: Any, what: str = "") -> None:
    """Equal dtypes, shapes and values; NaN matches NaN and -0.0 matches 0.0."""
    exp, act = flat_results(expected), flat_results(actual)
    assert len(exp) == len(act), f"{what}: {len(exp)} vs {len(act)} results"
    for i, (e, a) in enumerate(zip(exp, act, strict=True)):
        assert e.dtype == a.dtype, f"{what}: result {i} dtype {e.dtype} vs {a.dtype}"
        assert e.shape == a.shape, f"{what}: result {i} shape {e.shape} vs {a.shape}"
        nan_ok = e.dtype.kind in "fc"
        assert np.array_equal(e, a, equal_nan=nan_ok), (
            f"{what}: result {i} differs at {np.argwhere(~((e == a) | (e != e) & (a != a)))[:5]}"
            f"\nexpected {e!r}\nactual {a!r}"
        )


# ---- the random-program DSL ---------------------------------------------------------------

UNARY = {
    "neg": nc.negative,
    "abs": nc.abs,
    "relu": nc.relu,
    "exp": nc.exp,
    "log": nc.log,
    "sqrt": nc.sqrt,
    "tanh": nc.tanh,
    "sigmoid": nc.sigmoid,
    "reciprocal": nc.reciprocal,
    "square": nc.square,
    "sign": nc.sign,
}
BINARY = {
    "add": nc.add,
    "sub": nc.subtract,
    "mul": nc.multiply,
    "div": nc.divide,
    "maximum": nc.maximum,
    "minimum": nc.minimum,
    "pow": nc.power,
}
COMPARE = {
    "greater": nc.greater,
    "less": nc.less,
    "equal": nc.equal,
    "not_equal": nc.not_equal,
    "greater_equal": nc.greater_equal,
    "less_equal": nc.less_equal,
}
REDUCE = {"sum": nc.sum, "mean": nc.mean, "max": nc.max, "min": nc.min}
# Scalars that make simplification rules fire (and a few that must not).
SCALARS = [0.0, 1.0, 2.0, -0.0, 0, 1, 2, 0.5, -1.0, 3.0]
FILLS = [0.0, 1.0, 2.0, -0.0, None]  # None: random values
# Ops through which a value may simplify to its operand (x * 1, where(c, x, x), an
# identity transpose, a size-1 reduction, ...): "is (or may become) exp(...)/log(...)"
# flags propagate through them.
TRANSPARENT = {"cbin", "cexpr", "where", "reduce", "reshape", "transpose", "getitem"}
TRANSPARENT |= {"expand", "cast", "concat", "repeat"}
# Constant-only operands (constant folding has work): name -> f(c)
CONST_EXPRS = {
    "zero": lambda c: nc.subtract(c, c),  # folds to 0: then x + 0 -> x
    "one": lambda c: nc.exp(nc.subtract(c, c)),  # folds to 1: then x * 1 -> x
    "two": lambda c: nc.add(nc.exp(nc.multiply(c, 0.0)), 1.0),
    "tanh": lambda c: nc.tanh(c),
    "neg_square": lambda c: nc.negative(nc.multiply(c, c)),
}


def _const(spec: tuple, dtype: np.dtype) -> Any:
    """A constant operand: a Python scalar (weakly typed) or a NumPy array."""
    if spec[0] == "scalar":
        return spec[1]
    _, shape, fill, seed, dt = spec
    d = np.dtype(dt) if dt else dtype
    if fill is None:
        return np.random.default_rng(seed).uniform(-2, 2, shape).round(1).astype(d)
    return np.full(shape, fill, dtype=d)


def apply(instr: tuple, vals: list) -> Any:
    """Run one DSL instruction on earlier values (eager Tensors or traced ones)."""
    kind = instr[0]
    if kind == "unary":
        return UNARY[instr[1]](vals[instr[2]])
    if kind == "binary":
        return BINARY[instr[1]](vals[instr[2]], vals[instr[3]])
    if kind == "cbin":
        _, op, i, spec, left = instr
        c = _const(spec, vals[i].dtype)
        return BINARY[op](c, vals[i]) if left else BINARY[op](vals[i], c)
    if kind == "cexpr":
        _, op, i, spec, expr, left = instr
        c = CONST_EXPRS[expr](nc.as_tensor(np.asarray(_const(spec, vals[i].dtype))))
        return BINARY[op](c, vals[i]) if left else BINARY[op](vals[i], c)
    if kind == "tsandwich":  # T^-1(f(T(x))): the layout pass moves T down to cancel it
        _, op, i, perm = instr
        inverse = tuple(int(a) for a in np.argsort(perm))
        return nc.transpose(UNARY[op](nc.transpose(vals[i], perm)), inverse)
    if kind == "tbinary":  # f(T(x), T(y)) or f(T(x), scalar)
        _, op, i, j, perm = instr
        y = nc.transpose(vals[j], perm) if vals[j].ndim else vals[j]
        return BINARY[op](nc.transpose(vals[i], perm), y)
    if kind == "where":
        _, cmp, i, j, k, m, negate = instr
        cond = COMPARE[cmp](vals[i], vals[j] if j is not None else 0.0)
        if negate:
            cond = nc.logical_not(cond)
        return nc.where(cond, vals[k], vals[m])
    if kind == "reduce":
        _, op, i, axes, keepdims = instr
        return REDUCE[op](vals[i], axis=axes, keepdims=keepdims)
    if kind == "matmul":
        _, i, j, how = instr
        a = vals[i]
        if how == "other":
            return nc.matmul(a, vals[j])
        perm = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
        at = nc.transpose(a, perm)
        return nc.matmul(a, at) if how == "a_at" else nc.matmul(at, a)
    if kind == "reshape":
        return nc.reshape(vals[instr[1]], instr[2])
    if kind == "transpose":
        return nc.transpose(vals[instr[1]], instr[2])
    if kind == "getitem":
        return vals[instr[1]][instr[2]]
    if kind == "expand":
        return nc.broadcast_to(vals[instr[1]], instr[2])
    if kind == "cast":
        return nc.astype(vals[instr[1]], instr[2])
    if kind == "concat":
        return nc.concatenate([vals[i] for i in instr[1]], axis=instr[2])
    raise AssertionError(instr)


@dataclass
class Program:
    inputs: list[np.ndarray]
    instrs: list[tuple] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def fn(self, *xs):
        vals = list(xs)
        for instr in self.instrs:
            if instr[0] == "repeat":
                instr = self.instrs[instr[1]]
            vals.append(apply(instr, vals))
        return tuple(vals[i] for i in self.outputs)

    def __repr__(self) -> str:
        shapes = [(a.shape, str(a.dtype)) for a in self.inputs]
        body = "\n".join(f"  v{len(self.inputs) + k} = {ins}" for k, ins in enumerate(self.instrs))
        return f"Program(inputs={shapes}\n{body}\n  outputs={self.outputs})"


def _bcast(*shapes) -> tuple | None:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        return None


class _Gen:
    """Random choices from one seed (uniform, unlike Hypothesis' small-value bias)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, seq):
        seq = list(seq)
        return seq[self.int(0, len(seq) - 1)]

    def coin(self, p_true: int = 1, out_of: int = 2) -> bool:
        return self.int(1, out_of) <= p_true


def _input_array(shape, dtype, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape) * rng.choice([1.0, 3.0])
    special = rng.random(shape) < 0.15
    a = np.where(special, rng.choice([0.0, -0.0, 1.0, 2.0, -1.0], size=shape), a)
    return np.asarray(a, dtype=dtype)


def random_program(seed: int, max_instrs: int = 20) -> Program:
    """A random DSL program (see the module docstring), a function of ``seed``."""
    g = _Gen(seed)
    dtype = g.pick([np.float32, np.float64])
    rank = g.int(0, 3)
    base = tuple(g.int(1, 4) for _ in range(rank))
    shapes = [base]
    for _ in range(g.int(0, 2)):
        how = g.int(0, 3)
        if how == 0:
            shapes.append(base)
        elif how == 1:  # some dims -> 1 (broadcasts against the base)
            shapes.append(tuple(d if g.coin() else 1 for d in base))
        elif how == 2:  # a suffix of the base
            shapes.append(base[g.int(0, rank) :])
        else:  # anything
            shapes.append(tuple(g.int(1, 4) for _ in range(g.int(0, 3))))
    dtypes = [dtype if g.coin(7, 8) else np.float64 for _ in shapes]
    seed = g.int(0, 2**16)
    pairs = zip(shapes, dtypes, strict=True)
    inputs = [_input_array(s, d, seed + k) for k, (s, d) in enumerate(pairs)]
    prog = Program(inputs)

    vals: list = [nc.as_tensor(a) for a in inputs]
    meta: list[dict] = [{"op": "input", "exp": False, "log": False} for _ in inputs]
    n = g.int(3, max_instrs)
    while len(prog.instrs) < n:
        instr, flags = _draw_instr(g, prog, vals, meta)
        if instr is None:
            continue
        out = apply(prog.instrs[instr[1]] if instr[0] == "repeat" else instr, vals)
        prog.instrs.append(instr)
        vals.append(out)
        meta.append(flags)
    n_out = g.int(1, 3)
    candidates = range(len(vals))
    # Later values are likelier outputs; earlier ones then are often dead.
    prog.outputs = [
        g.pick(candidates) if g.coin(1, 4) else g.int(max(0, len(vals) - 3), len(vals) - 1)
        for _ in range(n_out)
    ]
    return prog


def _flags(kind: str, op: str, operands: list[dict]) -> dict:
    transparent = kind in TRANSPARENT or op == "neg"
    exp = op == "exp" or (transparent and any(m["exp"] for m in operands))
    log = op == "log" or (transparent and any(m["log"] for m in operands))
    return {"op": op, "exp": exp, "log": log}


def _draw_instr(g: _Gen, prog: Program, vals: list, meta: list[dict]):
    i = g.int(0, len(vals) - 1)
    x = vals[i]
    shape = x.shape
    kind = g.pick(
        ["unary"] * 4
        + ["binary"] * 3
        + ["cbin"] * 5
        + ["where"] * 2
        + ["reduce"] * 3
        + ["matmul", "reshape", "reshape", "transpose", "transpose", "getitem", "getitem"]
        + ["expand", "cast", "concat", "repeat", "repeat"]
        + ["cexpr", "cexpr", "tsandwich", "tsandwich", "tbinary"]
    )
    if kind == "unary":
        op = g.pick(UNARY)
        if op == "exp" and meta[i]["log"]:
            op = "tanh"  # exp(log(exp(.))) -> exp(.) is not exact (see test_nc_passes_rules)
        return ("unary", op, i), _flags(kind, op, [meta[i]])
    if kind == "binary":
        js = [j for j in range(len(vals)) if _bcast(shape, vals[j].shape) is not None]
        j = g.pick(js)
        op = g.pick(BINARY)
        return ("binary", op, i, j), _flags(kind, op, [meta[i], meta[j]])
    if kind == "cbin":
        op = g.pick(BINARY)
        if g.coin(3, 5):
            spec = ("scalar", g.pick(SCALARS))
        else:
            how = g.int(0, 4)
            if how == 0:
                cshape = shape
            elif how == 1:
                cshape = ()
            elif how == 2:
                cshape = shape[g.int(0, len(shape)) :]
            elif how == 3:
                cshape = tuple(d if g.coin() else 1 for d in shape)
            else:  # broadcasts x up: x + 0 must stay
                cshape = (g.int(2, 3),) + shape
            dt = "float64" if g.coin(1, 8) else None
            spec = ("array", cshape, g.pick(FILLS), g.int(0, 99), dt)
        left = op != "pow" and g.coin()
        return ("cbin", op, i, spec, left), _flags(kind, op, [meta[i]])
    if kind == "cexpr":
        op = g.pick(BINARY)
        cshape = g.pick([(), shape, shape[g.int(0, len(shape)) :]])
        spec = ("array", cshape, g.pick(FILLS), g.int(0, 99), None)
        left = op != "pow" and g.coin()
        return ("cexpr", op, i, spec, g.pick(CONST_EXPRS), left), _flags(kind, op, [meta[i]])
    if kind in ("tsandwich", "tbinary"):
        if len(shape) < 2:
            return None, None
        perm = tuple(int(a) for a in g.rng.permutation(len(shape)))
        if kind == "tsandwich":
            op = g.pick(UNARY)
            if op == "exp" and meta[i]["log"]:
                op = "tanh"
            return ("tsandwich", op, i, perm), _flags("unary", op, [meta[i]])
        js = [j for j in range(len(vals)) if vals[j].shape in (shape, ())]
        j = g.pick(js)
        op = g.pick(BINARY)
        return ("tbinary", op, i, j, perm), _flags(kind, op, [meta[i], meta[j]])
    if kind == "where":
        cmp = g.pick(COMPARE)
        js = [j for j in range(len(vals)) if _bcast(shape, vals[j].shape) is not None]
        j = g.pick(js) if g.coin(2, 3) else None
        cshape = _bcast(shape, vals[j].shape) if j is not None else shape
        ks = [k for k in range(len(vals)) if _bcast(cshape, vals[k].shape) is not None]
        k = g.pick(ks)
        m = k if g.coin(1, 3) else g.pick(ks)  # where(c, x, x)
        if _bcast(cshape, vals[k].shape, vals[m].shape) is None:
            m = k
        instr = ("where", cmp, i, j, k, m, g.coin(1, 4))
        return instr, _flags(kind, "where", [meta[k], meta[m]])
    if kind == "reduce":
        op = g.pick(REDUCE)
        rank = len(shape)
        if rank == 0 or g.coin(1, 6):
            axes = None
        else:
            picked = [a for a in range(rank) if g.coin()]
            # prefer size-1 axes sometimes, so the size-1 rule fires
            if g.coin(1, 3):
                picked = [a for a in range(rank) if shape[a] == 1] or picked
            axes = tuple(a - rank if g.coin() else a for a in picked)
        keepdims = g.coin()
        if op == "sum" and keepdims and meta[i]["exp"]:
            keepdims = False  # keep naive softmax (exp(x) / sum(exp(x), keepdims)) out
        return ("reduce", op, i, axes, keepdims), _flags(kind, op, [meta[i]])
    if kind == "matmul":
        if len(shape) < 1:
            return None, None
        if len(shape) == 1:
            js = [j for j in range(len(vals)) if vals[j].shape[:1] == shape and vals[j].ndim <= 2]
            return ("matmul", i, g.pick(js), "other"), _flags(kind, "matmul", [])
        js = [
            j for j in range(len(vals)) if vals[j].ndim in (1, 2) and vals[j].shape[0] == shape[-1]
        ]
        if js and g.coin():
            return ("matmul", i, g.pick(js), "other"), _flags(kind, "matmul", [])
        return ("matmul", i, None, g.pick(["a_at", "at_a"])), _flags(kind, "matmul", [])
    if kind == "reshape":
        size = int(np.prod(shape))
        options = [(-1,), shape + (1,), (1,) + shape, tuple(d for d in shape if d != 1)]
        divisors = [d for d in range(1, size + 1) if size % d == 0]
        options.append((g.pick(divisors), -1))
        if meta[i]["op"] == "reshape":  # reshape back: reshape(reshape(x)) -> x
            options.append(vals[prog_input_of(prog, i, len(vals))].shape)
        target = g.pick(options)
        return ("reshape", i, target), _flags(kind, "reshape", [meta[i]])
    if kind == "transpose":
        perm = list(range(len(shape)))
        for a in range(len(perm) - 1, 0, -1):
            b = g.int(0, a)
            perm[a], perm[b] = perm[b], perm[a]
        return ("transpose", i, tuple(perm)), _flags(kind, "transpose", [meta[i]])
    if kind == "getitem":
        if not shape:
            return None, None
        index = []
        for d in shape:
            c = g.int(0, 5)
            if c == 0:
                index.append(slice(None))
            elif c == 1 and g.coin(1, 3):
                index.append(g.int(-d, d - 1))
            else:
                step = g.pick([1, 2, -1, -2, 3, -3])
                start = g.pick([None, g.int(-d - 1, d + 1)])
                stop = g.pick([None, g.int(-d - 1, d + 1)])
                s = slice(start, stop, step)
                if len(range(*s.indices(d))) == 0:
                    s = slice(None, None, step)
                index.append(s)
        if g.coin(1, 6):
            index.insert(g.int(0, len(index)), None)
        return ("getitem", i, tuple(index)), _flags(kind, "getitem", [meta[i]])
    if kind == "expand":
        if g.coin():
            target = (g.int(1, 3),) + shape
        else:
            target = tuple(3 if d == 1 else d for d in shape)
        return ("expand", i, target), _flags(kind, "expand", [meta[i]])
    if kind == "cast":
        to = "float32" if x.dtype == np.float64 else "float64"
        return ("cast", i, to), _flags(kind, "cast", [meta[i]])
    if kind == "concat":
        if not shape:
            return None, None
        same = [j for j in range(len(vals)) if vals[j].shape == shape]
        parts = [i] if g.coin() else [i, g.pick(same)]
        axis = g.int(-len(shape), len(shape) - 1)
        return ("concat", parts, axis), _flags(kind, "concat", [meta[p] for p in parts])
    if kind == "repeat":
        if not prog.instrs:
            return None, None
        k = g.int(0, len(prog.instrs) - 1)
        while prog.instrs[k][0] == "repeat":
            k = prog.instrs[k][1]
        return ("repeat", k), dict(meta[len(prog.inputs) + k])
    raise AssertionError(kind)


def prog_input_of(prog: Program, i: int, n_vals: int) -> int:
    """Index of the operand of value i (which was made by a reshape instruction)."""
    instr = prog.instrs[i - len(prog.inputs)]
    if instr[0] == "repeat":
        instr = prog.instrs[instr[1]]
    return instr[1]


# ---- fusion invariants --------------------------------------------------------------------

KINDS = {"elementwise", "reduction", "contraction", "opaque"}


def check_fusion_invariants(graph) -> None:
    """Everything a fusion partition (``fuse`` / ``optimize(level=2)``) must satisfy."""
    groups = graph.fusion_groups
    assert groups is not None, "graph was not fused"
    nodes = graph.nodes
    position = {id(n): k for k, n in enumerate(nodes)}
    real = [n for n in nodes if n.op != "constant"]
    group_of: dict[int, int] = {}
    for gi, grp in enumerate(groups):
        assert grp.nodes, f"empty group {grp}"
        for n in grp.nodes:
            assert id(n) in position, f"{n} of {grp} is not a node of the graph"
            assert n.op != "constant", f"constant {n} in {grp}"
            assert id(n) not in group_of, f"{n} is in two groups"
            group_of[id(n)] = gi
    missing = [n.name for n in real if id(n) not in group_of]
    assert not missing, f"nodes in no group: {missing}"
    assert len(group_of) == len(real)

    used_outside = {id(v) for v in graph.outputs}
    for n in nodes:
        for v in n.inputs:
            p = v.producer
            if p is not None and p.op != "constant" and group_of.get(id(n)) != group_of[id(p)]:
                used_outside.add(id(v))

    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(groups)))
    for gi, grp in enumerate(groups):
        assert grp.kind in KINDS, grp.kind
        members = {id(n) for n in grp.nodes}
        # nodes in graph order (a valid order within the kernel)
        pos = [position[id(n)] for n in grp.nodes]
        assert pos == sorted(pos), f"{grp}: nodes out of order"
        # inputs: exactly the values read from outside, each produced outside
        want_in: list = []
        for n in grp.nodes:
            for v in n.inputs:
                if (v.producer is None or id(v.producer) not in members) and all(
                    w is not v for w in want_in
                ):
                    want_in.append(v)
        assert [id(v) for v in grp.inputs] == [id(v) for v in want_in], f"{grp}: inputs"
        for v in grp.inputs:
            p = v.producer
            if p is None or p.op == "constant":
                continue  # graph input or constant
            src = group_of[id(p)]
            assert src < gi, f"{grp} reads %{v.name} of a later group {groups[src]}"
            dag.add_edge(src, gi)
        # outputs: produced inside, and used outside or a graph output; and all of those
        produced = [v for n in grp.nodes for v in n.outputs]
        want_out = [v for v in produced if id(v) in used_outside]
        assert [id(v) for v in grp.outputs] == [id(v) for v in want_out], f"{grp}: outputs"
        # kinds and what they contain
        classes = [node_class(n) for n in grp.nodes]
        if grp.kind == "elementwise":
            assert set(classes) == {"injective"}, (grp, classes)
            assert all(v.type.size in (grp.numel, 1) for v in produced), grp
        elif grp.kind == "reduction":
            assert "reduction" in classes and set(classes) <= {"injective", "reduction"}, grp
            assert grp.anchor is not None and node_class(grp.anchor) == "reduction"
            row_numel = int(np.prod(grp.row_shape))
            for v in produced:  # the row space (or a prologue over as many elements),
                assert v.type.size in (row_numel, grp.numel, 1), (grp, v)  # outer, scalar
            for n in grp.nodes:
                if node_class(n) == "reduction":
                    assert n.inputs[0].shape == grp.row_shape, (grp, n)
        elif grp.kind == "contraction":
            contractions = [n for n in grp.nodes if op_class(n.op) == "contraction"]
            assert len(contractions) == 1, (grp, contractions)
            assert grp.anchor is contractions[0]
            assert set(classes) <= {"injective", "contraction"}, (grp, classes)
        else:
            assert len(grp.nodes) == 1 and classes == ["opaque"], grp
        assert grp.name.startswith(f"k{gi}_"), grp.name
    assert nx.is_directed_acyclic_graph(dag)

    names = {n.name: n for n in nodes}
    for r in graph.fusion_rejections:
        assert r.producer in names and r.consumer in names, r
        consumer = names[r.consumer]
        assert any(v.producer is names[r.producer] for v in consumer.inputs), r
        assert isinstance(r.reason, str) and r.reason, r
