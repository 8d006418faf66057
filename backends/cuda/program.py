"""A Program -> CUDA C: one ``extern "C" __global__`` function per launch (see emit.py)."""

from __future__ import annotations

from ...ir.kernel import Assign, Gemm, If, Kernel, Let, Local, Loop, Stmt, Store
from ...lowering.program import Program, physical_params
from .emit import (
    BLOCK,
    TILE,
    CudaSource,
    ExprPrinter,
    Launch,
    grid_stride_blocks,
    mem_type,
    reg_type,
)
from .prelude import PRELUDE


class KernelWriter:
    def __init__(self, kernel: Kernel, physical: dict[str, str]):
        self.kernel = kernel
        self.physical = physical
        self.params = physical_params(kernel, physical)
        self.printer = ExprPrinter()
        self.lines: list[str] = []

    def name(self, buffer: str) -> str:
        return self.physical.get(buffer, buffer)

    # ---- statements --------------------------------------------------------------------

    def block(self, stmts: list[Stmt], depth: int) -> None:
        for s in stmts:
            self.stmt(s, depth)

    def emit(self, depth: int, exprs, render) -> None:
        decls, texts = self.printer.statement(list(exprs))
        pad = "  " * depth
        self.lines += [pad + d for d in decls]
        self.lines.append(pad + render(*texts))

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
            buf = self.name(s.buffer)
            cast = "(uint8_t)" if s.value.dtype.is_bool else ""  # bools are bytes in memory
            self.emit(depth, [s.index, s.value], lambda i, v: f"{buf}[{i}] = {cast}{v};")
        elif isinstance(s, If):
            self.emit(depth, [s.cond], lambda c: f"if ({c}) {{")
            self.block(s.then, depth + 1)
            if s.otherwise:
                self.lines.append(pad + "} else {")
                self.block(s.otherwise, depth + 1)
            self.lines.append(pad + "}")
        elif isinstance(s, Loop):
            extent = s.extent if isinstance(s.extent, int) else None
            if extent is None:
                raise NotImplementedError("CUDA backend: loops with a computed extent")
            v = s.var
            self.printer.loop_vars.add(v)
            self.lines.append(f"{pad}for (int64_t {v} = 0; {v} < {extent}LL; ++{v}) {{")
            self.block(s.body, depth + 1)
            self.lines.append(pad + "}")
        elif isinstance(s, Gemm):
            raise NotImplementedError("CUDA backend: a GEMM inside a loop or branch")
        else:
            raise TypeError(f"unknown statement {s!r}")

    # ---- launches ----------------------------------------------------------------------

    def signature(self, function: str) -> str:
        args = ", ".join(f"{mem_type(p.dtype)}* __restrict__ {p.name}" for p in self.params)
        return f'extern "C" __global__ void {function}({args})'

    def launches(self) -> list[Launch]:
        scalars: list[Stmt] = []  # pure top-level statements, recomputed by every launch
        shared_locals = {s.name for s in self.kernel.body if isinstance(s, Local)}
        out: list[Launch] = []
        names = tuple(p.name for p in self.params)
        for s in self.kernel.body:
            if _pure(s):
                scalars.append(s)
                continue
            function = f"{self.kernel.name}_{len(out)}"
            if _assigns(s, shared_locals):
                raise NotImplementedError(
                    "CUDA backend: a loop that stores and updates a scalar of its kernel"
                )
            if isinstance(s, Gemm):
                out.append(self.gemm(function, s, names))
                continue
            self.lines.append(self.signature(function) + " {")
            self.block(scalars, 1)
            if isinstance(s, Loop) and (s.parallel or s.independent) and isinstance(s.extent, int):
                self.printer.loop_vars.add(s.var)
                self.lines.append(
                    f"  for (int64_t {s.var} = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;"
                    f" {s.var} < {s.extent}LL; {s.var} += (int64_t)gridDim.x * blockDim.x) {{"
                )
                self.block(s.body, 2)
                self.lines.append("  }")
                grid = (grid_stride_blocks(s.extent), 1, 1)
                out.append(Launch(function, "grid-stride", grid, (BLOCK, 1, 1), names))
            else:
                self.stmt(s, 1)
                out.append(Launch(function, "single", (1, 1, 1), (1, 1, 1), names))
            self.lines.append("}")
            self.lines.append("")
        return out

    def gemm(self, function: str, g: Gemm, names: tuple[str, ...]) -> Launch:
        if not all(isinstance(o, int) for o in (g.a_offset, g.b_offset, g.c_offset)):
            raise NotImplementedError("CUDA backend: a GEMM with computed offsets")
        t = reg_type(g.dtype)
        a, b, c = self.name(g.a), self.name(g.b), self.name(g.c)
        strides = ", ".join(f"{s}LL" for s in (*g.a_strides, *g.b_strides, *g.c_strides))
        self.lines += [
            self.signature(function) + " {",
            f"  nc_gemm_tile<{t}, {TILE}>({a} + {g.a_offset}LL, {b} + {g.b_offset}LL, "
            f"{c} + {g.c_offset}LL, {g.m}LL, {g.n}LL, {g.k}LL, {strides}, "
            f"{'true' if g.accumulate else 'false'});",
            "}",
            "",
        ]
        grid = (max(1, -(-g.n // TILE)), max(1, -(-g.m // TILE)), max(1, g.batch))
        return Launch(function, "gemm", grid, (TILE, TILE, 1), names)


def _pure(s: Stmt) -> bool:
    """Computes scalars only (no stores, no GEMM): safe to recompute in every launch."""
    if isinstance(s, (Let, Local, Assign)):
        return True
    if isinstance(s, Loop):
        return all(_pure(c) for c in s.body)
    if isinstance(s, If):
        return all(_pure(c) for c in s.then + s.otherwise)
    return False


def _assigns(s: Stmt, names: set[str]) -> bool:
    if isinstance(s, Assign):
        return s.name in names
    if isinstance(s, Loop):
        return any(_assigns(c, names) for c in s.body)
    if isinstance(s, If):
        return any(_assigns(c, names) for c in s.then + s.otherwise)
    return False


def emit_cuda(program: Program) -> CudaSource:
    parts = [PRELUDE]
    launches: list[Launch] = []
    for kernel in program.kernels:
        writer = KernelWriter(kernel, program.physical)
        kernel_launches = writer.launches()
        comment = kernel.comment.replace("*/", "* /")
        parts.append(f"// {kernel.name}: {comment}\n" + "\n".join(writer.lines))
        launches += kernel_launches
    plan = ["// launches, in order:"] + [
        f"//   {x.function} <<<{x.grid}, {x.block}>>> ({x.kind})" for x in launches
    ]
    return CudaSource("\n".join(parts + plan) + "\n", launches)
