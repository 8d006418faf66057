"""Kernel IR -> LLVM IR (llvmlite).

One LLVM module per Program: one internal function per kernel (buffer pointers as
``noalias`` parameters) and an exported ``nc_entry(ptr args)`` that runs the kernels in
order, so a whole training step is one native call. ``args`` is an array of pointers:
inputs, outputs, constants, then the arena and the status word.

Float arithmetic carries the ``contract`` flag (FMA), accumulations also ``reassoc`` so
reductions vectorize; nothing assumes the absence of NaN or inf. Integer division and
float-to-int conversion are guarded so no input can trap (x / 0 gives 0, NaN -> int
saturates).
"""

from __future__ import annotations

from collections.abc import Sequence

import llvmlite.ir as ir

from ... import config
from ...ir import dtypes as dt
from ...ir.kernel import (
    BATCH_SIZE,
    Assign,
    Binary,
    Cast,
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
    as_size,
    children,
    const_index,
)
from ...ir.kernel_visit import expressions, subexpressions
from ...ir.symbolic import Dim
from ...lowering.program import physical_params
from . import mathlib
from .bf16 import rounded_to_bf16
from .fastmath import InlineMath
from .gemm import emit_gemm
from .gemm_epilogue import fuses_epilogue
from .llvm_builders import declare, loop_hints, set_function_attributes
from .machine import this_machine
from .parallel import CONTEXT_BATCH, ParallelRuntime, context_slot
from .running_extremes import ExtremeFlags, running_extremes

F32, F64 = ir.FloatType(), ir.DoubleType()
I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR, VOID = ir.PointerType(), ir.VoidType()
_REG = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, "bool": I1}
_FLOAT_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "=="}
_INT_CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
FLAGS = ("contract",)
ACC_FLAGS = ("contract", "reassoc")


def reg_type(d: dt.DType) -> ir.Type:
    return _REG[d.name]


def mem_type(d: dt.DType) -> ir.Type:
    return I8 if d.is_bool else _REG[d.name]  # NumPy stores bools as bytes


def bounds_checked() -> bool:
    """NNCOMPILE_BOUNDS_CHECK=1: generated code checks every index (a debugging aid)."""
    return config.get_bool(config.BOUNDS_CHECK)


class KernelEmitter:
    def __init__(
        self,
        module: ir.Module,
        kernel: Kernel,
        parallel: ParallelRuntime,
        fn: ir.Function | None = None,
        buffers: dict[str, tuple[ir.Value, dt.DType]] | None = None,
        physical: dict[str, str] | None = None,
        extreme_ops: dict[str, str] | None = None,
    ):
        """Emit ``kernel`` as a new function, or (``fn`` and ``buffers`` given) emit into an
        outlined function whose buffers are already loaded (a parallel loop's body; its
        ``extreme_ops`` are the kernel's, found by the emitter of the whole kernel)."""
        self.module = module
        self.kernel = kernel
        self.parallel = parallel
        self.context: ir.Value | None = None  # the call's argument table (parallel.py)
        if fn is None:
            params = physical_params(kernel, physical or {})
            # The buffers, then the call context: thread count and GEMM workspace.
            ftype = ir.FunctionType(VOID, [PTR] * (len(params) + 1))
            fn = ir.Function(module, ftype, f"k_{kernel.name}")
            fn.linkage = "internal"
            # Kept out of nc_entry: inlined, an unrolled RNN's hundreds of kernels make one
            # huge function, and LLVM's loop passes (IndVarSimplify, LoopVectorize) cost
            # (loops x function size) there: T=300 steps took 20 s instead of 2 s.
            fn.attributes.add("noinline")
            args = {}
            for arg, p in zip(fn.args, params, strict=False):
                arg.add_attribute("noalias")  # buffers sharing memory share one pointer
                arg.name = p.name
                args[p.name] = arg
            self.context = fn.args[-1]
            self.context.name = "context"
            buffers = {
                p.name: (args[(physical or {}).get(p.name, p.name)], p.dtype) for p in kernel.params
            }
            self.entry = fn.append_basic_block("entry")
        else:
            self.entry = fn.entry_basic_block
        set_function_attributes(fn)
        self.fn = fn
        self.buffers = buffers
        self.b = ir.IRBuilder(fn.blocks[-1])
        self.scopes: list[dict[str, ir.Value]] = [{}]
        self.locals: dict[str, tuple[ir.Value, dt.DType]] = {}
        self._extreme_ops = extreme_ops
        self.extremes: dict[str, ExtremeFlags] = {}  # running max / min locals' flags
        self.memo: list[dict[int, tuple[Expr, ir.Value]]] = [{}]
        self._has_local: dict[int, bool] = {}
        self.in_parallel = False  # inside an outlined parallel body: no nested regions
        # there, this thread's number in the team (which GEMM workspace it packs into)
        self.thread_number: ir.Value | None = None
        # NNCOMPILE_BOUNDS_CHECK=1: every load and store checks its index (a debugging aid
        # for code generator bugs; a violation sets status -1 and touches element 0).
        self.bounds_check = bounds_checked()
        self.sizes = {p.name: p.size for p in kernel.params}
        self.kernel_number = 0  # set by the module builder; names the kernel in debug codes
        # loops that run over part of their extent: {variable: (start, stop)} (a GEMM
        # epilogue's columns, gemm_epilogue.py)
        self.loop_ranges: dict[str, tuple[ir.Value, ir.Value]] = {}

    @property
    def extreme_ops(self) -> dict[str, str]:
        """The kernel's running max / min locals (found once, at the first Local)."""
        if self._extreme_ops is None:
            self._extreme_ops = running_extremes(self.kernel.body)
        return self._extreme_ops

    def emit(self) -> ir.Function:
        self.block(self.kernel.body)
        self.b.ret_void()
        return self.fn

    # ---- statements --------------------------------------------------------------------

    def block(self, stmts: Sequence[Stmt]) -> None:
        i = 0
        while i < len(stmts):
            s, after = stmts[i], stmts[i + 1] if i + 1 < len(stmts) else None
            if isinstance(s, Gemm) and isinstance(after, Loop) and fuses_epilogue(self, s, after):
                # the product's form runs the loop after it as its epilogue, if it can
                i += 2 if emit_gemm(self, s, epilogue=after) else 1
                continue
            self.stmt(s)
            i += 1

    def push(self) -> None:
        self.scopes.append({})
        self.memo.append({})

    def pop(self) -> None:
        self.scopes.pop()
        self.memo.pop()

    def stmt(self, s: Stmt) -> None:
        if isinstance(s, Loop):
            # A Gemm inside a parallel loop runs on one thread with that thread's own
            # packing buffers (gemm.py); outside, it parallelizes internally.
            if s.parallel and self.parallel.enabled and not self.in_parallel:
                self.parallel.emit_parallel_loop(self, s)
            else:
                self.loop(s)
        elif isinstance(s, Store):
            buf, d = self.buffers[s.buffer]
            ptr = self.b.gep(buf, [self.checked_index(s.buffer, s.index)], source_etype=mem_type(d))
            value = self.expr(s.value)
            if d.is_bool:
                value = self.b.zext(value, I8)
            self.b.store(value, ptr)
        elif isinstance(s, Let):
            self.scopes[-1][s.name] = self.expr(s.value)
        elif isinstance(s, Local):
            with self.b.goto_entry_block():
                slot = self.b.alloca(reg_type(s.dtype), name=s.name)
            self.locals[s.name] = (slot, s.dtype)
            init = self.expr(s.init)
            self.b.store(init, slot)
            op = self.extreme_ops.get(s.name)
            if op is not None:  # a running max / min (running_extremes.py)
                flags = self.extremes[s.name] = ExtremeFlags.allocate(self.b, s.name, op)
                flags.reset(self.b, init)
        elif isinstance(s, Assign):
            slot, d = self.locals[s.name]
            flags = self.extremes.get(s.name)
            v = s.value
            if flags is not None and isinstance(v, Binary) and v.op == flags.op:
                if isinstance(v.a, Var) and v.a.name == s.name:
                    x = self.expr(v.b)
                    acc = self.b.load(slot, typ=x.type)
                    # (a vector max / min instruction; the flags keep IEEE's NaN and zeros)
                    self.b.store(self.intrinsic(flags.number_op, [acc, x], ("nnan", "nsz")), slot)
                    flags.saw(self.b, x)
                    return
            value = self.expr(v, accumulate=True)
            self.b.store(value, slot)
            if flags is not None:
                flags.reset(self.b, value)
        elif isinstance(s, If):
            self.branch(s)
        elif isinstance(s, Gemm):
            self.gemm(s)
        else:
            raise TypeError(f"unknown statement {s!r}")

    def loop(self, s: Loop, start: ir.Value | None = None, stop: ir.Value | None = None) -> None:
        if start is None and s.var in self.loop_ranges:
            start, stop = self.loop_ranges[s.var]
        lo = start if start is not None else ir.Constant(I64, 0)
        hi = stop if stop is not None else self.index(s.extent)
        pre = self.b.block
        header = self.fn.append_basic_block(f"{s.var}.head")
        body = self.fn.append_basic_block(f"{s.var}.body")
        done = self.fn.append_basic_block(f"{s.var}.done")
        self.b.branch(header)
        self.b.position_at_end(header)
        i = self.b.phi(I64, name=s.var)
        i.add_incoming(lo, pre)
        self.b.cbranch(self.b.icmp_signed("<", i, hi), body, done)
        self.b.position_at_end(body)
        self.push()
        self.scopes[-1][s.var] = i
        self.block(s.body)
        self.pop()
        nxt = self.b.add(i, ir.Constant(I64, 1), flags=["nsw", "nuw"])
        i.add_incoming(nxt, self.b.block)
        back = self.b.branch(header)
        if s.vectorize and _long_chains(s):
            back.set_metadata("llvm.loop", loop_hints(self.module, interleave_count=2))
        self.b.position_at_end(done)

    def loop_with_body(self, var: str, extent: Expr | int, body) -> None:
        """A serial loop whose body is emitted by a Python callback (templates)."""
        pre = self.b.block
        header = self.fn.append_basic_block(f"{var}.head")
        block = self.fn.append_basic_block(f"{var}.body")
        done = self.fn.append_basic_block(f"{var}.done")
        self.b.branch(header)
        self.b.position_at_end(header)
        i = self.b.phi(I64, name=var)
        i.add_incoming(ir.Constant(I64, 0), pre)
        self.b.cbranch(self.b.icmp_signed("<", i, self.index(extent)), block, done)
        self.b.position_at_end(block)
        self.push()
        self.scopes[-1][var] = i
        body()
        self.pop()
        i.add_incoming(self.b.add(i, ir.Constant(I64, 1)), self.b.block)
        self.b.branch(header)
        self.b.position_at_end(done)

    def branch(self, s: If) -> None:
        cond = self.expr(s.cond)
        then = self.fn.append_basic_block("then")
        other = self.fn.append_basic_block("else")
        done = self.fn.append_basic_block("endif")
        self.b.cbranch(cond, then, other)
        for block, body in ((then, s.then), (other, s.otherwise)):
            self.b.position_at_end(block)
            self.push()
            self.block(body)
            self.pop()
            self.b.branch(done)
        self.b.position_at_end(done)

    def gemm(self, s: Gemm) -> None:
        """C (+)= A @ B as loops i, p, j with j innermost: unit-stride B and C rows
        vectorize, and strides are constants the optimizer sees."""
        emit_gemm(self, s)

    # ---- expressions -------------------------------------------------------------------

    def checked_index(self, buffer: str, index: Expr) -> ir.Value:
        i = self.expr(index)
        if not self.bounds_check:
            return i
        ok = self.b.icmp_unsigned("<", i, self.index(self.sizes[buffer]))
        status, _ = self.buffers["status"] if "status" in self.buffers else (None, None)
        if status is not None:
            code = ir.Constant(I64, -1 - self.kernel_number)
            bad = self.b.select(ok, self.b.load(status, typ=I64), code)
            self.b.store(bad, status)
        return self.b.select(ok, i, ir.Constant(I64, 0))

    def _batch_size(self) -> ir.Value:
        """The call's batch size (dynamic-batch programs), read from the call context once,
        at the top of the function."""
        with self.b.goto_entry_block():  # (the entry block dominates every use)
            n = context_slot(self.b, self.context, CONTEXT_BATCH, I64)
            n.name = BATCH_SIZE.name
        self.scopes[0][BATCH_SIZE.name] = n
        return n

    def index(self, e: Expr | int | Dim) -> ir.Value:
        if type(e) is Dim:  # a size that depends on the batch size
            e = const_index(e)
        return ir.Constant(I64, e) if isinstance(e, int) else self.expr(e)

    def lookup(self, name: str) -> ir.Value:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name == BATCH_SIZE.name and self.context is not None:
            return self._batch_size()
        raise KeyError(f"unknown variable {name!r} in kernel {self.kernel.name}")

    def has_local(self, e: Expr) -> bool:
        key = id(e)
        if key not in self._has_local:
            if isinstance(e, Var):
                r = e.name in self.locals
            elif isinstance(e, (Const,)):
                r = False
            else:
                r = any(self.has_local(c) for c in children(e))
            self._has_local[key] = r
        return self._has_local[key]

    def expr(self, e: Expr, accumulate: bool = False) -> ir.Value:
        if isinstance(e, Const):
            return constant(e.value, e.dtype)
        if isinstance(e, Var):
            if e.name in self.locals:
                slot, d = self.locals[e.name]
                value = self.b.load(slot, typ=reg_type(d))
                flags = self.extremes.get(e.name)
                return value if flags is None else flags.read(self.b, value)
            return self.lookup(e.name)
        cacheable = not self.has_local(e)
        if cacheable:
            for layer in reversed(self.memo):
                hit = layer.get(id(e))
                if hit is not None:
                    return hit[1]
        v = self._compute(e, accumulate)
        if cacheable:
            self.memo[-1][id(e)] = (e, v)
        return v

    def _compute(self, e: Expr, accumulate: bool) -> ir.Value:
        b = self.b
        if isinstance(e, Load):
            buf, d = self.buffers[e.buffer]
            ptr = b.gep(buf, [self.checked_index(e.buffer, e.index)], source_etype=mem_type(d))
            v = b.load(ptr, typ=mem_type(d))
            return b.icmp_unsigned("!=", v, ir.Constant(I8, 0)) if d.is_bool else v
        if isinstance(e, Select):
            return b.select(self.expr(e.cond), self.expr(e.a), self.expr(e.b))
        if isinstance(e, Cast):
            return self.cast(self.expr(e.x), e.x.dtype, e.dtype)
        if isinstance(e, Unary):
            return self.unary(e.op, self.expr(e.x), e.x.dtype)
        if isinstance(e, Binary):
            return self.binary(e, self.expr(e.a), self.expr(e.b), accumulate)
        raise TypeError(f"unknown expression {e!r}")

    def intrinsic(self, name: str, args: list[ir.Value], fastmath: tuple = ()) -> ir.Value:
        t = args[0].type
        full = f"llvm.{name}.{_type_suffix(t)}"
        fn = declare(self.module, full, ir.FunctionType(t, [t] * len(args)))
        return self.b.call(fn, args, fastmath=fastmath)

    def unary(self, op: str, x: ir.Value, d: dt.DType) -> ir.Value:
        b = self.b
        if op == "not":  # logical on bools (i1), bitwise on ints: x ^ all ones either way
            return b.xor(x, ir.Constant(x.type, 1 if d.is_bool else -1))
        if d.is_float:
            if op == "neg":
                return b.fneg(x)
            if op == "abs":
                return self.intrinsic("fabs", [x])
            if op == "sqrt":
                return self.intrinsic("sqrt", [x])
            if op == "floor":
                return self.intrinsic("floor", [x])
            if op == "round_bf16" and x.type == F32:
                return rounded_to_bf16(b, x)
            if op == "sign":
                one, zero = ir.Constant(x.type, 1.0), ir.Constant(x.type, 0.0)
                neg = b.select(b.fcmp_ordered("<", x, zero), b.fneg(one), x)
                return b.select(b.fcmp_ordered(">", x, zero), one, neg)
            if op in ("exp", "tanh", "sigmoid") and x.type == F32:
                return getattr(InlineMath(b, self.intrinsic, _has_scalef()), op)(x)
            if op == "sigmoid":
                return self.sigmoid(x)
            if op in mathlib.FUNCTIONS:
                return mathlib.call(b, self.module, op, [x])
        else:
            zero = ir.Constant(x.type, 0)
            if op == "neg":
                return b.sub(zero, x)
            if op == "abs":
                return b.select(b.icmp_signed("<", x, zero), b.sub(zero, x), x)
            if op == "sign":
                pos = b.zext(b.icmp_signed(">", x, zero), x.type)
                neg = b.zext(b.icmp_signed("<", x, zero), x.type)
                return b.sub(pos, neg)
        raise NotImplementedError(f"unary {op} on {d}")

    def sigmoid(self, x: ir.Value) -> ir.Value:
        """float64 (float32's is fastmath.InlineMath.sigmoid): the reference's two branches,
        e = e^-|x| in (0, 1], then 1 / (1 + e) for x >= 0 and e / (1 + e) below, so exp
        never overflows and far-negative x gives e^x itself; NaN stays NaN."""
        b = self.b
        e = mathlib.call(b, self.module, "exp", [b.fneg(self.intrinsic("fabs", [x]))])
        one = ir.Constant(x.type, 1.0)
        num = b.select(b.fcmp_ordered(">=", x, ir.Constant(x.type, 0.0)), one, e)
        return b.fdiv(num, b.fadd(one, e, flags=FLAGS), flags=FLAGS)

    def binary(self, e: Binary, a: ir.Value, c: ir.Value, accumulate: bool) -> ir.Value:
        b, op = self.b, e.op
        d = e.a.dtype
        if op in ("lt", "le", "gt", "ge", "eq", "ne"):
            if d.is_float:
                if op == "ne":
                    return b.fcmp_unordered("!=", a, c)  # NaN != NaN
                return b.fcmp_ordered(_FLOAT_CMP[op], a, c)
            if d.is_bool:
                return b.icmp_unsigned(_INT_CMP[op], a, c)
            return b.icmp_signed(_INT_CMP[op], a, c)
        if op in ("and", "or", "xor"):
            return getattr(b, op + "_" if op in ("and", "or") else op)(a, c)
        if d.is_float:
            flags = ACC_FLAGS if accumulate else FLAGS
            if op == "add":
                return b.fadd(a, c, flags=flags)
            if op == "sub":
                return b.fsub(a, c, flags=flags)
            if op == "mul":
                return b.fmul(a, c, flags=flags)
            if op == "div":
                return b.fdiv(a, c, flags=FLAGS)
            if op == "max":
                return self.intrinsic("maximum", [a, c])  # NaN-propagating, as np.maximum
            if op == "min":
                return self.intrinsic("minimum", [a, c])
            if op == "pow":
                return mathlib.call(b, self.module, "pow", [a, c])
        elif d.is_bool:
            if op == "max":
                return b.or_(a, c)
            if op == "min":
                return b.and_(a, c)
        else:
            if op == "add":
                return b.add(a, c)
            if op == "sub":
                return b.sub(a, c)
            if op == "mul":
                return b.mul(a, c)
            if op in ("idiv", "mod"):
                return self.int_division(op, e, a, c)
            if op == "max":
                return self.intrinsic("smax", [a, c])
            if op == "min":
                return self.intrinsic("smin", [a, c])
            if op == "shl":
                return b.shl(a, c)
            if op == "lshr":
                return b.lshr(a, c)
        raise NotImplementedError(f"binary {op} on {d}")

    def int_division(self, op: str, e: Binary, a: ir.Value, c: ir.Value) -> ir.Value:
        """Truncating division / remainder that never traps: x / 0 gives 0 (as NumPy), and
        MIN / -1 wraps to MIN."""
        b = self.b
        if isinstance(e.b, Const) and e.b.value not in (0, -1):
            return b.sdiv(a, c) if op == "idiv" else b.srem(a, c)
        t = a.type
        zero, one, minus = ir.Constant(t, 0), ir.Constant(t, 1), ir.Constant(t, -1)
        lowest = ir.Constant(t, -(1 << (t.width - 1)))
        by_zero = b.icmp_signed("==", c, zero)
        overflow = b.and_(b.icmp_signed("==", a, lowest), b.icmp_signed("==", c, minus))
        safe = b.select(b.or_(by_zero, overflow), one, c)
        if op == "idiv":
            q = b.sdiv(a, safe)
            return b.select(by_zero, zero, b.select(overflow, a, q))
        r = b.srem(a, safe)
        return b.select(b.or_(by_zero, overflow), zero, r)

    def cast(self, x: ir.Value, src: dt.DType, dst: dt.DType) -> ir.Value:
        b = self.b
        if src == dst:
            return x
        t = reg_type(dst)
        if dst.is_bool:
            if src.is_float:
                return b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0))  # NaN is True
            return b.icmp_signed("!=", x, ir.Constant(x.type, 0))
        if src.is_bool:
            return b.uitofp(x, t) if dst.is_float else b.zext(x, t)
        if src.is_float and dst.is_float:
            return b.fpext(x, t) if dst.itemsize > src.itemsize else b.fptrunc(x, t)
        if src.is_float:  # saturating: NaN -> 0, out of range -> the nearest bound
            name = f"llvm.fptosi.sat.{_type_suffix(t)}.{_type_suffix(x.type)}"
            fn = self.module.globals.get(name) or ir.Function(
                self.module, ir.FunctionType(t, [x.type]), name
            )
            return b.call(fn, [x])
        if dst.is_float:
            return b.sitofp(x, t)
        return b.sext(x, t) if dst.itemsize > src.itemsize else b.trunc(x, t)


# Unary ops computed inline as a long chain of dependent vector operations (fastmath.py),
# and the fewest iterations of a loop worth interleaving two vectors of them.
LONG_CHAIN_OPS = ("exp", "tanh", "sigmoid")
INTERLEAVE_MIN_EXTENT = 128


def _long_chains(s: Loop) -> bool:
    """Whether the vectorizer should interleave two vectors per iteration of loop ``s``:
    a body evaluating float32 exp, tanh or sigmoid is ~25 dependent operations per
    function, and one vector's chain at a time left the FMA ports idle (LLVM's cost model
    does not interleave bodies this large). Interleaved: the 4M-element chain tanh(0.5x +
    1) * sigmoid(x) + x^2 on 2 threads 2.05 -> 1.73 ms. Not for every vectorized loop:
    that slowed the MLP step by 2-4 % (short loops fell to their remainders)."""
    size = as_size(s.extent)
    if isinstance(size, int) and size < INTERLEAVE_MIN_EXTENT:
        return False
    return any(
        isinstance(e, Unary) and e.op in LONG_CHAIN_OPS and e.dtype == dt.float32
        for e in subexpressions(expressions(s.body))
    )


def _has_scalef() -> bool:
    return this_machine().vector_bytes == 64


def _type_suffix(t: ir.Type) -> str:
    if t == F32:
        return "f32"
    if t == F64:
        return "f64"
    return f"i{t.width}"


def constant(value: object, d: dt.DType) -> ir.Constant:
    t = reg_type(d)
    if d.is_float:
        return ir.Constant(t, float(value))
    return ir.Constant(t, int(value))
