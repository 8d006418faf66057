"""Rounding float32 to bfloat16 in generated code (to nearest, ties to even; NaN stays a
quiet NaN, infinities stay infinite): the one rule every bf16 product uses, whether its
operands are packed for AMX (gemm_bf16_pack.py), loaded by a register-tile GEMM, or read
by a direct convolution (the kernel-only unary ``round_bf16``)."""

from __future__ import annotations

import llvmlite.ir as ir

I16, I32 = ir.IntType(16), ir.IntType(32)


def rounded_to_bf16(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """``x`` (float32, a scalar or a vector) rounded to the nearest bfloat16, still as
    float32 (its low 16 bits zero)."""
    lanes = x.type.count if isinstance(x.type, ir.VectorType) else None
    it = ir.VectorType(I32, lanes) if lanes else I32

    def k(v: int) -> ir.Constant:
        return ir.Constant(it, [v] * lanes) if lanes else ir.Constant(I32, v)

    u = b.bitcast(x, it)
    lsb = b.and_(b.lshr(u, k(16)), k(1))
    rounded = b.and_(b.add(b.add(u, k(0x7FFF)), lsb), k(-65536))
    quiet = b.or_(b.and_(u, k(-65536)), k(0x400000))
    nan = b.icmp_unsigned(">", b.and_(u, k(0x7FFFFFFF)), k(0x7F800000))
    return b.bitcast(b.select(nan, quiet, rounded), x.type)


def bf16_bits(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """The bits of the bf16 nearest ``x`` (float32 scalar or vector) as i16 (or i16 lanes)."""
    if isinstance(x.type, ir.VectorType):
        lanes = x.type.count
        wide, narrow = ir.VectorType(I32, lanes), ir.VectorType(I16, lanes)
        shift = ir.Constant(wide, [16] * lanes)
    else:
        wide, narrow, shift = I32, I16, ir.Constant(I32, 16)
    return b.trunc(b.lshr(b.bitcast(rounded_to_bf16(b, x), wide), shift), narrow)
