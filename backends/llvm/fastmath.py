"""float32 exp and tanh as inline IR, so the loop vectorizer turns them into straight-line
vector code instead of calls into libmvec.

A call costs a spill of every live vector register around it and keeps the surrounding
elementwise chain from being scheduled as one block; libmvec's expf/tanhf are also more
accurate than float32 results need (they aim at < 1 ulp in all cases, with a slow path).
These stay within 2 ulp of the float64 result (tests/backends/test_fastmath.py checks every
binade of the input range against NumPy in float64):

- exp: x = k ln2 + r with |r| <= ln2/2 (ln2 split in two so k ln2 is exact), e^r by a degree-6
  polynomial fitted for relative error (3e-9 before float32 rounding), times 2^k built in two
  halves so that results down in the subnormals and up to overflow come out right.
- tanh: odd polynomial x + x^3 Q(x^2) below |x| = 0.625 (fitted, 4e-9), 1 - 2 / (e^{2|x|} + 1)
  above it (|x| clamped to 10, where it is 1 in float32), with the sign copied back.

NaN propagates; +-inf give exp(+inf) = inf, exp(-inf) = 0, tanh(+-inf) = +-1.
float64 keeps libm's functions (mathlib.py).
"""

from __future__ import annotations

import math

import llvmlite.ir as ir

F32, I32 = ir.FloatType(), ir.IntType(32)

# e^r = 1 + r + r^2 (c2 + r (c3 + ...)) on |r| <= ln2/2
_EXP_POLY = (0.49999993, 0.16666521, 0.04166839, 0.00836871, 0.00138146)
# ln2 = _LN2_HI + _LN2_LO with _LN2_HI's low 12 mantissa bits zero, so k * _LN2_HI is exact
_LN2_HI = 0.693145751953125
_LN2_LO = 1.428606765330187e-06
# tanh(x) = x + x^3 (t0 + x^2 (t1 + ...)) on |x| <= _TANH_SMALL
_TANH_POLY = (-0.33333282, 0.13331442, -0.0537397, 0.02063905, -0.00570495)
_TANH_SMALL = 0.625
_TANH_ONE = 10.0
# below this, exp(x) is 0 in float32 even after rounding; above, k would leave the halves' range
_EXP_LOW, _EXP_HIGH = -104.0, 89.0


class InlineMath:
    """Emits the functions with ``builder``; ``intrinsic(name, args)`` declares and calls an
    LLVM intrinsic of the arguments' type (the code generator's helper)."""

    def __init__(self, builder: ir.IRBuilder, intrinsic, has_scalef: bool) -> None:
        self.b = builder
        self.intrinsic = intrinsic
        # AVX-512's vscalefps computes p 2^k in one instruction, overflow and subnormal
        # results included; LLVM emits it for llvm.ldexp. Elsewhere ldexp would be a libm
        # call per element, so 2^k is built from exponent bits instead.
        self.has_scalef = has_scalef

    def _c(self, v: float) -> ir.Constant:
        return ir.Constant(F32, v)

    def _poly(self, x: ir.Value, coeffs: tuple[float, ...]) -> ir.Value:
        """c0 + x (c1 + x (c2 + ...)) by fused multiply-adds (Horner)."""
        acc = self._c(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.intrinsic("fma", [acc, x, self._c(c)])
        return acc

    def _ldexp(self, p: ir.Value, k: ir.Value) -> ir.Value:
        """p 2^k for an integral float k in [-150, 128] (vscalefps)."""
        module = self.b.module
        name = "llvm.ldexp.f32.i32"
        fn = module.globals.get(name) or ir.Function(module, ir.FunctionType(F32, [F32, I32]), name)
        return self.b.call(fn, [p, self.b.fptosi(k, I32)])

    def _pow2(self, k: ir.Value) -> ir.Value:
        """2^k for an integral float k in [-126, 127]: its exponent bits."""
        bits = self.b.shl(
            self.b.add(self.b.fptosi(k, I32), ir.Constant(I32, 127)), ir.Constant(I32, 23)
        )
        return self.b.bitcast(bits, F32)

    def _exp_reduced(self, x: ir.Value) -> tuple[ir.Value, ir.Value]:
        """(k, e^r) with x = k ln2 + r, |r| <= ln2/2, for a finite x."""
        b = self.b
        k = self.intrinsic("rint", [b.fmul(x, self._c(1.0 / math.log(2.0)))])
        r = self.intrinsic("fma", [k, self._c(-_LN2_HI), x])
        r = self.intrinsic("fma", [k, self._c(-_LN2_LO), r])
        p = self.intrinsic("fma", [b.fmul(r, r), self._poly(r, _EXP_POLY), b.fadd(r, self._c(1.0))])
        return k, p

    def exp(self, x: ir.Value) -> ir.Value:
        b = self.b
        # clamp (maxnum/minnum drop a NaN, which the final select restores)
        xc = self.intrinsic("maxnum", [x, self._c(_EXP_LOW)])
        xc = self.intrinsic("minnum", [xc, self._c(_EXP_HIGH)])
        k, p = self._exp_reduced(xc)
        if self.has_scalef:
            y = self._ldexp(p, k)
        else:  # k in [-150, 128]: 2^k as 2^h 2^(k-h) with h = floor(k/2), both in [-75, 64]
            h = self.intrinsic("floor", [b.fmul(k, self._c(0.5))])
            y = b.fmul(b.fmul(p, self._pow2(h)), self._pow2(b.fsub(k, h)))
        return b.select(b.fcmp_unordered("uno", x, x), x, y)

    def reciprocal_times(self, a: float | ir.Value, d: ir.Value) -> ir.Value:
        """a / d for a finite d where 1 ulp of error is fine: marked arcp and ninf, which the
        kernels' attribute (reciprocal-estimates, llvm_builders.set_function_attributes) turns into
        a 14-bit reciprocal estimate and one Newton step instead of a divide (a divide's
        throughput is a quarter of that). The caller guarantees d is finite: the estimate of
        an infinite d would refine to NaN."""
        num = self._c(a) if isinstance(a, float) else a
        return self.b.fdiv(num, d, flags=("arcp", "ninf"))

    def tanh(self, x: ir.Value) -> ir.Value:
        b = self.b
        ax = self.intrinsic("fabs", [x])
        x2 = b.fmul(x, x)
        small = self.intrinsic("fma", [b.fmul(x2, x), self._poly(x2, _TANH_POLY), x])
        # tanh is 1 in float32 from |x| = 9.1: clamped there, e^(2|x|) <= 2^29 needs one
        # power of two and no range checks (a NaN becomes 10 here and is kept by `small`)
        ac = self.intrinsic("minnum", [ax, self._c(_TANH_ONE)])
        k, p = self._exp_reduced(b.fadd(ac, ac))
        e = self._ldexp(p, k) if self.has_scalef else b.fmul(p, self._pow2(k))
        large = b.fsub(self._c(1.0), self.reciprocal_times(2.0, b.fadd(e, self._c(1.0))))
        # a NaN fails the comparison and takes the small branch, which keeps it NaN; the sign
        # copied last keeps tanh(-0) = -0 (the polynomial's sum rounds it to +0)
        y = b.select(b.fcmp_ordered(">", ax, self._c(_TANH_SMALL)), large, small)
        return self.intrinsic("copysign", [y, x])

    def sigmoid(self, x: ir.Value) -> ir.Value:
        """The reference's two branches: e = e^-|x| in (0, 1], then 1 / (1 + e) for x >= 0
        and e / (1 + e) below, so exp never overflows and far-negative x gives e^x itself
        (subnormals included where they are not flushed); NaN stays NaN (through exp)."""
        b = self.b
        e = self.exp(b.fneg(self.intrinsic("fabs", [x])))
        num = b.select(b.fcmp_ordered(">=", x, self._c(0.0)), self._c(1.0), e)
        return self.reciprocal_times(num, b.fadd(self._c(1.0), e))
