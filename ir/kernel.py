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

Depth: a fused chain of thousands of ops is one expression that deep, so nothing here
recurses on expression depth (hashing, equality, ``postorder``). Lowering then binds
subexpressions to lets (``kernel_depth.bound_depth``) so that no expression a back end
sees is deeper than ``MAX_DEPTH``, and back ends may walk expressions recursively.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields

from . import dtypes as dt
from .dtypes import DType
from .ops.binary import KERNEL_BINARY_OPS, KERNEL_COMPARE_OPS
from .ops.unary import KERNEL_UNARY_OPS
from .precision import bf16_products, current_precision
from .symbolic import SYMBOL, Dim

INDEX = dt.int64  # the type of loop variables and index arithmetic

UNARY_OPS = KERNEL_UNARY_OPS  # declared with the graph ops in ir/ops/unary.py
BINARY_OPS = KERNEL_BINARY_OPS  # declared with the graph ops in ir/ops/binary.py
COMPARE_OPS = KERNEL_COMPARE_OPS


# ---- expressions -------------------------------------------------------------------------


class UnknownNodeError(TypeError):
    """A statement or expression kind the kernel IR does not define (see kernel_visit)."""


MAX_DEPTH = 48  # the deepest expression lowering hands to a back end (see kernel_depth.py)


class _Node:
    """Structural equality and hashing that never recurse: a node's hash is computed when
    it is built, from its operands' stored hashes, and equality compares pairs of nodes
    from an explicit stack (identical or differently hashed pairs end at once). Index
    arithmetic is a DAG (a reshape's indices all divide one flat index), exponential as a
    tree, so a pair of nodes is compared once."""

    __slots__ = ()
    _operands: tuple[str, ...] = ()  # the fields holding subexpressions
    _scalars: tuple[str, ...] = ()  # the other fields

    # Each class's __post_init__ stores ``_hash``, from its operands' hashes (lowering builds
    # hundreds of thousands of expressions: written out per class, and a dtype hashed by
    # its name, as hashing the DType dataclass is slow).

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Node):
            return NotImplemented
        stack = [(self, other)]
        compared: set[tuple[int, int]] = set()
        while stack:
            x, y = stack.pop()
            if x is y or (id(x), id(y)) in compared:
                continue
            compared.add((id(x), id(y)))
            if type(x) is not type(y) or x._hash != y._hash:
                return False
            if tuple(getattr(x, f) for f in x._scalars) != tuple(getattr(y, f) for f in y._scalars):
                return False
            stack.extend((getattr(x, f), getattr(y, f)) for f in x._operands)
        return True

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal


def _expr(cls):
    """A frozen dataclass over ``_Node`` (which supplies hashing and equality)."""
    cls = dataclass(frozen=True, eq=False)(cls)
    names = [f.name for f in fields(cls)]
    cls._operands = tuple(n for n in names if n in _OPERAND_FIELDS)
    cls._scalars = tuple(n for n in names if n not in _OPERAND_FIELDS)
    return cls


_OPERAND_FIELDS = ("index", "x", "a", "b", "cond")


@_expr
class Const(_Node):
    value: float | int | bool
    dtype: DType

    def __post_init__(self) -> None:
        self.__dict__["_hash"] = hash(("Const", self.value, self.dtype.name))


@_expr
class Var(_Node):
    name: str
    dtype: DType

    def __post_init__(self) -> None:
        self.__dict__["_hash"] = hash(("Var", self.name, self.dtype.name))


@_expr
class Load(_Node):
    buffer: str
    index: Expr
    dtype: DType

    def __post_init__(self) -> None:
        self.__dict__["_hash"] = hash(("Load", self.buffer, self.index._hash, self.dtype.name))


@_expr
class Unary(_Node):
    op: str
    x: Expr
    dtype: DType

    def __post_init__(self) -> None:
        self.__dict__["_hash"] = hash(("Unary", self.op, self.x._hash, self.dtype.name))


@_expr
class Binary(_Node):
    """Arithmetic on two operands of ``dtype``; comparisons give bool (``dtype`` is bool;
    the operands share one type, which is ``a.dtype``: there is no separate operand-type
    field). ``idiv`` truncates toward zero; ``lshr`` is a logical shift; int
    ``mul``/``add`` wrap."""

    op: str
    a: Expr
    b: Expr
    dtype: DType

    def __post_init__(self) -> None:
        key = ("Binary", self.op, self.a._hash, self.b._hash, self.dtype.name)
        self.__dict__["_hash"] = hash(key)


@_expr
class Select(_Node):
    cond: Expr
    a: Expr
    b: Expr
    dtype: DType

    def __post_init__(self) -> None:
        key = ("Select", self.cond._hash, self.a._hash, self.b._hash, self.dtype.name)
        self.__dict__["_hash"] = hash(key)


@_expr
class Cast(_Node):
    x: Expr
    dtype: DType

    def __post_init__(self) -> None:
        self.__dict__["_hash"] = hash(("Cast", self.x._hash, self.dtype.name))


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
    if isinstance(e, (Const, Var)):
        return ()
    raise UnknownNodeError(f"not a kernel expression: {type(e).__name__} ({e!r:.200})")


def with_children(e: Expr, kids: tuple[Expr, ...] | list[Expr]) -> Expr:
    """``e`` with its operands replaced (in ``children`` order)."""
    if isinstance(e, Load):
        return Load(e.buffer, kids[0], e.dtype)
    if isinstance(e, Unary):
        return Unary(e.op, kids[0], e.dtype)
    if isinstance(e, Cast):
        return Cast(kids[0], e.dtype)
    if isinstance(e, Binary):
        return Binary(e.op, kids[0], kids[1], e.dtype)
    if isinstance(e, Select):
        return Select(kids[0], kids[1], kids[2], e.dtype)
    if isinstance(e, (Const, Var)):
        return e
    raise UnknownNodeError(f"not a kernel expression: {type(e).__name__} ({e!r:.200})")


def postorder(roots: Iterable[Expr], done: Callable[[Expr], bool] | None = None) -> Iterator[Expr]:
    """Every distinct (by identity) subexpression of ``roots``, operands before the
    expressions using them and in evaluation order, without recursion. Subexpressions for
    which ``done`` is true are neither yielded nor entered (already computed)."""
    seen: set[int] = set()
    for root in roots:
        stack: list[tuple[Expr, bool]] = [(root, False)]
        while stack:
            e, expanded = stack.pop()
            if expanded:
                yield e
                continue
            if id(e) in seen or (done is not None and done(e)):
                continue
            seen.add(id(e))
            stack.append((e, True))
            stack.extend((c, False) for c in reversed(children(e)))


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

    def __post_init__(self) -> None:
        if type(self.extent) is Dim:  # a size that depends on the batch size
            self.extent = const_index(self.extent)


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
    ``tile`` carries its choices for this product (the LLVM backend's ``registers``: a
    block of a larger product, sized for the vector registers, emitted as one tile).

    ``implicit`` ("a", "b" or None) says that operand is scratch written by an im2col-like
    nest just before this GEMM for it alone: a backend may compute its elements where it
    loads them instead of reading the buffer (the CUDA implicit GEMM). Lowering states
    this intent so back ends need not guess it from buffer names; a back end still checks
    the producer's shape before relying on it."""

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
    implicit: str | None = None  # "a" | "b": that operand may be computed in the loader
    # "float32" | "bf16" (ir/precision.py): the lowering's matmul precision when built
    precision: str = field(default_factory=current_precision)
    # under "bf16": the operands ("a", "b") that hold bf16 values already (rounded in a
    # copy by the lowering), so that a back end need not round their loads again
    prerounded: str = ""

    @property
    def bf16(self) -> bool:
        """Its products are bf16 products (ir/precision.bf16_products)."""
        return bf16_products(self.dtype, self.precision)


Stmt = Loop | Store | Let | Local | Assign | If | Gemm

# Up to this many elements of C (per product), a GEMM whose B is laid out along k (a
# weight stored (n, k)) is computed as blocked dot products reading B in place; beyond it
# a packed GEMM reuses its panels better (backends/llvm/gemm.py). Constant folding leaves
# such weights transposed for these products (passes/fold.py).
# (Measured on 2 threads once transposed B panels were packed in registers: 64x256x784
# 167 us dot vs 142 packed, 256x784x256 514 vs 456; 64x784x256 141 vs 150, 128x512x128
# 87 vs 104, 64x5408x64 281 vs 464.)
DOT_PRODUCT_MAX_OUTPUTS = 128 * 256
# ... and whose sums are at least this long: shorter ones fill a fraction of a vector and
# pay a horizontal sum per element (measured: an MLP's 64x10x128 backward product, 0.017
# ms as dot products vs 0.008 packed).
DOT_PRODUCT_MIN_K = 64
# A convolution whose sum (input channels per group x kernel area) is at most this long
# runs directly, as one unrolled expression per output (lowering/window_ops.py); passes
# that pick a layout for it read the same limit (passes/channels_last.py).
DIRECT_CONV_MAX_SUM = 32


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


# The run-time batch size of a dynamic-batch program (ir/symbolic.py): every kernel may
# read it as this INDEX variable; a back end binds it once per call.
BATCH_SIZE = Var(SYMBOL, INDEX)


def const_index(v: int | Dim) -> Expr:
    """An index constant; a size that depends on the batch size is ``scale*n + offset``."""
    if type(v) is Dim:
        return iadd(imul(BATCH_SIZE, _const_index(v.scale)), _const_index(v.offset))
    return _const_index(v)


@functools.lru_cache(maxsize=4096)
def _const_index(v: int) -> Const:
    return Const(int(v), INDEX)  # (shared: expressions are immutable)


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


def idiv(a: Expr, b: int | Dim) -> Expr:
    if b == 1:
        return a
    if isinstance(a, Const) and type(b) is not Dim:
        return const_index(int(a.value) // b)
    return Binary("idiv", a, const_index(b), INDEX)  # operands are >= 0: floor == trunc


def imod(a: Expr, b: int | Dim) -> Expr:
    if b == 1:
        return const_index(0)
    if isinstance(a, Const) and type(b) is not Dim:
        return const_index(int(a.value) % b)
    return Binary("mod", a, const_index(b), INDEX)


def ceil_div(size: int | Dim, parts: int) -> Expr:
    """``ceil(size / parts)``: a constant, or computed at run time for a symbolic size (the
    images each of ``parts`` parallel chunks of a batch takes)."""
    if type(size) is Dim:
        return idiv(const_index(size + (parts - 1)), parts)
    return const_index(-(-size // parts))


def strided(base: Expr | int | Dim, terms: Iterable[tuple[Expr, int | Dim]]) -> Expr:
    """``base + sum(var * stride)`` as index arithmetic (terms with stride 0 left out)."""
    e: Expr = base if isinstance(base, _Node) else const_index(base)
    for var, stride in terms:
        if stride:
            e = iadd(e, imul(var, const_index(stride)))
    return e


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


def walk(body: list[Stmt]) -> Iterator[Stmt]:
    """Every statement of ``body`` and of the blocks nested in it, pre-order, without
    recursion (an unrolled loop's kernels nest deeply); see ``kernel_visit``."""
    from .kernel_visit import walk as visit_walk  # (kernel_visit builds on this module)

    return visit_walk(body)


def expressions(body: list[Stmt]) -> Iterator[Expr]:
    """The expressions the statements of ``body`` (nested blocks included) evaluate, in
    order; a GEMM's offsets are left out."""
    from .kernel_visit import expressions as visit_expressions

    return visit_expressions(body)


def as_size(e: Expr | int) -> int | Dim | None:
    """A loop extent as a size: an int, a Dim for ``scale*n + offset`` of the batch size
    (what ``const_index`` builds from a Dim), None for any other computed extent."""
    if isinstance(e, int):
        return e
    values = [_affine_value(e, n) for n in (0, 1, 2)]
    if None in values or values[2] - values[1] != values[1] - values[0]:
        return None
    scale, offset = values[1] - values[0], values[0]
    if scale == 0:
        return offset
    return Dim(scale, offset) if scale > 0 and scale + offset >= 0 else None


def _affine_value(e: Expr, n: int) -> int | None:
    """``e`` at batch size ``n`` when it is +, -, * of constants and the batch size."""
    if isinstance(e, Const) and e.dtype == INDEX:
        return int(e.value)
    if isinstance(e, Var):
        return n if e.name == BATCH_SIZE.name else None
    if isinstance(e, Binary) and e.op in ("add", "sub", "mul") and e.dtype == INDEX:
        a, b = _affine_value(e.a, n), _affine_value(e.b, n)
        if a is None or b is None:
            return None
        return a + b if e.op == "add" else a - b if e.op == "sub" else a * b
    return None
