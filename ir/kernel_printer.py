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
    children,
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


class _ExprPrinter:
    """Prints an expression DAG in linear size: a subexpression used more than once in a
    statement is shown in full once, as ``{$k: ...}``, and as ``$k`` afterwards."""

    def __init__(self, roots: list[Expr]):
        self.count: dict[int, int] = {}
        for r in roots:
            self._count(r)
        self.names: dict[int, str] = {}

    def _count(self, e: Expr) -> None:
        key = id(e)
        self.count[key] = self.count.get(key, 0) + 1
        if self.count[key] == 1:
            for c in children(e):
                self._count(c)

    def __call__(self, e: Expr) -> str:
        key = id(e)
        if key in self.names:
            return self.names[key]
        text = self._text(e)
        if self.count.get(key, 0) > 1 and not isinstance(e, (Const, Var)):
            self.names[key] = f"${len(self.names)}"
            return f"{{{self.names[key]}: {text}}}"
        return text

    def _text(self, e: Expr) -> str:
        if isinstance(e, Const):
            if e.dtype.name in ("int64", "bool"):
                return repr(e.value)
            return f"{e.value!r}:{e.dtype}"
        if isinstance(e, Var):
            return e.name
        if isinstance(e, Load):
            return f"{e.buffer}[{self(e.index)}]"
        if isinstance(e, Unary):
            return f"{e.op}({self(e.x)})"
        if isinstance(e, Binary):
            if e.op in _INFIX:
                return f"({self(e.a)} {_INFIX[e.op]} {self(e.b)})"
            return f"{e.op}({self(e.a)}, {self(e.b)})"
        if isinstance(e, Select):
            return f"select({self(e.cond)}, {self(e.a)}, {self(e.b)})"
        if isinstance(e, Cast):
            return f"{e.dtype}({self(e.x)})"
        raise TypeError(f"not an expression: {e!r}")


def format_expr(e: Expr) -> str:
    return _ExprPrinter([e])(e)


def _stmts(body: list[Stmt], depth: int) -> list[str]:
    pad = "  " * depth
    out: list[str] = []
    for s in body:
        if isinstance(s, Loop):
            flags = (("parallel", s.parallel), ("vectorize", s.vectorize))
            hints = [h for h, on in flags if on]
            extent = s.extent if isinstance(s.extent, int) else format_expr(s.extent)
            tag = f"  # {', '.join(hints)}" if hints else ""
            out.append(f"{pad}for {s.var} in 0..{extent}:{tag}")
            out += _stmts(s.body, depth + 1)
        elif isinstance(s, Store):
            p = _ExprPrinter([s.index, s.value])
            out.append(f"{pad}{s.buffer}[{p(s.index)}] = {p(s.value)}")
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
