"""Kernel IR -> one CUDA C translation unit (pure code generation: no GPU, no CUDA library).

Each kernel's top-level statements become launches, in order; launches on one stream run
one after another, which gives the ordering the CPU backend gets from running statements
in sequence:

- a parallel loop (its iterations are independent) becomes an ``extern "C" __global__``
  function whose threads take the iterations in a grid-stride loop;
- any other loop, ``if`` or store runs on a single thread (serial accumulations);
- a GEMM becomes a launch of a register-tiled matrix product (plus one adding the
  partial tiles when K is split to give a small product enough blocks).

Scalars a kernel computes once before its loops (``let``/``local``) are recomputed at the
start of every launch that needs them. Semantics follow the LLVM backend: integer
division by zero gives 0, float -> int casts saturate (NaN -> 0), max/min propagate NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...ir import dtypes as dt
from ...ir.kernel import (
    Binary,
    Cast,
    Const,
    Expr,
    Load,
    Select,
    Unary,
    Var,
    children,
    postorder,
)
from ...ir.ops.unary import LIBM
from ...ir.symbolic import SYMBOL, Dim, evaluate

BLOCK = 256  # threads per block of a grid-stride launch
MAX_BLOCKS = 65535  # the grid-stride loop covers the rest
WORKSPACE = "nc_workspace"  # the argument naming the executable's split-K workspace

C_TYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t"}
UNSIGNED = {"int32": "uint32_t", "int64": "uint64_t"}


def reg_type(d: dt.DType) -> str:
    return "bool" if d.is_bool else C_TYPES[d.name]


def mem_type(d: dt.DType) -> str:
    return "uint8_t" if d.is_bool else C_TYPES[d.name]


@dataclass(frozen=True)
class Blocks:
    """A grid dimension that depends on the batch size: ``ceil(size / per)`` blocks, at
    least 1 and at most ``most`` (when given), counted for each call's n."""

    size: Dim
    per: int = BLOCK
    most: int | None = MAX_BLOCKS

    def count(self, n: int) -> int:
        return _block_count(evaluate(self.size, n), self.per, self.most)

    def __str__(self) -> str:
        most = f", at most {self.most}" if self.most is not None else ""
        return f"ceil(({self.size})/{self.per}){most}"

    __repr__ = __str__


GridSize = int | Blocks


@dataclass(frozen=True)
class Launch:
    """One kernel launch: ``function`` with ``grid`` x ``block`` threads (3-D for GEMMs).
    In a dynamic-batch program every function also takes the batch size ``n`` (after its
    buffers) and a grid dimension may be counted per call (``Blocks``)."""

    function: str
    kind: str  # "grid-stride", "single", "block" or "gemm"
    grid: tuple[GridSize, GridSize, GridSize]
    block: tuple[int, int, int]
    params: tuple[str, ...]  # buffer names, in argument order
    arg_types: tuple[str, ...] = ()  # their C element types (the arguments are pointers)
    workspace: int | Dim = 0  # bytes of scratch it needs as WORKSPACE (split-K partial tiles)
    batch_size: bool = False  # takes n as its last argument

    def grid_at(self, n: int) -> tuple[int, int, int]:
        return tuple(g.count(n) if isinstance(g, Blocks) else g for g in self.grid)


def blocks(size: int | Dim, per: int = BLOCK, most: int | None = MAX_BLOCKS) -> GridSize:
    """Blocks for ``size`` items, ``per`` block (rounded up), at least 1 and at most
    ``most``: counted now, or for each call when the size depends on the batch size."""
    return Blocks(size, per, most) if type(size) is Dim else _block_count(size, per, most)


def _block_count(size: int, per: int, most: int | None) -> int:
    count = max(1, -(-size // per))
    return count if most is None else min(count, most)


def grid_stride_blocks(extent: int | Dim) -> GridSize:
    """Blocks for ``extent`` iterations of a grid-stride loop: enough for one iteration per
    thread (rounded up), at least 1, at most MAX_BLOCKS."""
    return blocks(extent)


def size_text(size: int | Dim) -> str:
    """A size as a C int64 expression (``n`` is the kernel's batch-size argument)."""
    if type(size) is Dim:
        return f"({size.scale}LL * {SYMBOL} + {size.offset}LL)"
    return f"{size}LL"


@dataclass
class CudaSource:
    source: str
    launches: list[Launch]


# ---- expressions ---------------------------------------------------------------------------


def literal(value: object, d: dt.DType) -> str:
    if d.is_bool:
        return "true" if value else "false"
    if d.is_float:
        v = float(value)
        suffix = "f" if d.name == "float32" else ""
        if math.isnan(v):
            return f"nc_nan<{reg_type(d)}>()"
        if math.isinf(v):
            return f"{'-' if v < 0 else ''}nc_inf<{reg_type(d)}>()"
        text = repr(v)
        if "e" not in text and "." not in text:
            text += ".0"
        return f"{text}{suffix}"
    v = int(value)
    if d.name == "int64":
        return "(-9223372036854775807LL - 1)" if v == -(2**63) else f"{v}LL"
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


_FLOAT_FN = LIBM  # kernel op -> C function (overloaded for float and double), ir/ops/unary.py
# C operators of the binary ops that have one (comparisons give bool)
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "and": "&", "or": "|", "xor": "^"}
_SYMBOL.update({"shl": "<<", "lshr": ">>"})
_COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


class ExprPrinter:
    """Expressions as C; a subexpression used more than once is computed once into a
    named constant placed just before the first statement that needs it.

    Like the LLVM backend, an expression object shared by several statements of a block
    is computed once for all of them (``shared``, ``memo``): the kernel IR relies on it
    when a donated input and the output written over it share memory (``p_new =
    p - lr * (m * buf + g)`` after ``buf_new = m * buf + g`` must see the old ``buf``).
    Expressions reading a mutable local are recomputed at each use."""

    def __init__(self, shared: set[int] = frozenset(), mutable: set[str] = frozenset()):
        self.counter = 0
        self.loop_vars: set[str] = set()  # bounded by their extents: affine index math
        self.shared = shared  # ids of expressions used by more than one statement
        self.mutable = mutable  # names of locals (assigned after their declaration)
        self.memo: list[dict[int, str]] = [{}]  # one layer per open C block
        self._reads: dict[int, tuple[Expr, bool]] = {}  # reads_mutable, by expression

    def push(self) -> None:
        self.memo.append({})

    def pop(self) -> None:
        self.memo.pop()

    def reads_mutable(self, e: Expr) -> bool:
        # Operands first, each expression object once (expressions are DAGs).
        for x in postorder([e], lambda x: id(x) in self._reads and self._reads[id(x)][0] is x):
            reads = isinstance(x, Var) and x.name in self.mutable
            self._reads[id(x)] = (x, reads or any(self._reads[id(c)][1] for c in children(x)))
        return self._reads[id(e)][1]

    def affine(self, e: Expr) -> bool:
        """Integer arithmetic on constants and loop variables only: an index, which cannot
        overflow, so it prints as plain C arithmetic instead of wrapping arithmetic."""
        if isinstance(e, Const):
            return not e.dtype.is_float and not e.dtype.is_bool
        if isinstance(e, Var):
            return e.name in self.loop_vars
        if isinstance(e, Binary) and e.op in ("add", "sub", "mul"):
            return self.affine(e.a) and self.affine(e.b)
        return False

    def statement(self, exprs: list[Expr]) -> tuple[list[str], list[str]]:
        """(declarations to put first, the C text of each expression)."""
        uses: dict[int, int] = {}

        def count(e: Expr) -> None:
            uses[id(e)] = uses.get(id(e), 0) + 1
            if uses[id(e)] == 1:
                for c in children(e):
                    count(c)

        for e in exprs:
            count(e)
        names: dict[int, str] = {}
        decls: list[str] = []

        def text(e: Expr) -> str:
            if id(e) in names:
                return names[id(e)]
            for layer in reversed(self.memo):
                if id(e) in layer:
                    return layer[id(e)]
            out = self._render(e, text)
            if isinstance(e, (Const, Var)):
                return out
            remembered = id(e) in self.shared and not self.reads_mutable(e)
            if uses[id(e)] > 1 or remembered:
                self.counter += 1
                name = f"nc_e{self.counter}"  # kernel IR names never start with nc_
                decls.append(f"const {reg_type(e.dtype)} {name} = {out};")
                names[id(e)] = name
                if remembered:
                    self.memo[-1][id(e)] = name
                return name
            return out

        return decls, [text(e) for e in exprs]

    def _render(self, e: Expr, text) -> str:
        if isinstance(e, Const):
            return literal(e.value, e.dtype)
        if isinstance(e, Var):
            return e.name
        if isinstance(e, Load):
            at = f"{e.buffer}[{text(e.index)}]"
            return f"({at} != 0)" if e.dtype.is_bool else at
        if isinstance(e, Select):
            return f"({text(e.cond)} ? {text(e.a)} : {text(e.b)})"
        if isinstance(e, Cast):
            return cast(text(e.x), e.x.dtype, e.dtype)
        if isinstance(e, Unary):
            return unary(e.op, text(e.x), e.x.dtype)
        if isinstance(e, Binary):
            if e.op in ("add", "sub", "mul") and self.affine(e):
                return f"({text(e.a)} {_SYMBOL[e.op]} {text(e.b)})"
            return binary(e.op, text(e.a), text(e.b), e.a.dtype)
        raise TypeError(f"unknown expression {e!r}")


def unary(op: str, x: str, d: dt.DType) -> str:
    t = reg_type(d)
    if op == "not":  # logical on bools, bitwise on ints
        return f"(!{x})" if d.is_bool else f"(({t})~{x})"
    if d.is_float:
        if op == "neg":
            return f"(-{x})"
        if op == "abs":
            return f"fabs({x})"
        if op == "floor":
            return f"floor({x})"
        if op == "round_bf16" and d == dt.float32:
            return f"nc_round_bf16({x})"
        if op == "sign":
            return f"nc_sign<{t}>({x})"
        if op == "sigmoid":
            return f"nc_sigmoid<{t}>({x})"
        if op in _FLOAT_FN:
            return f"{_FLOAT_FN[op]}({x})"
    elif not d.is_bool:
        u = UNSIGNED[d.name]
        if op == "neg":
            return f"(({t})(({u})0 - ({u}){x}))"
        if op == "abs":
            return f"nc_iabs<{t}, {u}>({x})"
        if op == "sign":
            return f"(({t})(({x}) > 0) - ({t})(({x}) < 0))"
    raise NotImplementedError(f"CUDA backend: unary {op} on {d}")


def binary(op: str, a: str, b: str, d: dt.DType) -> str:
    if op in _COMPARE:
        return f"({a} {_COMPARE[op]} {b})"
    t = reg_type(d)
    if op in ("and", "or", "xor"):
        return f"(({t})({a} {_SYMBOL[op]} {b}))"
    if d.is_float:
        if op in ("add", "sub", "mul", "div"):
            return f"({a} {_SYMBOL[op]} {b})"
        if op in ("max", "min"):
            return f"nc_f{op}<{t}>({a}, {b})"
        if op == "pow":
            return f"pow({a}, {b})"
    elif d.is_bool:
        if op == "max":
            return f"({a} || {b})"
        if op == "min":
            return f"({a} && {b})"
    else:
        u = UNSIGNED[d.name]
        if op in ("add", "sub", "mul", "shl", "lshr"):  # wrap around, as the CPU does
            rhs = b if op in ("shl", "lshr") else f"({u}){b}"
            return f"(({t})(({u}){a} {_SYMBOL[op]} {rhs}))"
        if op in ("idiv", "mod"):
            return f"nc_{op}<{t}>({a}, {b})"
        if op in ("max", "min"):
            return f"nc_i{op}<{t}>({a}, {b})"
    raise NotImplementedError(f"CUDA backend: binary {op} on {d}")


def cast(x: str, src: dt.DType, dst: dt.DType) -> str:
    if src == dst:
        return x
    if dst.is_bool:
        return f"({x} != 0)"  # NaN != 0 is true, as on the CPU
    if src.is_float and not dst.is_float:
        return f"nc_f2i<{reg_type(dst)}>({x})"
    return f"(({reg_type(dst)})({x}))"
