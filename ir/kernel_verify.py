"""The kernel-IR verifier: the invariants every back end relies on, checked in one place.

- every variable is bound by an enclosing loop (an index), let or local before it is
  used, with the type it is used at; an assignment's target is a declared local of the
  assigned value's type;
- loads and stores name declared buffer parameters and move values of the buffer's dtype
  at int64 indices (a constant index within the buffer);
- a GEMM's buffers are parameters of its dtype and, when its offsets are constants, every
  element its strides reach lies inside them;
- expression types agree (arithmetic on one type, comparisons and conditions bool, known
  op names) and only kinds the IR defines appear.

Lowering runs it on each kernel at each stage when ``NNCOMPILE_VERIFY=1`` or
``NNCOMPILE_CHECK=1`` (``verify_enabled``); tests run it between stages. Walks are
iterative, each expression object checked once.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import dtypes as dt
from .errors import NCError
from .kernel import (
    BATCH_SIZE,
    BINARY_OPS,
    COMPARE_OPS,
    INDEX,
    UNARY_OPS,
    Assign,
    Binary,
    Const,
    Expr,
    Gemm,
    If,
    Kernel,
    Let,
    Load,
    Local,
    Loop,
    Select,
    Stmt,
    Store,
    Unary,
    Var,
    children,
)
from .kernel_visit import EXPRESSION_KINDS, KernelVisitor, own_expressions
from .symbolic import Dim, SymbolicShapeError

_MAX_PROBLEMS = 20  # reported per kernel (one broken builder can break every statement)


class KernelVerifyError(NCError, ValueError):
    """A kernel breaks an invariant of the kernel IR (a lowering or pass bug)."""


def verify_enabled() -> bool:
    """Whether lowering verifies the kernels it builds: ``NNCOMPILE_VERIFY=1``, or check
    mode's ``NNCOMPILE_CHECK=1`` (a debugging run can afford it)."""
    from .. import config  # (nncompile.config; read at call time, like every variable)

    return config.get_bool(config.VERIFY) or config.get_bool(config.CHECK)


def verify_kernels(kernels: Iterable[Kernel]) -> None:
    for k in kernels:
        verify_kernel(k)


def verify_kernel(kernel: Kernel) -> None:
    """Raise KernelVerifyError listing what is wrong with ``kernel`` (nothing if sound)."""
    problems = kernel_problems(kernel)
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        lines = problems[:_MAX_PROBLEMS] + ([f"... and {more} more"] if more > 0 else [])
        raise KernelVerifyError(f"kernel {kernel.name} is malformed:\n  " + "\n  ".join(lines))


def kernel_problems(kernel: Kernel) -> list[str]:
    """The kernel's broken invariants, one message each."""
    checker = _Checker(kernel)
    seen: set[str] = set()
    for p in kernel.params:
        if p.name in seen:
            checker.problems.append(f"buffer parameter {p.name!r} is declared twice")
        seen.add(p.name)
    checker.visit(kernel.body)
    return checker.problems


class _Checker(KernelVisitor):
    def __init__(self, kernel: Kernel):
        self.params = {p.name: p for p in kernel.params}
        self.problems: list[str] = []
        # name -> (dtype, mutable); the batch size n of a dynamic-batch program is bound
        # around every kernel (a back end reads it from the call)
        self.scopes: list[dict[str, tuple[dt.DType, bool]]] = [{BATCH_SIZE.name: (INDEX, False)}]
        self.pending: list[dict[str, tuple[dt.DType, bool]]] = []  # a loop's variable
        self.free: dict[int, frozenset[Var]] = {}  # id(expr) -> the variables it reads
        self.bad: set[int] = set()  # ids of objects that are not kernel expressions
        self.count = 0  # statements so far, to say where a problem is

    # ---- scopes ------------------------------------------------------------------------

    def enter_block(self, block: list[Stmt]) -> None:
        self.scopes.append(self.pending.pop() if self.pending else {})

    def leave_block(self, block: list[Stmt]) -> None:
        self.scopes.pop()

    def lookup(self, name: str) -> tuple[dt.DType, bool] | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def bind(self, name: str, dtype: dt.DType, mutable: bool) -> None:
        self.scopes[-1][name] = (dtype, mutable)

    def fail(self, s: Stmt, message: str) -> None:
        self.problems.append(f"statement {self.count} ({type(s).__name__}): {message}")

    # ---- statements --------------------------------------------------------------------

    def start(self, s: Stmt) -> None:
        self.count += 1
        for e in own_expressions(s, gemm_offsets=True):
            self.expression(s, e)

    def loop(self, s: Loop) -> None:
        self.start(s)
        if isinstance(s.extent, int):
            if s.extent < 0:
                self.fail(s, f"loop {s.var} has a negative extent {s.extent}")
        else:
            self.want(s, s.extent, INDEX, f"loop {s.var}'s extent")
        self.pending.append({s.var: (INDEX, False)})  # the scope of its body

    def store(self, s: Store) -> None:
        self.start(s)
        p = self.params.get(s.buffer)
        self.want(s, s.index, INDEX, f"the index of a store to {s.buffer!r}")
        if p is None:
            self.fail(s, f"store to {s.buffer!r}, which is not a buffer parameter")
            return
        if _dtype(s.value) != p.dtype:
            self.fail(s, f"stores a {_dtype(s.value)} value into {p.name!r} ({p.dtype}[{p.size}])")
        self.const_index(s, s.index, p.name)

    def let(self, s: Let) -> None:
        self.start(s)
        self.bind(s.name, _dtype(s.value), False)

    def local(self, s: Local) -> None:
        self.start(s)
        if _dtype(s.init) != s.dtype:
            self.fail(s, f"local {s.name!r}: {s.dtype} initialized with a {_dtype(s.init)}")
        self.bind(s.name, s.dtype, True)

    def assign(self, s: Assign) -> None:
        self.start(s)
        bound = self.lookup(s.name)
        if bound is None or not bound[1]:
            what = "is not declared" if bound is None else "is not a local (a let or loop)"
            self.fail(s, f"assignment to {s.name!r}, which {what}")
        elif bound[0] != _dtype(s.value):
            self.fail(s, f"assigns a {_dtype(s.value)} to local {s.name!r} ({bound[0]})")

    def if_(self, s: If) -> None:
        self.start(s)
        self.want(s, s.cond, dt.bool_, "the condition")

    def gemm(self, s: Gemm) -> None:
        self.start(s)
        if s.implicit not in (None, "a", "b"):
            self.fail(s, f"implicit must be None, 'a' or 'b', not {s.implicit!r}")
        for e in (s.a_offset, s.b_offset, s.c_offset):
            if not isinstance(e, int):
                self.want(s, e, INDEX, "a GEMM offset")
        if min(s.batch, s.m, s.n, s.k) < 0:
            self.fail(s, f"negative GEMM extents {(s.batch, s.m, s.n, s.k)}")
            return
        shapes = {
            "a": (s.a, s.a_offset, s.a_strides, (s.batch, s.m, s.k)),
            "b": (s.b, s.b_offset, s.b_strides, (s.batch, s.k, s.n)),
            "c": (s.c, s.c_offset, s.c_strides, (s.batch, s.m, s.n)),
        }
        for role, (buffer, offset, strides, extents) in shapes.items():
            p = self.params.get(buffer)
            if p is None:
                self.fail(s, f"GEMM operand {role} {buffer!r} is not a buffer parameter")
                continue
            if p.dtype != s.dtype:
                self.fail(s, f"GEMM operand {role} {buffer!r} is {p.dtype}, the GEMM {s.dtype}")
            if len(strides) != 3:
                self.fail(s, f"GEMM operand {role} has {len(strides)} strides, not 3")
                continue
            if not isinstance(offset, int) or 0 in extents:
                continue  # (a computed offset: its range is not known here)
            lo = hi = offset
            for n, st in zip(extents, strides, strict=True):
                reach = (n - 1) * st
                if type(reach) is Dim:  # (a symbolic size is never negative)
                    hi = hi + reach
                else:
                    lo, hi = lo + min(0, reach), hi + max(0, reach)
            try:
                outside = lo < 0 or hi >= p.size
            except SymbolicShapeError:  # outside for some batch sizes
                outside = True
            if outside:
                self.fail(
                    s,
                    f"GEMM operand {role} reaches elements {lo}..{hi} of {buffer!r}, "
                    f"which has {p.size}",
                )

    # ---- expressions -------------------------------------------------------------------

    def want(self, s: Stmt, e: Expr, dtype: dt.DType, what: str) -> None:
        if _dtype(e) != dtype:
            self.fail(s, f"{what} is {_dtype(e) or type(e).__name__}, not {dtype}")

    def const_index(self, s: Stmt, index: Expr, buffer: str) -> None:
        size = self.params[buffer].size
        if isinstance(index, Const) and not 0 <= int(index.value) < size:
            self.fail(s, f"constant index {index.value} outside {buffer!r} ({size} elements)")

    def expression(self, s: Stmt, root: Expr) -> None:
        """Type-check ``root``'s new subexpressions, then check the variables it reads
        against the scope of ``s``."""
        stack: list[tuple[object, bool]] = [(root, False)]
        while stack:
            e, expanded = stack.pop()
            if id(e) in self.free:
                continue
            if type(e) not in EXPRESSION_KINDS:
                self.fail(s, f"not a kernel expression: {type(e).__name__} ({e!r:.80})")
                self.free[id(e)] = frozenset()
                self.bad.add(id(e))
                continue
            kids = children(e)
            if not expanded:
                stack.append((e, True))
                stack.extend((c, False) for c in kids if id(c) not in self.free)
                continue
            if not any(id(c) in self.bad for c in kids):
                self.types(s, e)
            if isinstance(e, Var):
                self.free[id(e)] = frozenset((e,))
            elif len(kids) == 1:
                self.free[id(e)] = self.free[id(kids[0])]  # shared, not copied
            else:
                self.free[id(e)] = frozenset().union(*(self.free[id(c)] for c in kids))
        for v in self.free[id(root)]:
            bound = self.lookup(v.name)
            if bound is None:
                self.fail(s, f"variable {v.name!r} is used outside the scope that binds it")
            elif bound[0] != v.dtype:
                self.fail(s, f"variable {v.name!r} is used as {v.dtype} but is {bound[0]}")

    def types(self, s: Stmt, e: Expr) -> None:
        if isinstance(e, Load):
            p = self.params.get(e.buffer)
            if p is None:
                self.fail(s, f"load from {e.buffer!r}, which is not a buffer parameter")
            else:
                if p.dtype != e.dtype:
                    self.fail(s, f"loads {e.dtype} from {p.name!r} ({p.dtype}[{p.size}])")
                self.const_index(s, e.index, p.name)
            self.want(s, e.index, INDEX, f"the index of a load from {e.buffer!r}")
        elif isinstance(e, Unary):
            if e.op not in UNARY_OPS:
                self.fail(s, f"unknown unary op {e.op!r}")
            elif _dtype(e.x) != e.dtype:
                self.fail(s, f"{e.op} of a {_dtype(e.x)} typed {e.dtype}")
        elif isinstance(e, Binary):
            self.binary(s, e)
        elif isinstance(e, Select):
            self.want(s, e.cond, dt.bool_, "a select's condition")
            if not _dtype(e.a) == _dtype(e.b) == e.dtype:
                self.fail(s, f"select of {_dtype(e.a)} and {_dtype(e.b)} typed {e.dtype}")

    def binary(self, s: Stmt, e: Binary) -> None:
        if _dtype(e.a) != _dtype(e.b):
            self.fail(s, f"{e.op} of a {_dtype(e.a)} and a {_dtype(e.b)}")
        elif e.op in COMPARE_OPS:
            if e.dtype != dt.bool_:
                self.fail(s, f"comparison {e.op} typed {e.dtype}, not bool")
        elif e.op in BINARY_OPS:
            if e.dtype != _dtype(e.a):
                self.fail(s, f"{e.op} of {_dtype(e.a)} operands typed {e.dtype}")
        else:
            self.fail(s, f"unknown binary op {e.op!r}")


def _dtype(x: object) -> dt.DType | None:
    """An expression's type (None for an object that is not one: reported elsewhere)."""
    return getattr(x, "dtype", None)
