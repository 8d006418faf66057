"""Transcendental functions for generated code.

Scalar calls go to libm (expf, logf, tanhf, erff, powf and their double versions). Each
call carries the ``vector-function-abi-variant`` attribute naming glibc's libmvec
variants, so the loop vectorizer replaces scalar calls in vectorized loops with
``_ZGVeN16v_expf``-style calls (AVX-512 and AVX2 widths) instead of leaving them scalar.
Where libmvec is missing the attribute is left out and the calls stay scalar (slower,
same results).
"""

from __future__ import annotations

import ctypes.util
import functools

import llvmlite.ir as ir
import llvmlite.ir.instructions as ins

from ...ir.ops.unary import LLVM_LIBM
from .parallel import load_permanently

# name -> (float32 symbol, float64 symbol, arity)
# (the unary ones are declared in ir/ops/unary.py; sqrt is an LLVM intrinsic instead)
FUNCTIONS = {
    **{op: (c + "f", c, 1) for op, c in LLVM_LIBM.items()},
    "pow": ("powf", "pow", 2),
}
# (ISA letter, lanes for float32, lanes for float64): AVX2 ymm and AVX-512 zmm variants
_ISAS = (("d", 8, 4), ("e", 16, 8))


@functools.cache
def libmvec_available() -> bool:
    path = ctypes.util.find_library("mvec")
    if not path:
        return False
    try:
        load_permanently(path)
        return True
    except (OSError, RuntimeError):
        return False


class CallAttributes(ins.CallInstrAttributes):
    """llvmlite knows only a few call-site attributes; these calls need string ones."""

    def add(self, name: str) -> None:
        set.add(self, name)


def call(builder: ir.IRBuilder, module: ir.Module, name: str, args: list[ir.Value]) -> ir.Value:
    """A call to libm's ``name`` that the loop vectorizer may replace by libmvec's vector
    variant: the call is marked pure (memory(none), so errno writes are ignored) and
    names its variants."""
    fn, variants = declare(module, name, args[0].type)
    inst = builder.call(fn, args)
    attrs = ["nounwind", "willreturn", "memory(none)"]
    if variants:
        attrs.append(f'"vector-function-abi-variant"="{variants}"')
    inst.attributes = CallAttributes(attrs)
    return inst


def declare(module: ir.Module, name: str, ftype: ir.Type) -> tuple[ir.Function, str | None]:
    """The scalar libm function for ``name`` at ``ftype`` and its vector-variant
    attribute (None without libmvec)."""
    f32_name, f64_name, arity = FUNCTIONS[name]
    sym = f32_name if isinstance(ftype, ir.FloatType) else f64_name
    fn = module.globals.get(sym)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ftype, [ftype] * arity), sym)
        fn.attributes.add("nounwind")
    if not libmvec_available():
        return fn, None
    variants = []
    for isa, lanes32, lanes64 in _ISAS:
        lanes = lanes32 if isinstance(ftype, ir.FloatType) else lanes64
        params = "v" * arity
        vname = f"_ZGV{isa}N{lanes}{params}_{sym}"
        _declare_vector(module, vname, ftype, lanes, arity)
        variants.append(f"_ZGV_LLVM_N{lanes}{params}_{sym}({vname})")
    return fn, ",".join(variants)


def _declare_vector(module: ir.Module, vname: str, ftype: ir.Type, lanes: int, arity: int):
    if vname in module.globals:
        return
    vt = ir.VectorType(ftype, lanes)
    fn = ir.Function(module, ir.FunctionType(vt, [vt] * arity), vname)
    fn.attributes.add("nounwind")
    _keep(module, fn)


def _keep(module: ir.Module, fn: ir.Function) -> None:
    """List ``fn`` in @llvm.compiler.used so the optimizer keeps its declaration until the
    vectorizer has had a chance to call it."""
    kept = getattr(module, "_nc_compiler_used", [])
    kept.append(fn)
    module._nc_compiler_used = kept


def finish(module: ir.Module) -> None:
    kept = getattr(module, "_nc_compiler_used", [])
    if not kept:
        return
    ptr = ir.PointerType()
    arr = ir.ArrayType(ptr, len(kept))
    g = ir.GlobalVariable(module, arr, "llvm.compiler.used")
    g.linkage = "appending"
    g.section = "llvm.metadata"
    g.initializer = ir.Constant(arr, list(kept))
