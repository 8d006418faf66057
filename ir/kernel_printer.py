"""Readable text of kernel IR (what NNCOMPILE_DUMP writes as kernels.txt)."""

from __future__ import annotations

from .kernel import (
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
)

_INFIX = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "idiv": "//",
    "mod": "%",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "eq": "==",
    "ne": "!=",
    "and": "&",
    "or": "|",
    "xor": "^",
    "shl": "<<",
    "lshr": ">>>",
}


def format_expr(e: Expr) -> str:
    if isinstance(e, Const):
        return repr(e.value) if e.dtype.name in ("int64", "bool") else f"{e.value!r}:{e.dtype}"
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Load):
        return f"{e.buffer}[{format_expr(e.index)}]"
    if isinstance(e, Unary):
        return f"{e.op}({format_expr(e.x)})"
    if isinstance(e, Binary):
        if e.op in _INFIX:
            return f"({format_expr(e.a)} {_INFIX[e.op]} {format_expr(e.b)})"
        return f"{e.op}({format_expr(e.a)}, {format_expr(e.b)})"
    if isinstance(e, Select):
        return f"select({format_expr(e.cond)}, {format_expr(e.a)}, {format_expr(e.b)})"
    if isinstance(e, Cast):
        return f"{e.dtype}({format_expr(e.x)})"
    raise TypeError(f"not an expression: {e!r}")


def _stmts(body: list[Stmt], depth: int) -> list[str]:
    pad = "  " * depth
    out: list[str] = []
    for s in body:
        if isinstance(s, Loop):
            hints = [h for h, on in (("parallel", s.parallel), ("vectorize", s.vectorize)) if on]
            extent = s.extent if isinstance(s.extent, int) else format_expr(s.extent)
            tag = f"  # {', '.join(hints)}" if hints else ""
            out.append(f"{pad}for {s.var} in 0..{extent}:{tag}")
            out += _stmts(s.body, depth + 1)
        elif isinstance(s, Store):
            out.append(f"{pad}{s.buffer}[{format_expr(s.index)}] = {format_expr(s.value)}")
        elif isinstance(s, Let):
            out.append(f"{pad}let {s.name} = {format_expr(s.value)}")
        elif isinstance(s, Local):
            out.append(f"{pad}var {s.name}: {s.dtype} = {format_expr(s.init)}")
        elif isinstance(s, Assign):
            out.append(f"{pad}{s.name} = {format_expr(s.value)}")
        elif isinstance(s, If):
            out.append(f"{pad}if {format_expr(s.cond)}:")
            out += _stmts(s.then, depth + 1)
            if s.otherwise:
                out.append(f"{pad}else:")
                out += _stmts(s.otherwise, depth + 1)
        elif isinstance(s, Gemm):
            op = "+=" if s.accumulate else "="
            offs = [
                o if isinstance(o, int) else format_expr(o)
                for o in (s.a_offset, s.b_offset, s.c_offset)
            ]
            out.append(
                f"{pad}gemm {s.c}[{s.batch}x{s.m}x{s.n}] {op} {s.a}[.. x{s.k}] @ {s.b} "
                f"(strides a{s.a_strides}+{offs[0]} b{s.b_strides}+{offs[1]} "
                f"c{s.c_strides}+{offs[2]}, {s.dtype})"
            )
        else:
            raise TypeError(f"not a statement: {s!r}")
    return out


def format_kernel(k: Kernel) -> str:
    params = ", ".join(f"{p.name}: {p.dtype}[{p.size}]" for p in k.params)
    head = [f"# {k.comment}"] if k.comment else []
    return "\n".join(head + [f"kernel {k.name}({params}):"] + _stmts(k.body, 1))
