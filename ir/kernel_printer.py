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
from .kernel_visit import unknown_statement

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
    statement is shown in full once, as ``{$k: ...}``, and as ``$k`` afterwards. Both
    walks use explicit stacks: a fused chain of thousands of ops is one deep expression.
    ``buffers`` renames buffers in the text."""

    def __init__(self, roots: list[Expr], buffers: dict[str, str] | None = None):
        self.count: dict[int, int] = {}
        stack = list(reversed(roots))
        while stack:
            e = stack.pop()
            key = id(e)
            self.count[key] = self.count.get(key, 0) + 1
            if self.count[key] == 1:
                stack.extend(children(e))
        self.names: dict[int, str] = {}
        self.buffers = buffers or {}

    def __call__(self, root: Expr) -> str:
        # Depth-first, left to right, as a recursive printer would go: a shared
        # subexpression is named where it is first printed in full.
        texts: list[str] = []  # the finished texts of pending expressions' operands
        stack: list = [root]  # expressions to print, and (expression, operand count)
        while stack:
            item = stack.pop()
            if type(item) is tuple:  # its operands are printed: print it
                e, n = item
                text = _text(e, texts[len(texts) - n :], self.buffers)
                del texts[len(texts) - n :]
                if self.count.get(id(e), 0) > 1:
                    self.names[id(e)] = f"${len(self.names)}"
                    text = f"{{{self.names[id(e)]}: {text}}}"
                texts.append(text)
                continue
            name = self.names.get(id(item))
            kids = children(item)
            if name is not None:
                texts.append(name)
            elif not kids:  # a constant or variable: never named
                texts.append(_text(item, [], self.buffers))
            else:
                stack.append((item, len(kids)))
                stack.extend(reversed(kids))
        return texts[0]


def _text(e: Expr, args: list[str], buffers: dict[str, str]) -> str:
    """One expression's text, given its operands' texts (in ``children`` order)."""
    if isinstance(e, Const):
        if e.dtype.name in ("int64", "bool"):
            return repr(e.value)
        return f"{e.value!r}:{e.dtype}"
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Load):
        return f"{buffers.get(e.buffer, e.buffer)}[{args[0]}]"
    if isinstance(e, Unary):
        return f"{e.op}({args[0]})"
    if isinstance(e, Binary):
        if e.op in _INFIX:
            return f"({args[0]} {_INFIX[e.op]} {args[1]})"
        return f"{e.op}({args[0]}, {args[1]})"
    if isinstance(e, Select):
        return f"select({args[0]}, {args[1]}, {args[2]})"
    if isinstance(e, Cast):
        return f"{e.dtype}({args[0]})"
    raise TypeError(f"not an expression: {e!r}")


def format_expr(e: Expr, buffers: dict[str, str] | None = None) -> str:
    return _ExprPrinter([e], buffers)(e)


def _stmts(body: list[Stmt], depth: int, buffers: dict[str, str]) -> list[str]:
    """The lines of ``body``, indented ``depth`` steps; an explicit stack, not recursion
    (an unrolled loop's kernels nest deeply)."""
    out: list[str] = []

    def expr(e: Expr) -> str:
        return format_expr(e, buffers)

    # items: (statement, depth), or (a finished line, None) such as an If's "else:"
    stack: list[tuple[Stmt | str, int | None]] = [(s, depth) for s in reversed(body)]
    while stack:
        s, d = stack.pop()
        if d is None:
            out.append(s)
            continue
        pad = "  " * d
        inner = [(c, d + 1) for c in reversed(s.body)] if isinstance(s, Loop) else []
        if isinstance(s, Loop):
            flags = (("parallel", s.parallel), ("vectorize", s.vectorize))
            hints = [h for h, on in flags if on]
            extent = s.extent if isinstance(s.extent, int) else expr(s.extent)
            tag = f"  # {', '.join(hints)}" if hints else ""
            out.append(f"{pad}for {s.var} in 0..{extent}:{tag}")
        elif isinstance(s, Store):
            p = _ExprPrinter([s.index, s.value], buffers)
            out.append(f"{pad}{buffers.get(s.buffer, s.buffer)}[{p(s.index)}] = {p(s.value)}")
        elif isinstance(s, Let):
            out.append(f"{pad}let {s.name} = {expr(s.value)}")
        elif isinstance(s, Local):
            out.append(f"{pad}var {s.name}: {s.dtype} = {expr(s.init)}")
        elif isinstance(s, Assign):
            out.append(f"{pad}{s.name} = {expr(s.value)}")
        elif isinstance(s, If):
            out.append(f"{pad}if {expr(s.cond)}:")
            if s.otherwise:
                inner = [(c, d + 1) for c in reversed(s.otherwise)] + [(f"{pad}else:", None)]
            inner += [(c, d + 1) for c in reversed(s.then)]
        elif isinstance(s, Gemm):
            op = "+=" if s.accumulate else "="
            offs = [
                o if isinstance(o, int) else expr(o) for o in (s.a_offset, s.b_offset, s.c_offset)
            ]
            a, b, c = (buffers.get(x, x) for x in (s.a, s.b, s.c))
            out.append(
                f"{pad}gemm {c}[{s.batch}x{s.m}x{s.n}] {op} {a}[.. x{s.k}] @ {b} "
                f"(strides a{s.a_strides}+{offs[0]} b{s.b_strides}+{offs[1]} "
                f"c{s.c_strides}+{offs[2]}, {s.dtype}"
                + (f", {s.precision} products" if s.precision != "float32" else "")
                + (f", implicit {s.implicit})" if s.implicit else ")")
            )
        else:
            raise unknown_statement(s)
        stack.extend(inner)
    return out


def format_kernel(k: Kernel, buffers: dict[str, str] | None = None) -> str:
    """The kernel's text; ``buffers`` renames buffers (parameters included)."""
    buffers = buffers or {}
    params = ", ".join(f"{buffers.get(p.name, p.name)}: {p.dtype}[{p.size}]" for p in k.params)
    head = [f"# {k.comment}"] if k.comment else []
    return "\n".join(head + [f"kernel {k.name}({params}):"] + _stmts(k.body, 1, buffers))
