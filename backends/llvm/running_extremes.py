"""Running maxima and minima (``acc = max(acc, x)`` on a float local: max / min
reductions, max pooling) in a form the loop vectorizer widens and interleaves.

The project's max and min are IEEE 754-2019's maximum and minimum: NaN propagates and
-0 < +0 (docs/architecture.md). LLVM's ``llvm.maximum`` says the same, but the loop
vectorizer leaves a reduction of it one element at a time (a row max of 512 x 1000
floats: 0.118 ms, PyTorch 0.017). So each such local becomes three reductions it does
vectorize:

- the value, by ``maxnum`` marked ``nnan nsz`` (a vector max instruction);
- a flag: a NaN was seen (then the maxnum's result is poison, never read: see below);
- a flag: a zero of the winning sign was seen (+0 for max, -0 for min), because
  maxnum with ``nsz`` may return either zero.

Every read of the local (after the loop, or inside it) gives NaN once the first flag is
set, and a zero result takes its sign from the second: IEEE 754-2019's values.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from ...ir.kernel import Assign, Binary, Stmt, Var, walk

I1 = ir.IntType(1)


def running_extremes(body: list[Stmt]) -> dict[str, str]:
    """{float local: "max" or "min"} for the locals ``body`` updates as acc = max(acc, x)."""
    found: dict[str, str] = {}
    for s in walk(body):
        v = s.value if isinstance(s, Assign) else None
        if (
            isinstance(v, Binary)
            and v.op in ("max", "min")
            and v.dtype.is_float
            and isinstance(v.a, Var)
            and v.a.name == s.name
        ):
            found[s.name] = v.op
    return found


@dataclass
class ExtremeFlags:
    op: str  # "max" or "min"
    nan: ir.Value  # i1 slots
    winning_zero: ir.Value

    @classmethod
    def allocate(cls, b: ir.IRBuilder, name: str, op: str) -> ExtremeFlags:
        with b.goto_entry_block():
            nan = b.alloca(I1, name=f"{name}.nan")
            zero = b.alloca(I1, name=f"{name}.zero")
        return cls(op, nan, zero)

    def reset(self, b: ir.IRBuilder, value: ir.Value) -> None:
        """The local was set to ``value`` (its initial value, or an assignment)."""
        b.store(b.fcmp_unordered("uno", value, value), self.nan)
        b.store(self._is_winning_zero(b, value), self.winning_zero)

    @property
    def number_op(self) -> str:
        """The intrinsic that updates the value: maxnum or minnum (marked nnan nsz)."""
        return "maxnum" if self.op == "max" else "minnum"

    def saw(self, b: ir.IRBuilder, x: ir.Value) -> None:
        """acc = max(acc, x) (or min) was applied to the value: update the flags."""
        nan = b.or_(b.load(self.nan, typ=I1), b.fcmp_unordered("uno", x, x))
        b.store(nan, self.nan)
        zero = b.or_(b.load(self.winning_zero, typ=I1), self._is_winning_zero(b, x))
        b.store(zero, self.winning_zero)

    def read(self, b: ir.IRBuilder, value: ir.Value) -> ir.Value:
        """The local's value by IEEE 754-2019's maximum (or minimum)."""
        t = value.type
        winning, losing = (0.0, -0.0) if self.op == "max" else (-0.0, 0.0)
        signed = b.select(
            b.load(self.winning_zero, typ=I1), ir.Constant(t, winning), ir.Constant(t, losing)
        )
        zero = b.fcmp_ordered("==", value, ir.Constant(t, 0.0))
        value = b.select(zero, signed, value)
        return b.select(b.load(self.nan, typ=I1), ir.Constant(t, float("nan")), value)

    def _is_winning_zero(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        """x is +0 (for max) or -0 (for min), by its bits."""
        bits = ir.IntType(32 if isinstance(x.type, ir.FloatType) else 64)
        pattern = 0 if self.op == "max" else 1 << (bits.width - 1)
        return b.icmp_unsigned("==", b.bitcast(x, bits), ir.Constant(bits, pattern))
