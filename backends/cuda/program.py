"""A Program -> CUDA C: one ``extern "C" __global__`` function per launch (see emit.py)."""

from __future__ import annotations

import math
from dataclasses import replace

from ...ir.kernel import (
    BATCH_SIZE,
    Assign,
    Gemm,
    If,
    Kernel,
    Let,
    Local,
    Loop,
    Stmt,
    Store,
    Var,
    as_size,
)
from ...ir.kernel_visit import own_expressions, postorder, walk
from ...ir.symbolic import Dim, hint
from ...lowering.program import Program, physical_params
from .collapse import Collapsed, affine, collapse
from .emit import (
    BLOCK,
    WORKSPACE,
    CudaSource,
    ExprPrinter,
    Launch,
    blocks,
    grid_stride_blocks,
    mem_type,
    reg_type,
    size_text,
)
from .gemm import GEMM_TILE, gemm_splits, implicit_operands
from .prelude import PRELUDE
from .prelude_bf16 import PRELUDE_BF16
from .reductions import combine_function, reduction_nest
from .vectorize import LANES, VectorBody, vectorize


class KernelWriter:
    def __init__(
        self,
        kernel: Kernel,
        physical: dict[str, str],
        combiners: dict[str, str],
        dynamic: bool = False,
    ):
        self.kernel = kernel
        self.physical = physical
        self.params = physical_params(kernel, physical)
        self.printer = ExprPrinter(_shared_expressions(kernel.body), set(self._locals(kernel.body)))
        self.lines: list[str] = []
        self.uses_bf16 = False  # a GEMM of bf16 products (PRELUDE_BF16)
        self.combiners = combiners  # shared by the translation unit: name -> definition
        # a dynamic-batch program: every function takes the batch size n after its buffers
        self.dynamic = dynamic
        if dynamic:
            self.printer.loop_vars.add(BATCH_SIZE.name)  # (a bounded index: plain C math)

    def name(self, buffer: str) -> str:
        return self.physical.get(buffer, buffer)

    # ---- statements --------------------------------------------------------------------

    def block(self, stmts: list[Stmt], depth: int) -> None:
        for s in stmts:
            self.stmt(s, depth)

    def open(self, line: str) -> None:
        """A line that opens a C block: names computed inside stay inside."""
        self.lines.append(line)
        self.printer.push()

    def close(self, line: str) -> None:
        self.lines.append(line)
        self.printer.pop()

    def function(self, function: str, extra: str = "") -> None:
        self.lines.append(self.signature(function, extra) + " {")
        self.printer.memo = [{}]  # a new C function: nothing computed yet

    def emit(self, depth: int, exprs, render) -> None:
        decls, texts = self.printer.statement(list(exprs))
        pad = "  " * depth
        self.lines += [pad + d for d in decls]
        self.lines.append(pad + render(*texts))

    def store_text(self, s: Store, index: str, value: str) -> str:
        cast = "(uint8_t)" if s.value.dtype.is_bool else ""  # bools are bytes in memory
        return f"{self.name(s.buffer)}[{index}] = {cast}{value};"

    def stmt(self, s: Stmt, depth: int) -> None:
        pad = "  " * depth
        if isinstance(s, Let):
            t = reg_type(s.value.dtype)
            self.emit(depth, [s.value], lambda v: f"const {t} {s.name} = {v};")
        elif isinstance(s, Local):
            self.emit(depth, [s.init], lambda v: f"{reg_type(s.dtype)} {s.name} = {v};")
        elif isinstance(s, Assign):
            self.emit(depth, [s.value], lambda v: f"{s.name} = {v};")
        elif isinstance(s, Store):
            self.emit(depth, [s.index, s.value], lambda i, v: self.store_text(s, i, v))
        elif isinstance(s, If):
            self.emit(depth, [s.cond], lambda c: f"if ({c}) {{")
            self.printer.push()
            self.block(s.then, depth + 1)
            if s.otherwise:
                self.close(pad + "} else {")
                self.printer.push()
                self.block(s.otherwise, depth + 1)
            self.close(pad + "}")
        elif isinstance(s, Loop):
            extent = as_size(s.extent)
            if extent is None:
                raise NotImplementedError("CUDA backend: loops with a computed extent")
            v = s.var
            self.printer.loop_vars.add(v)
            self.open(f"{pad}for (int64_t {v} = 0; {v} < {size_text(extent)}; ++{v}) {{")
            self.block(s.body, depth + 1)
            self.close(pad + "}")
        elif isinstance(s, Gemm):
            raise NotImplementedError("CUDA backend: a GEMM inside a loop or branch")
        else:
            raise TypeError(f"unknown statement {s!r}")

    # ---- launches ----------------------------------------------------------------------

    def signature(self, function: str, extra: str = "") -> str:
        args = [f"{mem_type(p.dtype)}* __restrict__ {p.name}" for p in self.params]
        args += [extra][: bool(extra)]
        if self.dynamic:
            args.append(f"const int64_t {BATCH_SIZE.name}")
        return f'extern "C" __global__ void {function}({", ".join(args)})'

    def launches(self) -> list[Launch]:
        scalars: list[Stmt] = []  # pure top-level statements, recomputed by every launch
        shared_locals = {s.name for s in self.kernel.body if isinstance(s, Local)}
        out: list[Launch] = []
        names = tuple(p.name for p in self.params)
        types = tuple(mem_type(p.dtype) for p in self.params)
        self.implicit = implicit_operands(self.kernel.body, self.physical)
        producers = {id(producer) for producer, _ in self.implicit.values()}
        for s in _split_checks(self.kernel.body, shared_locals):
            if _pure(s):
                scalars.append(s)
                continue
            if id(s) in producers:
                continue  # computed inside the GEMMs that read it (implicit GEMM)
            function = f"{self.kernel.name}_{len(out)}"
            if _assigns(s, shared_locals):
                raise NotImplementedError(
                    "CUDA backend: a loop that stores and updates a scalar of its kernel"
                )
            if isinstance(s, Gemm):
                out += self.gemm(function, s, scalars, names, types)
                continue
            outer = _gemm_over_a_loop(s)
            if outer is not None:
                out.append(self.outer_gemm(function, s, outer, names, types))
                continue
            independent = isinstance(s, Loop) and (s.parallel or s.independent)
            sized = isinstance(s, Loop) and as_size(s.extent) is not None
            nest = collapse(s, self.physical) if independent and sized else None
            if self._blockwise(scalars, s, nest):
                out.append(self.block_launch(function, scalars, s, nest, names, types))
                continue
            self.function(function)
            self.block(scalars, 1)
            # (four lanes along a fixed innermost extent; the batch, if any, is outermost)
            fixed = nest is not None and isinstance(nest.loops[-1][1], int)
            vector = vectorize(nest, self.physical) if fixed else None
            if vector is not None:
                self.vector_loop(s.var, nest, vector)
                grid = (grid_stride_blocks(nest.total // LANES), 1, 1)
                out.append(self.launch(function, "grid-stride", grid, names, types))
            elif nest is not None:
                flat = s.var if len(nest.loops) == 1 else f"f_{s.var}"
                self.printer.loop_vars.add(flat)
                self.open(
                    f"  for (int64_t {flat} = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;"
                    f" {flat} < {size_text(nest.total)};"
                    f" {flat} += (int64_t)gridDim.x * blockDim.x) {{"
                )
                if len(nest.loops) > 1:
                    self.unflatten(flat, nest.loops, 2)
                self.block(nest.body, 2)
                self.close("  }")
                grid = (grid_stride_blocks(nest.total), 1, 1)
                out.append(self.launch(function, "grid-stride", grid, names, types))
            else:
                self.stmt(s, 1)
                out.append(
                    Launch(function, "single", (1, 1, 1), (1, 1, 1), names, types, 0, self.dynamic)
                )
            self.lines.append("}")
            self.lines.append("")
        return out

    def launch(self, function, kind, grid, names, types, workspace=0) -> Launch:
        """A launch of BLOCK-thread blocks (and of the batch size, in a dynamic program)."""
        return Launch(function, kind, grid, (BLOCK, 1, 1), names, types, workspace, self.dynamic)

    # ---- block launches: reductions split across a thread block ------------------------

    def _locals(self, stmts: list[Stmt]) -> dict[str, Local]:
        found: dict[str, Local] = {}
        for s in stmts:
            if isinstance(s, Local):
                found[s.name] = s
            elif isinstance(s, Loop):
                found.update(self._locals(s.body))
        return found

    def _blockwise(self, scalars: list[Stmt], s: Stmt, rows: Collapsed | None) -> bool:
        """Run this launch as thread blocks (one per row of the independent ``rows``
        nest, collapsed) if it has a reduction nest the block can split and every other
        statement is either pure (every thread computes it alike) or stores without
        updating a scalar (thread 0 runs it)."""
        body = scalars + (rows.body if rows is not None else [s])
        locals_ = self._locals(body)
        found = False
        for stmt in body:
            if reduction_nest(stmt, locals_) is not None:
                found = True
            elif not _pure(stmt) and _assigns(stmt, set(locals_)):
                return False
        return found

    def block_body(self, stmts: list[Stmt], depth: int) -> None:
        pad = "  " * depth
        locals_ = self._locals(stmts)
        for s in stmts:
            nest = reduction_nest(s, locals_)
            if nest is not None:
                self.block_nest(nest, depth)
            elif _pure(s):
                self.stmt(s, depth)  # every thread, alike
            elif isinstance(s, Store):
                # every thread computes the value (and names shared with later statements)
                # before thread 0 stores it over memory they may read
                decls, (i, v) = self.printer.statement([s.index, s.value])
                self.lines += [pad + d for d in decls]
                if decls:
                    self.lines.append(f"{pad}__syncthreads();  // all have read")
                self.lines.append(f"{pad}if (threadIdx.x == 0) {self.store_text(s, i, v)}")
                self.lines.append(f"{pad}__syncthreads();  // the store is visible to all")
            else:
                self.open(f"{pad}if (threadIdx.x == 0) {{")
                self.stmt(s, depth + 1)
                self.close(f"{pad}}}")
                self.lines.append(f"{pad}__syncthreads();  // the stores are visible to all")

    def vector_loop(self, var: str, nest: Collapsed, vector: VectorBody) -> None:
        """A grid-stride loop taking four iterations at a time (vectorize.py)."""
        quad, flat = f"q_{var}", f"f_{var}"
        self.printer.loop_vars.update((quad, flat))
        self.open(
            f"  for (int64_t {quad} = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;"
            f" {quad} < {size_text(nest.total // LANES)};"
            f" {quad} += (int64_t)gridDim.x * blockDim.x) {{"
        )
        self.lines.append(f"    const int64_t {flat} = {quad} * {LANES}LL;")
        self.unflatten(flat, nest.loops, 2)
        lanes = [s for lane in vector.lanes for s in lane]
        self.printer.shared = self.printer.shared | _shared_expressions(lanes)
        for i, load in enumerate(vector.loads):
            buf = self.name(load.buffer)
            self.emit(
                2,
                [load.index],
                lambda at, i=i, buf=buf: (
                    f"const float4 nc_v{i} = *reinterpret_cast<const float4*>(&{buf}[{at}]);"
                ),
            )
        self.block(lanes, 2)
        for store, values in vector.stores:
            buf = self.name(store.buffer)
            self.emit(
                2,
                [store.index],
                lambda at, buf=buf, values=values: (
                    f"*reinterpret_cast<float4*>(&{buf}[{at}]) = make_float4({', '.join(values)});"
                ),
            )
        self.close("  }")

    def unflatten(self, flat: str, loops: list[tuple[str, int | Dim]], depth: int) -> None:
        """Each loop variable of a collapsed nest from the flat index (row-major)."""
        for i, (var, extent) in enumerate(loops):
            stride = math.prod(e for _, e in loops[i + 1 :])  # (a size: n may be in it)
            self.printer.loop_vars.add(var)
            value = f"{flat} / {size_text(stride)}" if stride != 1 else flat
            if i > 0:
                value = f"({value}) % {size_text(extent)}"
            self.lines.append(f"{'  ' * depth}const int64_t {var} = {value};")

    def block_nest(self, nest, depth: int) -> None:
        pad = "  " * depth
        total = size_text(math.prod(extent for _, extent in nest.loops))
        flat = f"f_{nest.loops[-1][0]}"
        self.printer.loop_vars.add(flat)
        self.open(
            f"{pad}for (int64_t {flat} = threadIdx.x; {flat} < {total}; {flat} += blockDim.x) {{"
        )
        self.unflatten(flat, nest.loops, depth + 1)
        self.block(nest.body, depth + 1)
        self.close(f"{pad}}}")
        for acc, (op, d) in nest.accumulators.items():
            name, definition = combine_function(op, d)
            self.combiners[name] = definition
            t = reg_type(d)
            self.lines.append(f"{pad}{acc} = nc_block_reduce<{t}, {name}>({acc});")

    def block_launch(
        self,
        function: str,
        scalars: list[Stmt],
        s: Stmt,
        rows: Collapsed | None,
        names: tuple[str, ...],
        types: tuple[str, ...],
    ) -> Launch:
        self.function(function)
        if rows is not None:
            v = s.var if len(rows.loops) == 1 else f"f_{s.var}"
            self.printer.loop_vars.add(v)
            self.block_body(scalars, 1)
            self.open(
                f"  for (int64_t {v} = blockIdx.x; {v} < {size_text(rows.total)};"
                f" {v} += gridDim.x) {{"
            )
            if len(rows.loops) > 1:
                self.unflatten(v, rows.loops, 2)
            self.block_body(rows.body, 2)
            self.lines.append("    __syncthreads();  // the next row reuses the block's memory")
            self.close("  }")
            grid = (blocks(rows.total, 1), 1, 1)
        else:
            self.block_body(scalars + [s], 1)
            grid = (1, 1, 1)
        self.lines += ["}", ""]
        return self.launch(function, "block", grid, names, types)

    def gemm(
        self,
        function: str,
        g: Gemm,
        scalars: list[Stmt],
        names: tuple[str, ...],
        types: tuple[str, ...],
    ) -> list[Launch]:
        """One launch of 64 x 64 tiles; when those are too few to fill the GPU and K is
        long, K is split and a second launch adds the splits' partial tiles."""
        if not all(isinstance(o, int) for o in (g.a_offset, g.b_offset, g.c_offset)):
            raise NotImplementedError("CUDA backend: a GEMM with computed offsets")
        if g.batch == 0 or g.m == 0 or g.n == 0:
            return []  # an empty product writes nothing
        t = reg_type(g.dtype)
        c = self.name(g.c)
        cols, rows = blocks(g.n, GEMM_TILE, None), blocks(g.m, GEMM_TILE, None)
        tiles = math.prod(blocks(hint(d), GEMM_TILE, None) for d in (g.n, g.m)) * hint(g.batch)
        splits, chunk = gemm_splits(tiles, hint(g.k))
        if type(g.batch) is Dim:  # grid.z runs over the batch: no room to split K too
            splits, chunk = 1, g.k
        if type(g.k) is Dim and splits > 1:  # whole tile steps of ceil(k / splits), per call
            chunk = f"((({size_text(g.k)} + {splits - 1}LL) / {splits}LL + 15LL) / 16LL * 16LL)"
        else:
            chunk = size_text(chunk if splits > 1 else g.k)
        names, types = names + (WORKSPACE,), types + (t,)
        (ab, ar, ac), (bb, br, bc), (cb, cr, cc) = g.a_strides, g.b_strides, g.c_strides
        accumulate = "true" if g.accumulate else "false"
        self.function(function, f"{t}* __restrict__ {WORKSPACE}")
        if any(x in self.implicit for x in (g.a, g.b)):
            self.block(scalars, 1)  # an implicit operand's value may use them
        self.loader("nc_load_a", g.a, t)
        self.loader("nc_load_b", g.b, t)
        m, n, k = size_text(g.m), size_text(g.n), size_text(g.k)
        ab, ar, ac, bb, br, bc, cb, cr, cc = map(size_text, (ab, ar, ac, bb, br, bc, cb, cr, cc))
        self.lines += [
            f"  nc_gemm<{t}{self.bf16(g)}>(nc_load_a, nc_load_b, {c} + {g.c_offset}LL,"
            f" {WORKSPACE},"
            f" {m}, {n}, {k}, {splits}LL, {chunk}, {g.a_offset}LL, {ab},"
            f" {ar}, {ac}, {g.b_offset}LL, {bb}, {br}, {bc}, {cb}, {cr}, {cc},"
            f" {accumulate});",
            "}",
            "",
        ]
        grid = (cols, rows, blocks(g.batch * splits, 1, None))
        if splits == 1:
            return [self.launch(function, "gemm", grid, names, types)]
        workspace = g.batch * splits * g.m * g.n * g.dtype.itemsize
        total = g.batch * g.m * g.n
        self.lines += [
            self.signature(function + "_sum", f"{t}* __restrict__ {WORKSPACE}") + " {",
            f"  nc_gemm_sum<{t}>({WORKSPACE}, {c} + {g.c_offset}LL, {size_text(g.batch)}, {m},"
            f" {n}, {splits}LL, {cb}, {cr}, {cc}, {accumulate});",
            "}",
            "",
        ]
        return [
            self.launch(function, "gemm", grid, names, types, workspace),
            self.launch(
                function + "_sum",
                "grid-stride",
                (grid_stride_blocks(total), 1, 1),
                names,
                types,
                workspace,
            ),
        ]

    def bf16(self, g: Gemm) -> str:
        """The GEMM template's precision argument: ", true" for bf16 products (and the
        program then needs PRELUDE_BF16)."""
        if g.bf16:
            self.uses_bf16 = True
            return ", true"
        return ""

    def outer_gemm(self, function, loop: Loop, offsets, names, types) -> Launch:
        """A loop around one GEMM whose operands move with the loop variable (a matmul
        batched over (n, heads) with strides that do not merge into one batch): one
        launch whose grid.z runs over (loop, GEMM batch), K unsplit."""
        g = loop.body[0]
        extent = as_size(loop.extent)
        t = reg_type(g.dtype)
        self.function(function, f"{t}* __restrict__ {WORKSPACE}")
        self.loader("nc_load_a", g.a, t)
        self.loader("nc_load_b", g.b, t)
        (a0, ao), (b0, bo), (c0, co) = offsets
        (ab, ar, ac), (bb, br, bc), (cb, cr, cc) = g.a_strides, g.b_strides, g.c_strides
        sizes = (g.m, g.n, g.k, g.batch, a0, ao, ab, ar, ac, b0, bo, bb, br, bc, co, cb, cr, cc)
        m, n, k, batch, a0, ao, ab, ar, ac, b0, bo, bb, br, bc, co, cb, cr, cc = map(
            size_text, sizes
        )
        accumulate = "true" if g.accumulate else "false"
        self.lines += [
            f"  nc_gemm_outer<{t}{self.bf16(g)}>(nc_load_a, nc_load_b, {self.name(g.c)} + {c0},"
            f" {m}, {n},"
            f" {k}, {batch}, {a0}, {ao}, {ab}, {ar}, {ac}, {b0}, {bo}, {bb}, {br}, {bc}, {co},"
            f" {cb}, {cr}, {cc}, {accumulate});",
            "}",
            "",
        ]
        grid = (blocks(g.n, GEMM_TILE, None), blocks(g.m, GEMM_TILE, None))
        grid += (blocks(extent * g.batch, 1, None),)
        return self.launch(function, "gemm", grid, names + (WORKSPACE,), types + (t,))

    def loader(self, name: str, buffer: str, t: str) -> None:
        """A GEMM operand's element at an offset: read from its buffer, or, for an
        implicit operand, the value its producer nest would have stored there."""
        if buffer not in self.implicit:
            self.lines.append(
                f"  auto {name} = [&](int64_t at) -> {t} {{ return {self.name(buffer)}[at]; }};"
            )
            return
        _, nest = self.implicit[buffer]
        (store,) = nest.body
        self.open(f"  auto {name} = [&](int64_t at) -> {t} {{  // {buffer}, never stored")
        self.unflatten("at", nest.loops, 2)
        self.emit(2, [store.value], lambda v: f"return {v};")
        self.close("  };")


def _gemm_over_a_loop(s: Stmt) -> tuple | None:
    """For a loop whose body is one GEMM with operand offsets ``base + var * step`` (sizes,
    constant or the batch size's), ((base, step) of A, B, C); None for anything else."""
    if not (isinstance(s, Loop) and len(s.body) == 1 and isinstance(s.body[0], Gemm)):
        return None
    g = s.body[0]
    if as_size(s.extent) is None or g.implicit or g.a == g.c or g.b == g.c:
        return None
    out = []
    for offset in (g.a_offset, g.b_offset, g.c_offset):
        if isinstance(offset, int):
            out.append((offset, 0))
            continue
        terms = affine(offset)
        if terms is None or set(terms) - {"", s.var}:
            return None
        out.append((terms.get("", 0), terms.get(s.var, 0)))
    return tuple(out)


def _shared_expressions(stmts: list[Stmt]) -> set[int]:
    """Ids of the expression objects that more than one statement uses."""
    users: dict[int, int] = {}
    for s in walk(stmts):
        if isinstance(s, Loop):
            continue  # (an extent is computed once, by the loop)
        for e in postorder(own_expressions(s)):  # each object once per statement
            users[id(e)] = users.get(id(e), 0) + 1
    return {k for k, n in users.items() if n > 1}


def _pure(s: Stmt) -> bool:
    """Computes scalars only (no stores, no GEMM): safe to recompute in every launch."""
    return not any(isinstance(x, (Store, Gemm)) for x in walk([s]))


def _assigns(s: Stmt, names: set[str]) -> bool:
    return any(isinstance(x, Assign) and x.name in names for x in walk([s]))


def _split_checks(body: list[Stmt], shared: set[str]) -> list[Stmt]:
    """A loop that updates kernel scalars (a small full reduction runs as one serial loop)
    and also reports errors (a checked gather stores the status word) cannot be one launch:
    each thread would hold its own scalars. Its checks only ever store a constant code, so
    they run as a loop of their own after a pure copy of the loop without them, which every
    launch recomputes like any scalar."""
    out: list[Stmt] = []
    for s in body:
        if isinstance(s, Loop) and _assigns(s, shared) and not _pure(s):
            reduce_part = _without(s, lambda x: _is_check(x))
            check_part = _without(s, lambda x: isinstance(x, Assign) and x.name in shared)
            if _pure(reduce_part) and not _reads(check_part, shared):
                out += [reduce_part, check_part]
                continue
        out.append(s)
    return out


def _is_check(s: Stmt) -> bool:
    return (
        isinstance(s, If)
        and not s.otherwise
        and all(isinstance(x, Store) and x.buffer == "status" for x in s.then)
    )


def _without(s: Stmt, drop) -> Stmt:
    """``s`` with every nested statement for which ``drop`` holds left out."""

    def block(stmts: list[Stmt]) -> list[Stmt]:
        return [_without(x, drop) for x in stmts if not drop(x)]

    if isinstance(s, Loop):
        return replace(s, body=block(s.body))
    if isinstance(s, If):
        return replace(s, then=block(s.then), otherwise=block(s.otherwise))
    return s


def _reads(s: Stmt, names: set[str]) -> bool:
    return any(
        isinstance(e, Var) and e.name in names
        for x in walk([s])
        for e in postorder(own_expressions(x))
    )


def emit_cuda(program: Program) -> CudaSource:
    parts = [PRELUDE]
    combiners: dict[str, str] = {}
    launches: list[Launch] = []
    uses_bf16 = False
    for kernel in program.kernels:
        writer = KernelWriter(kernel, program.physical, combiners, program.dynamic)
        kernel_launches = writer.launches()
        uses_bf16 |= writer.uses_bf16
        comment = kernel.comment.replace("*/", "* /")
        parts.append(f"// {kernel.name}: {comment}\n" + "\n".join(writer.lines))
        launches += kernel_launches
    if combiners:  # the reductions' combine functions, before the kernels that use them
        parts.insert(1, "\n".join(combiners.values()) + "\n")
    if uses_bf16:
        parts.insert(1, PRELUDE_BF16)
    plan = ["// launches, in order:"] + [
        f"//   {x.function} <<<{x.grid}, {x.block}>>> ({x.kind})" for x in launches
    ]
    return CudaSource("\n".join(parts + plan) + "\n", launches)
