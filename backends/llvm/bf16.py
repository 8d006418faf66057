"""Rounding float32 to bfloat16 in generated code (to nearest, ties to even; NaN stays a
quiet NaN, infinities stay infinite): the one rule every bf16 product uses, whether its
operands are packed for AMX (gemm_bf16_pack.py), loaded by a register-tile GEMM, or read
by a direct convolution (the kernel-only unary ``round_bf16``)."""

from __future__ import annotations

import llvmlite.ir as ir

from .llvm_builders import declare

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


class _Bf16x32(ir.Type):
    """LLVM's <32 x bfloat>, which llvmlite's type set lacks: the result type of the
    AVX512-BF16 conversion below (bitcast to i16 lanes right away)."""

    def _to_string(self) -> str:
        return "<32 x bfloat>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Bf16x32)

    def __hash__(self) -> int:
        return hash("<32 x bfloat>")


# (k even, k odd) pairs of two 16-lane rows: lane 2 j from the first, 2 j + 1 the second
_PAIRS = [i // 2 + 16 * (i % 2) for i in range(32)]


def bf16_pairs(
    b: ir.IRBuilder, module: ir.Module, even: ir.Value, odd: ir.Value, native: bool
) -> ir.Value:
    """The bf16 bits of two <16 x float> rows interleaved element by element (even[0],
    odd[0], even[1], ...: the pair layout vdpbf16ps and tdpbf16ps read), as <32 x i16>.
    ``native``: one AVX512-BF16 ``vcvtne2ps2bf16`` rounds both rows (the same rounding:
    to nearest even, NaN quiet; it reads subnormal inputs as zero, which the bf16 dot
    products do anyway), only on a CPU that has it."""
    pairs = ir.Constant(ir.VectorType(I32, 32), _PAIRS)
    if not native:
        return b.shuffle_vector(bf16_bits(b, even), bf16_bits(b, odd), pairs)
    both = bf16_bits_native(b, module, even, odd)
    return b.shuffle_vector(both, ir.Constant(both.type, None), pairs)


def bf16_bits_native(b: ir.IRBuilder, module: ir.Module, low: ir.Value, high: ir.Value):
    """The bf16 bits of two <16 x float> vectors, ``low`` then ``high``, as <32 x i16>,
    by AVX512-BF16's ``vcvtne2ps2bf16`` (see bf16_pairs; only on a CPU that has it)."""
    name = "llvm.x86.avx512bf16.cvtne2ps2bf16.512"
    convert = declare(module, name, ir.FunctionType(_Bf16x32(), [low.type, low.type]))
    # (lanes 0-15 of the result come from its second operand, 16-31 from its first)
    return b.bitcast(b.call(convert, [high, low]), ir.VectorType(I16, 32))
