"""The loop-level kernel IR, shared by every code generator.

A ``Kernel`` is a function over named buffers (flat, row-major arrays) whose body is a
list of statements: loops (with parallel / vector hints), stores at computed indices,
scalar lets, mutable accumulators, conditionals, and *templates* (``Gemm``) for the
compute-heavy loop nests each backend implements its own way. Expressions are small
immutable trees: constants, variables, loads, unary/binary arithmetic, selects and
casts. Index arithmetic is int64 (``INDEX``); broadcasting is just an index that does
not depend on a loop variable (stride 0).

Lowering (``nncompile.lowering``) turns each fusion group into one Kernel; the LLVM and
CUDA back ends render Kernels and never re-derive fusion or indexing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import dtypes as dt
from .dtypes import DType

INDEX = dt.int64  # the type of loop variables and index arithmetic

UNARY_OPS = ("neg", "abs", "sign", "exp", "log", "sqrt", "tanh", "sigmoid", "erf", "not", "floor")
BINARY_OPS = (
    "add",
    "sub",
    "mul",
    "div",
    "idiv",
    "mod",
    "max",
    "min",
    "pow",
    "and",
    "or",
    "xor",
    "shl",
    "lshr",
)
COMPARE_OPS = ("lt", "le", "gt", "ge", "eq", "ne")


# ---- expressions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    value: float | int | bool
    dtype: DType


@dataclass(frozen=True)
class Var:
    name: str
    dtype: DType


@dataclass(frozen=True)
class Load:
    buffer: str
    index: Expr
    dtype: DType


@dataclass(frozen=True)
class Unary:
    op: str
    x: Expr
    dtype: DType


@dataclass(frozen=True)
class Binary:
    """Arithmetic on two operands of ``dtype``; comparisons give bool (``dtype`` is bool
    and ``operand_dtype`` says what is compared). ``idiv`` truncates toward zero;
    ``lshr`` is a logical shift; int ``mul``/``add`` wrap."""

    op: str
    a: Expr
    b: Expr
    dtype: DType


@dataclass(frozen=True)
class Select:
    cond: Expr
    a: Expr
    b: Expr
    dtype: DType


@dataclass(frozen=True)
class Cast:
    x: Expr
    dtype: DType


Expr = Const | Var | Load | Unary | Binary | Select | Cast


def children(e: Expr) -> tuple[Expr, ...]:
    """The operands of an expression (a load's index counts as one)."""
    if isinstance(e, Load):
        return (e.index,)
    if isinstance(e, (Unary, Cast)):
        return (e.x,)
    if isinstance(e, Binary):
        return (e.a, e.b)
    if isinstance(e, Select):
        return (e.cond, e.a, e.b)
    return ()


# ---- statements --------------------------------------------------------------------------


@dataclass
class Loop:
    var: str
    extent: Expr | int
    body: list[Stmt]
    parallel: bool = False  # iterations are independent: may run on several threads
    vectorize: bool = False  # innermost, unit-stride: worth vectorizing
    # Iterations are independent but too few to be worth CPU threads (``parallel`` is
    # off): a GPU still runs them on separate threads.
    independent: bool = False


@dataclass
class Store:
    buffer: str
    index: Expr
    value: Expr


@dataclass
class Let:
    """An immutable scalar, visible in the rest of the enclosing block."""

    name: str
    value: Expr


@dataclass
class Local:
    """A mutable scalar (an accumulator), declared with its initial value."""

    name: str
    dtype: DType
    init: Expr


@dataclass
class Assign:
    name: str
    value: Expr


@dataclass
class If:
    cond: Expr
    then: list[Stmt]
    otherwise: list[Stmt] = field(default_factory=list)


@dataclass
class Gemm:
    """C[b, i, j] (+)= sum_p A[b, i, p] * B[b, p, j] for b < batch, i < m, j < n, p < k.

    Element (b, i, p) of A is at ``a_offset + b*a_strides[0] + i*a_strides[1] +
    p*a_strides[2]`` in buffer ``a`` (and likewise for B and C), so transposed operands
    and broadcast batches (stride 0) need no copies. A backend picks its own blocking;
    ``tile`` carries tuning parameters (e.g. mr, nr, kc, nc)."""

    a: str
    b: str
    c: str
    batch: int
    m: int
    n: int
    k: int
    a_strides: tuple[int, int, int]
    b_strides: tuple[int, int, int]
    c_strides: tuple[int, int, int]
    a_offset: Expr | int = 0
    b_offset: Expr | int = 0
    c_offset: Expr | int = 0
    accumulate: bool = False
    dtype: DType = dt.float32
    tile: dict = field(default_factory=dict)


Stmt = Loop | Store | Let | Local | Assign | If | Gemm


@dataclass(frozen=True)
class BufferParam:
    name: str
    dtype: DType
    size: int  # elements


@dataclass
class Kernel:
    name: str
    params: list[BufferParam]
    body: list[Stmt]
    comment: str = ""  # the source ops, for readers of the generated code


# ---- helpers for building index arithmetic ---------------------------------------------


def const_index(v: int) -> Const:
    return Const(int(v), INDEX)


def _fold(op: str, a: Expr, b: Expr) -> Expr | None:
    if isinstance(a, Const) and isinstance(b, Const):
        x, y = int(a.value), int(b.value)
        if op == "add":
            return const_index(x + y)
        if op == "mul":
            return const_index(x * y)
        if op == "sub":
            return const_index(x - y)
    return None


def iadd(a: Expr, b: Expr) -> Expr:
    if isinstance(b, Const) and b.value == 0:
        return a
    if isinstance(a, Const) and a.value == 0:
        return b
    return _fold("add", a, b) or Binary("add", a, b, INDEX)


def isub(a: Expr, b: Expr) -> Expr:
    if isinstance(b, Const) and b.value == 0:
        return a
    return _fold("sub", a, b) or Binary("sub", a, b, INDEX)


def imul(a: Expr, b: Expr) -> Expr:
    for x, y in ((a, b), (b, a)):
        if isinstance(x, Const) and x.value == 1:
            return y
        if isinstance(x, Const) and x.value == 0:
            return const_index(0)
    return _fold("mul", a, b) or Binary("mul", a, b, INDEX)


def idiv(a: Expr, b: int) -> Expr:
    if b == 1:
        return a
    if isinstance(a, Const):
        return const_index(int(a.value) // b)
    return Binary("idiv", a, const_index(b), INDEX)  # operands are >= 0: floor == trunc


def imod(a: Expr, b: int) -> Expr:
    if b == 1:
        return const_index(0)
    if isinstance(a, Const):
        return const_index(int(a.value) % b)
    return Binary("mod", a, const_index(b), INDEX)


def linearize(index: list[Expr], shape: tuple[int, ...]) -> Expr:
    """Row-major flat offset of a multi-index (dims of size 1 contribute nothing)."""
    flat: Expr = const_index(0)
    stride = 1
    for i, d in reversed(list(zip(index, shape, strict=True))):
        if d != 1:
            flat = iadd(flat, imul(i, const_index(stride)))
        stride *= d
    return flat


def delinearize(flat: Expr, shape: tuple[int, ...]) -> list[Expr]:
    out: list[Expr] = []
    stride = 1
    strides = []
    for d in reversed(shape):
        strides.append(stride)
        stride *= d
    strides.reverse()
    for k, (d, s) in enumerate(zip(shape, strides, strict=True)):
        if d == 1:
            out.append(const_index(0))
        elif k == 0 or all(x == 1 for x in shape[:k]):
            out.append(idiv(flat, s))  # flat < numel: the outermost index needs no modulo
        else:
            out.append(imod(idiv(flat, s), d))
    return out


def walk(body: list[Stmt]):
    """Every statement of ``body`` and of the blocks nested in it, without recursion
    (an unrolled loop's kernels nest deeply)."""
    stack = list(reversed(body))
    while stack:
        s = stack.pop()
        yield s
        if isinstance(s, Loop):
            stack.extend(reversed(s.body))
        elif isinstance(s, If):
            stack.extend(reversed(s.otherwise))
            stack.extend(reversed(s.then))
