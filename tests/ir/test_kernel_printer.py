"""The kernel printer's text for nested blocks, and no recursion on nesting depth."""

from __future__ import annotations

from nncompile.ir import dtypes as dt
from nncompile.ir.kernel import (
    INDEX,
    Binary,
    BufferParam,
    Const,
    If,
    Kernel,
    Loop,
    Store,
    Var,
    const_index,
)
from nncompile.ir.kernel_printer import format_kernel

F32 = dt.float32


def test_loops_and_both_branches_of_an_if_are_indented():
    i = Var("i", INDEX)
    cond = Binary("lt", i, const_index(2), dt.bool_)
    body = [
        Loop(
            "i",
            4,
            [If(cond, [Store("y", i, Const(1.0, F32))], [Store("y", i, Const(2.0, F32))])],
            parallel=True,
        ),
        Store("y", const_index(0), Const(0.0, F32)),
    ]
    text = format_kernel(Kernel("k", [BufferParam("y", F32, 4)], body), {"y": "out"})
    assert text.splitlines() == [
        "kernel k(out: float32[4]):",
        "  for i in 0..4:  # parallel",
        "    if (i < 2):",
        "      out[i] = 1.0:float32",
        "    else:",
        "      out[i] = 2.0:float32",
        "  out[0] = 0.0:float32",
    ]


def test_deep_nesting_prints_without_recursion():
    body = [Store("y", const_index(0), Const(0.0, F32))]
    for d in range(5000):
        body = [Loop(f"v{d}", 1, body)]
    lines = format_kernel(Kernel("k", [BufferParam("y", F32, 1)], body)).splitlines()
    assert len(lines) == 5002
    assert lines[-1] == "  " * 5001 + "y[0] = 0.0:float32"
