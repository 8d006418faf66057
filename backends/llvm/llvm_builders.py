"""Small builders for hand-written LLVM IR (the GEMMs): function attributes, counted loops
and conditionals, integer min/max, declaring a function once per module, and an
in-register transpose."""

from __future__ import annotations

import llvmlite.ir as ir

I32, I64 = ir.IntType(32), ir.IntType(64)


class FunctionAttributes(ir.values.FunctionAttributes):
    """llvmlite accepts only known attribute names; generated code also needs string ones
    ("prefer-vector-width"="512", ...)."""

    def add(self, name: str) -> None:
        set.add(self, name)


def set_function_attributes(fn: ir.Function) -> None:
    """What every generated function carries (kernels, their parallel trampolines, the
    entry points, the bf16 GEMM)."""
    attrs = FunctionAttributes()
    attrs.update(fn.attributes)
    attrs.add("nounwind")
    # LLVM uses 256-bit vectors on AVX-512 machines unless told otherwise.
    attrs.add('"prefer-vector-width"="512"')
    # Divides marked arcp (fastmath.py's, never a user's division) become a reciprocal
    # estimate refined by one Newton step.
    attrs.add('"reciprocal-estimates"="vec-divf:1,divf:1"')
    fn.attributes = attrs


class Loops:
    """Small helpers for writing loops with llvmlite."""

    def __init__(self, fn: ir.Function, b: ir.IRBuilder):
        self.fn, self.b = fn, b

    def range(self, start, stop, step, body, name="i"):
        b = self.b
        start = _c(start)
        stop = _c(stop)
        pre = b.block
        head = self.fn.append_basic_block(f"{name}.head")
        loop = self.fn.append_basic_block(f"{name}.body")
        done = self.fn.append_basic_block(f"{name}.done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64, name=name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), loop, done)
        b.position_at_end(loop)
        body(i)
        i.add_incoming(b.add(i, _c(step)), b.block)
        b.branch(head)
        b.position_at_end(done)

    def first_of(self, name, cases, otherwise):
        """Emit the body of the first (condition, body) case that holds, else ``otherwise``."""
        b = self.b
        done = self.fn.append_basic_block(f"{name}.done")
        for number, (cond, body) in enumerate(cases):
            then = self.fn.append_basic_block(f"{name}.case{number}")
            rest = self.fn.append_basic_block(f"{name}.not{number}")
            b.cbranch(cond, then, rest)
            b.position_at_end(then)
            body()
            b.branch(done)
            b.position_at_end(rest)
        otherwise()
        b.branch(done)
        b.position_at_end(done)

    def when(self, cond, body):
        b = self.b
        then = self.fn.append_basic_block("then")
        done = self.fn.append_basic_block("endif")
        b.cbranch(cond, then, done)
        b.position_at_end(then)
        body()
        b.branch(done)
        b.position_at_end(done)


def transpose_in_registers(b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
    """The transpose of a square block held as ``len(rows)`` vectors of as many lanes (a
    power of two): log2(n) rounds of two-input shuffles. Round h pairs row i with row
    i + h (i & h == 0) and interleaves their blocks of h lanes: the first halves of each
    2h-lane block go to row i, the second halves to row i + h."""
    n = len(rows)
    rows = list(rows)
    h = n // 2
    while h >= 1:
        low = [base + t for blk in range(0, n, 2 * h) for base in (blk, n + blk) for t in range(h)]
        high = [i + h for i in low]
        for i in range(n):
            if i & h:
                continue
            x, y = rows[i], rows[i + h]
            rows[i] = b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, n), low))
            rows[i + h] = b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, n), high))
        h //= 2
    return rows


def _c(v):
    return ir.Constant(I64, v) if isinstance(v, int) else v


def imin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def imax(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def declare(module: ir.Module, name: str, ftype: ir.FunctionType) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ftype, name)


def _vector_suffix(vt: ir.VectorType) -> str:
    element = {"float": "f32", "double": "f64"}[str(vt.element)]
    return f"v{vt.count}{element}"


def masked_load(module: ir.Module, vt: ir.VectorType) -> ir.Function:
    """llvm.masked.load for vectors ``vt``: (pointer, alignment, mask, passthru) -> vector;
    lanes off in the mask are not read and take the passthru's values."""
    mask_t = ir.VectorType(ir.IntType(1), vt.count)
    ftype = ir.FunctionType(vt, [ir.PointerType(), ir.IntType(32), mask_t, vt])
    return declare(module, f"llvm.masked.load.{_vector_suffix(vt)}.p0", ftype)


def masked_store(module: ir.Module, vt: ir.VectorType) -> ir.Function:
    """llvm.masked.store for vectors ``vt``: (vector, pointer, alignment, mask)."""
    mask_t = ir.VectorType(ir.IntType(1), vt.count)
    ftype = ir.FunctionType(ir.VoidType(), [vt, ir.PointerType(), ir.IntType(32), mask_t])
    return declare(module, f"llvm.masked.store.{_vector_suffix(vt)}.p0", ftype)


def loop_hints(module: ir.Module, **hints: int) -> ir.MDValue:
    """A loop ID for a loop's back-edge branch (``branch.set_metadata("llvm.loop", ...)``)
    carrying ``llvm.loop.<name>`` hints, e.g. ``interleave_count=2``. Each loop gets its
    own node: a loop ID refers to itself, which makes it distinct (llvmlite's
    add_metadata would share equal nodes between loops)."""
    I32 = ir.IntType(32)
    operands = [
        module.add_metadata(
            [ir.MetaDataString(module, "llvm.loop." + name.replace("_", ".")), ir.Constant(I32, v)]
        )
        for name, v in hints.items()
    ]
    node = ir.values.MDValue(module, [], name=str(len(module.metadata)))
    node.operands = (node, *operands)  # (so never hash it: add_metadata([node]) would recurse)
    return node
