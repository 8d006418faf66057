"""Splitting a runtime GEMM among a team as independent serial GEMMs (gemm_packed.py; rows
and k also gemm_bf16.py). Tried in this order: k, rows, columns.

- **Rows** (a tall product, 1024 x 1024 x 1024): thread t runs the serial GEMM on its
  range of A's and C's rows, with its own packing buffers. Each thread packs all of B
  (the cooperative team packs it once, shared), but no thread waits for another until
  the end, and each one's data stays in its own core's caches. Measured on 2 cores: the
  cooperative team's threads ran their micro-kernels 11-19 % slower than one thread alone
  (in lockstep, both the same), while two independent serial GEMMs ran at full speed;
  1024^3 on 2 threads 8.3 -> 7.0 ms. Worth it once each thread has enough rows that its
  copy of B is cheap next to its products (RowSplit).
- **Columns** (rows too few to split, at least one register tile's width of columns per
  thread: 128 x 1024 x 1024, 64 x 64 x 5408): the same, by ranges of B's and C's
  columns; each thread packs all of A. Against the cooperative team, 2 threads: 64 x 64 x
  5408 1.20x, 128 x 1024 x 1024 1.11x, 20 x 2000 x 2000 1.26x, 60 x 300 x 200 1.22x, 48 x
  784 x 128 1.00x. (The bf16 GEMM's own team already packs per thread: within 2 % either
  way, so it does not split columns.)
- **k** (few rows and columns, a long k: a dense layer at a small batch, 64 x 5408 x 64;
  a weight gradient): a team has little to share by rows or columns, since every thread
  would read all of the operand that is not split. Thread t runs the serial GEMM on its
  range of k into C (t = 0, with the caller's beta) or into its partial sums (m x n,
  row-major, in its workspace); after a barrier the threads add the partial sums into C,
  each a range of C's rows.

The workspace of a call is ``threads`` x WORKSPACE_BYTES then (gemm_packed.py): thread t's
packing buffers and partial sums are its t-th slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from .float_env import subnormals_flushed
from .llvm_builders import Loops, declare, imax, imin
from .machine import Machine
from .parallel import store_untyped

I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR, VOID = ir.PointerType(), ir.VoidType()

# Split k when it is at least this many times the longer of m and n (and the product is
# worth a team): the partial sums then cost less than reading the unsplit operand again.
# In a training step it also keeps a dense layer's weight where the optimizer's update
# left it: that update splits the weight's rows (k of the next forward product) between
# the threads, and split k has each thread read only its own rows. 3, not 4: the MLP
# 784-256-128-10 Adam step at batch 64 0.488 -> 0.450 ms (its first layer, 64 x 784 x
# 256, now splits k), at batch 256 1.20 -> 1.17 ms.
SPLIT_K_DEPTH = 3
PARTIAL_BYTES = 1 << 18  # a thread's partial sums at most (m x n elements)
SPLIT_K_MIN_PRODUCTS = 1 << 22  # m n k at least: fewer are not worth a team


@dataclass(frozen=True)
class RowSplit:
    """When a team splits rows: every thread gets at least ``min_rows`` of them, and, when
    B is larger than the small-B size (each thread then reads all of it from memory, not
    from its cache: ``small_b_bytes``), at least ``min_rows_large_b``."""

    min_rows: int
    min_rows_large_b: int


def small_b_bytes(machine: Machine) -> int:
    """The largest B a row split copies into every thread without counting it as read
    from memory: half of a core's L2 (1 MiB on the 2 MiB L2 these rules were measured on)."""
    return machine.l2 // 2


# Measured on 2 cores against the cooperative team (gemm_packed.py): 64 x 784 x 256 1.09x,
# 96 x 784 x 256 1.34x, 256 x 784 x 256 1.11x, 1024^3 1.18x, 256 x 1024 x 1024 1.11x; but
# 128 x 1024 x 1024 0.86x and 128 x 512 x 2048 0.83x.
FLOAT32_ROWS = RowSplit(min_rows=32, min_rows_large_b=128)
# The bf16 GEMM's products are ~10x faster and its packing is not, so a thread's own copy
# of B needs more rows to pay for it: 256 x 784 x 256 1.24x, 1024^3 1.12x, 128 x 784 x 256
# 1.05x; but 64 x 784 x 256 0.88x, 512 x 1024 x 1024 0.93x, 384 x 2048 x 2048 0.78x.
BF16_ROWS = RowSplit(min_rows=64, min_rows_large_b=512)
# The GEMM's arguments (gemm_packed.GEMM_TYPE): a, b, c, m, n, k, six strides, beta,
# workspace, threads
_A, _B, _C, _M, _N, _K, _A_RS, _A_CS, _B_RS, _B_CS, _C_RS, _C_CS, _BETA, _WS, _THREADS = range(15)


def _c64(v: int) -> ir.Constant:
    return ir.Constant(I64, v)


def _c32(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def splits_k(b: ir.IRBuilder, args: list[ir.Value], elem_bytes: int) -> ir.Value:
    """Whether a call with these arguments (a team of threads > 1 asked for) splits k."""
    m, n, k, threads = args[_M], args[_N], args[_K], args[_THREADS]
    deep = b.icmp_signed(">=", k, b.mul(imax(b, m, n), _c64(SPLIT_K_DEPTH)))
    fits = b.icmp_signed("<=", b.mul(b.mul(m, n), _c64(elem_bytes)), _c64(PARTIAL_BYTES))
    team = b.icmp_signed(">", threads, _c64(1))
    big = b.icmp_signed(">=", b.mul(b.mul(m, n), k), _c64(SPLIT_K_MIN_PRODUCTS))
    return b.and_(b.and_(deep, fits), b.and_(team, big))


def splits_rows(
    b: ir.IRBuilder, args: list[ir.Value], rule: RowSplit, b_bytes: int, small_b: ir.Value
) -> ir.Value:
    """Whether a call with these arguments (a team of threads > 1 asked for) splits rows;
    B's elements are ``b_bytes`` each, ``small_b`` the machine's small-B size (i64)."""
    m, n, k, threads = args[_M], args[_N], args[_K], args[_THREADS]
    team = b.icmp_signed(">", threads, _c64(1))

    def rows_each(at_least: int) -> ir.Value:
        return b.icmp_signed(">=", m, b.mul(threads, _c64(at_least)))

    fits = b.icmp_signed("<=", b.mul(b.mul(k, n), _c64(b_bytes)), small_b)
    enough = b.or_(b.and_(fits, rows_each(rule.min_rows)), rows_each(rule.min_rows_large_b))
    return b.and_(team, enough)


def splits_cols(b: ir.IRBuilder, args: list[ir.Value], col_multiple: int) -> ir.Value:
    """Whether a call with these arguments (a team of threads > 1 asked for, rows not
    split) splits columns: every thread gets at least one register tile's width."""
    n, threads = args[_N], args[_THREADS]
    team = b.icmp_signed(">", threads, _c64(1))
    wide = b.icmp_signed(">=", n, b.mul(threads, _c64(col_multiple)))
    return b.and_(team, wide)


def launch(b: ir.IRBuilder, module: ir.Module, region: ir.Function, args) -> None:
    """Run ``region`` (a split_*_region) on a team of ``threads`` with these arguments."""
    table_t = ir.ArrayType(I64, len(args))
    table = b.alloca(table_t)
    for i, v in enumerate(args):
        store_untyped(b, v, b.gep(table, [_c32(0), _c32(i)], source_etype=table_t))
    gomp = declare(module, "GOMP_parallel", ir.FunctionType(VOID, [PTR, PTR, I32, I32]))
    threads = b.trunc(args[_THREADS], I32)
    b.call(gomp, [region, table, threads, ir.Constant(I32, 0)])


def split_k_region(
    module: ir.Module,
    serial: ir.Function,
    ftype: ir.Type,
    workspace_bytes: int,
    partial_offset: int,
    name: str,
) -> ir.Function:
    """A team's entry: thread t multiplies its range of k with ``serial`` (the GEMM itself,
    called with one thread), then the team adds the partial sums into C."""

    def emit(fn: ir.Function) -> None:
        _emit_k_work(fn, module, serial, ftype, workspace_bytes, partial_offset)

    return _team_entry(module, name, emit)


def split_range_region(
    module: ir.Module,
    serial: ir.Function,
    ftype: ir.Type,
    workspace_bytes: int,
    multiple: int,
    by_rows: bool,
    name: str,
) -> ir.Function:
    """A team's entry: thread t multiplies its range of rows (``by_rows``) or columns,
    whole multiples of ``multiple`` (the serial GEMM's register tile), with ``serial``."""

    def emit(fn: ir.Function) -> None:
        _emit_range_work(fn, serial, ftype, workspace_bytes, multiple, by_rows)

    return _team_entry(module, name, emit)


def _team_entry(module: ir.Module, name: str, emit_work) -> ir.Function:
    """The team's entry ``name``: this thread's number and the team's size, then the work
    function ``emit_work`` fills in (thread tid of nth, the call's argument table)."""
    work = ir.Function(module, ir.FunctionType(VOID, [PTR, I64, I64]), f"{name}.work")
    work.linkage = "internal"
    work.attributes.add("noinline")  # (no arithmetic moves across the MXCSR writes)
    emit_work(work)
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR]), name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    i32_fn = ir.FunctionType(I32, [])
    tid = b.sext(b.call(declare(module, "omp_get_thread_num", i32_fn), []), I64)
    nth = b.sext(b.call(declare(module, "omp_get_num_threads", i32_fn), []), I64)
    # the pool's threads flush subnormals as the calling thread does (the float32
    # GEMM's team regions do the same)
    with subnormals_flushed(b, b.icmp_signed("!=", tid, _c64(0))):
        b.call(work, [fn.args[0], tid, nth])
    b.ret_void()
    return fn


def _arguments(b: ir.IRBuilder, data: ir.Value) -> list[ir.Value]:
    """The call's arguments, from the table ``launch`` stored."""
    table_t = ir.ArrayType(I64, 15)
    types = [PTR] * 3 + [I64] * 10 + [PTR, I64]
    return [
        b.load(b.gep(data, [_c32(0), _c32(i)], source_etype=table_t), typ=t)
        for i, t in enumerate(types)
    ]


def _element(b: ir.IRBuilder, ftype, base, row, col, rs, cs) -> ir.Value:
    return b.gep(base, [b.add(b.mul(row, rs), b.mul(col, cs))], source_etype=ftype)


def _share(b: ir.IRBuilder, total, t, nth, multiple: int) -> tuple[ir.Value, ir.Value]:
    """Thread ``t``'s range [lo, hi) of ``total`` split among ``nth``: whole multiples of
    ``multiple``, the last range shorter (or empty)."""
    per = b.sdiv(b.add(total, b.sub(nth, _c64(1))), nth)
    per = b.mul(b.sdiv(b.add(per, _c64(multiple - 1)), _c64(multiple)), _c64(multiple))
    lo = imin(b, b.mul(t, per), total)
    return lo, imin(b, b.add(lo, per), total)


def _workspace_of(b: ir.IRBuilder, g: list[ir.Value], t, workspace_bytes: int) -> ir.Value:
    """Thread ``t``'s slice of the call's workspace."""
    return b.gep(g[_WS], [b.mul(t, _c64(workspace_bytes))], source_etype=I8)


def _emit_range_work(fn, serial, ftype, workspace_bytes: int, multiple: int, by_rows: bool) -> None:
    """Thread ``tid`` of ``nth``: the serial GEMM on its range of C's rows (A's rows) or
    columns (B's columns), whole multiples of ``multiple``, in its workspace slice."""
    data, tid, nth = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    L = Loops(fn, b)
    g = _arguments(b, data)
    lo, hi = _share(b, g[_M] if by_rows else g[_N], tid, nth, multiple)
    zero = _c64(0)
    if by_rows:
        a = _element(b, ftype, g[_A], lo, zero, g[_A_RS], g[_A_CS])
        bb, c = g[_B], _element(b, ftype, g[_C], lo, zero, g[_C_RS], g[_C_CS])
        m, n = b.sub(hi, lo), g[_N]
    else:
        a, bb = g[_A], _element(b, ftype, g[_B], zero, lo, g[_B_RS], g[_B_CS])
        c = _element(b, ftype, g[_C], zero, lo, g[_C_RS], g[_C_CS])
        m, n = g[_M], b.sub(hi, lo)
    call = [a, bb, c, m, n, *g[_K : _BETA + 1], _workspace_of(b, g, tid, workspace_bytes), _c64(1)]
    L.when(b.icmp_signed("<", lo, hi), lambda: b.call(serial, call))
    b.ret_void()


def _emit_k_work(fn, module, serial, ftype, workspace_bytes: int, partial_offset: int) -> None:
    """Thread ``tid`` of ``nth``: its range of k, the barrier, its rows of the sums."""
    data, tid, nth = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    L = Loops(fn, b)
    g = _arguments(b, data)
    m, n, k = g[_M], g[_N], g[_K]

    def k_range(t):  # whole multiples of 32 of k
        return _share(b, k, t, nth, 32)

    def workspace_of(t):
        return _workspace_of(b, g, t, workspace_bytes)

    def partial_of(t):
        return b.gep(workspace_of(t), [_c64(partial_offset)], source_etype=I8)

    def element(base, row, col, rs, cs):
        return _element(b, ftype, base, row, col, rs, cs)

    p0, p1 = k_range(tid)
    first = b.icmp_signed("==", tid, _c64(0))
    call = [
        element(g[_A], _c64(0), p0, g[_A_RS], g[_A_CS]),
        element(g[_B], p0, _c64(0), g[_B_RS], g[_B_CS]),
        b.select(first, g[_C], partial_of(tid)),
        m,
        n,
        b.sub(p1, p0),
        *g[_A_RS : _B_CS + 1],
        b.select(first, g[_C_RS], n),
        b.select(first, g[_C_CS], _c64(1)),
        b.select(first, g[_BETA], _c64(0)),
        workspace_of(tid),
        _c64(1),
    ]
    L.when(b.icmp_signed("<", p0, p1), lambda: b.call(serial, call))
    b.call(declare(module, "GOMP_barrier", ir.FunctionType(VOID, [])), [])

    # this thread's rows of C: the partial sums of every other nonempty range added
    rows = b.sdiv(b.add(m, b.sub(nth, _c64(1))), nth)
    r0 = imin(b, b.mul(tid, rows), m)
    r1 = imin(b, b.add(r0, rows), m)

    def add_partial(t):
        part = partial_of(t)

        def row(r):
            def col(j):
                ptr = element(g[_C], r, j, g[_C_RS], g[_C_CS])
                src = element(part, r, j, n, _c64(1))
                b.store(b.fadd(b.load(ptr, typ=ftype), b.load(src, typ=ftype)), ptr)

            L.range(0, n, 1, col, "sj")

        lo, hi = k_range(t)
        L.when(b.icmp_signed("<", lo, hi), lambda: L.range(r0, r1, 1, row, "si"))

    L.range(1, nth, 1, add_partial, "st")
    b.ret_void()
