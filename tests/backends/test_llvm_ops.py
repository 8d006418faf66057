"""Every primitive compiled by the LLVM backend, compared with the NumPy reference.

Each case is one function returning a dict of many op results (compiling is the slow
part, so ops are batched), traced on random data with awkward shapes: broadcasting, sizes
that are not multiples of the vector width (1, 3, 17, 33), size-1 and zero-size dims,
every dtype an op accepts. ``test_every_primitive_is_covered`` checks that the cases
together reach every op of the registry.
"""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile import config
from nncompile.dispatch import bind

from . import llvm_cases_contractions, llvm_cases_reductions  # noqa: F401  (register cases)
from . import llvm_support as S
from .llvm_cases import CASES, case

F32, F64, I32, I64, BOOL = S.F32, S.F64, S.I32, S.I64, S.BOOL
acc, check, data, rng_for = S.acc, S.check, S.data, S.rng_for


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path / "cache"))


BROADCAST_PAIRS = [
    ((17, 1, 3), (33, 3)),
    ((1,), (5, 17)),
    ((), (3, 33)),
    ((0, 3), (1, 3)),
    ((2, 1, 16), (1, 17, 1)),
    ((33,), (33,)),
]

# ---- elementwise ------------------------------------------------------------------------

FLOAT_UNARY = {
    "neg": (nc.negative, "exact"),
    "abs": (nc.abs, "exact"),
    "sign": (nc.sign, "exact"),
    "relu": (nc.relu, "exact"),
    "stop_gradient": (nc.stop_gradient, "exact"),
    "sqrt": (nc.sqrt, "arith"),
    "reciprocal": (nc.reciprocal, "arith"),
    "exp": (nc.exp, "math"),
    "log": (nc.log, "math"),
    "tanh": (nc.tanh, "math"),
    "sigmoid": (nc.sigmoid, "math"),
    "erf": (nc.erf, "math"),
    "hardswish": (nc.hardswish, "exact"),
    "sin": (nc.sin, "math"),
    "cos": (nc.cos, "math"),
    "tan": (nc.tan, "math"),
    "arcsin": (nc.arcsin, "math"),
    "arccos": (nc.arccos, "math"),
    "arctan": (nc.arctan, "math"),
    "sinh": (nc.sinh, "math"),
    "cosh": (nc.cosh, "math"),
    "arcsinh": (nc.arcsinh, "math"),
    "arccosh": (nc.arccosh, "math"),
    "arctanh": (nc.arctanh, "math"),
}


@case("unary", "float32", "float64")
def _unary_float(dtype):
    rng = rng_for("unary", dtype)
    x = data(rng, (17, 33), dtype)
    x[0, :5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    pos = data(rng, (3, 17), dtype, 0.01, 20.0)
    args = (x, pos, np.zeros((0, 3), dtype), np.asarray(0.7, dtype), data(rng, (1,), dtype))

    def fn(x, pos, empty, scalar, one):
        out = {}
        for name, (f, _) in FLOAT_UNARY.items():
            out[f"{name}/x"] = f(x)
            out[f"{name}/pos"] = f(pos)
            out[f"{name}/empty"] = f(empty)
            out[f"{name}/scalar"] = f(scalar)
            out[f"{name}/one"] = f(one)
        return out

    return fn, args, {k: t for k, (_, t) in FLOAT_UNARY.items()}


@case("unary", "int32", "int64")
def _unary_int(dtype):
    rng = rng_for("unary", dtype)
    x = data(rng, (5, 33), dtype, -100, 100)
    info = np.iinfo(dtype)
    x[0, :4] = [info.min, info.max, 0, -1]

    def fn(x, empty, scalar):
        out = {}
        for name, f in [
            ("neg", nc.negative),
            ("abs", nc.abs),
            ("sign", nc.sign),
            ("relu", nc.relu),
            ("stop_gradient", nc.stop_gradient),
        ]:
            out[f"{name}/x"] = f(x)
            out[f"{name}/empty"] = f(empty)
            out[f"{name}/scalar"] = f(scalar)
        return out

    return fn, (x, np.zeros((3, 0), dtype), np.asarray(-7, dtype)), "exact"


@case("unary-bool")
def _unary_bool():
    rng = rng_for("unary-bool")
    x = data(rng, (3, 17), BOOL)

    def fn(x, s):
        return {
            "not": nc.logical_not(x),
            "not_scalar": nc.logical_not(s),
            "stop_gradient": nc.stop_gradient(x),
        }

    return fn, (x, np.asarray(True)), "exact"


@case("binary", "float32", "float64")
def _binary_float(dtype):
    rng = rng_for("binary", dtype)
    pairs = [(data(rng, a, dtype), data(rng, b, dtype)) for a, b in BROADCAST_PAIRS]
    pos = data(rng, (3, 17), dtype, 0.1, 4.0)
    expo = data(rng, (17,), dtype, -2.5, 2.5)
    neg_base = -data(rng, (3, 17), dtype, 0.5, 3.0)
    int_expo = rng.integers(-3, 4, (17,)).astype(np.int32)
    special = np.array([np.nan, 1.0, np.inf, -np.inf, -0.0, 0.0, np.nan, 2.0], dtype)
    special2 = np.array([1.0, np.nan, -np.inf, np.inf, 0.0, -0.0, np.nan, np.inf], dtype)

    def fn(pairs, pos, expo, neg_base, int_expo, special, special2):
        out = {}
        for i, (a, b) in enumerate(pairs):
            out[f"add/{i}"] = a + b
            out[f"sub/{i}"] = a - b
            out[f"mul/{i}"] = a * b
            out[f"div/{i}"] = a / b
            out[f"maximum/{i}"] = nc.maximum(a, b)
            out[f"minimum/{i}"] = nc.minimum(a, b)
        for name, f in [
            ("add", nc.add),
            ("sub", nc.subtract),
            ("mul", nc.multiply),
            ("div", nc.divide),
            ("maximum", nc.maximum),
            ("minimum", nc.minimum),
        ]:
            out[f"{name}/special"] = f(special, special2)
        out["pow/float"] = nc.power(pos, expo)
        out["pow/neg_base_int_exp"] = nc.power(neg_base, int_expo.astype(dtype))
        out["pow/int_exponent_dtype"] = bind("pow", neg_base, nc.as_tensor(int_expo))
        out["pow/special"] = nc.power(special, special2)
        out["pow/scalar"] = nc.power(pos, 2.0)
        return out

    args = (pairs, pos, expo, neg_base, int_expo, special, special2)
    return fn, args, {"pow": "math", "div": "arith", "*": "arith"}


@case("float-edges", "float32", "float64")
def _float_edges(dtype):
    """Where NumPy leaves results to the platform, every backend follows the reference:
    sigmoid's subnormal tail (e^x / (1 + e^x), not 1 / (1 + e^-x) = 0) and IEEE 754-2019
    max / min with -0 < +0. A zero's sign shows as the sign of 1 / zero. The subnormal
    tail only where compiled code keeps subnormals (NNCOMPILE_FLUSH_DENORMALS=0: the
    LLVM backend flushes them by default)."""
    f64 = np.dtype(dtype) == F64
    subnormal = not config.get_bool(config.FLUSH_DENORMALS)
    tail = [-20.0, 0.0, 20.0, 1e4, -1e4, np.nan, -np.inf, np.inf]
    tail += ([-720.0, -740.0, -744.0] if f64 else [-90.0, -100.0, -103.0]) if subnormal else []
    logged = [-87.0, -50.0, 3.0] + ([-700.0] if f64 else [])
    logged += ([-720.0] if f64 else [-90.0]) if subnormal else []
    a = np.array([0.0, -0.0, 0.0, -0.0, np.nan, 1.0, -0.0], dtype)
    b = np.array([-0.0, 0.0, 0.0, -0.0, 0.0, np.nan, -1.0], dtype)
    zeros = np.array([[-0.0, 0.0], [0.0, -0.0], [-0.0, -0.0], [0.0, 0.0]], dtype)

    def fn(tail, logged, a, b, zeros):
        inv = nc.reciprocal
        pool = nc.max_pool2d(nc.reshape(zeros, (1, 1, 1, 8)), (1, 2), (1, 2))
        return {
            "sigmoid": nc.sigmoid(tail),
            "log_sigmoid": nc.log(nc.sigmoid(logged)),
            "signed/maximum": inv(nc.maximum(a, b)),
            "signed/minimum": inv(nc.minimum(a, b)),
            "signed/relu": inv(nc.relu(a)),
            "signed/max": inv(nc.max(zeros, axis=1)),
            "signed/min": inv(nc.min(zeros, axis=1)),
            "signed/pool": inv(pool),
        }

    tiny = np.finfo(dtype).smallest_subnormal  # libm's exp may differ by an ulp or two
    tol = {"sigmoid": (1e-5, 16 * tiny), "log_sigmoid": "math", "signed": "exact"}
    args = (np.array(tail, dtype), np.array(logged, dtype), a, b, zeros)
    return fn, args, tol


@case("binary", "int32", "int64")
def _binary_int(dtype):
    rng = rng_for("binary", dtype)
    pairs = [(data(rng, a, dtype, -50, 50), data(rng, b, dtype, -7, 7)) for a, b in BROADCAST_PAIRS]
    info = np.iinfo(dtype)
    num = np.array([7, -7, 7, -7, 0, info.min, info.min, info.max, 5, -5], dtype)
    den = np.array([2, 2, -2, -2, 0, -1, 0, -1, 0, 0], dtype)
    base = data(rng, (4, 17), dtype, -5, 5)
    expo = data(rng, (17,), dtype, 0, 6)
    nz_base = np.array([1, -1, 2, -2, 3, 7, -1, 1], dtype)
    neg_expo = np.array([-1, -1, -1, -3, -2, -1, -4, -5], dtype)

    def fn(pairs, num, den, base, expo, nz_base, neg_expo):
        out = {}
        for i, (a, b) in enumerate(pairs):
            out[f"add/{i}"] = a + b
            out[f"sub/{i}"] = a - b
            out[f"mul/{i}"] = a * b
            out[f"div/{i}"] = nc.trunc_divide(a, b)  # b has zeros: x / 0 == 0
            out[f"maximum/{i}"] = nc.maximum(a, b)
            out[f"minimum/{i}"] = nc.minimum(a, b)
        out["div/edge"] = nc.trunc_divide(num, den)
        out["div/by_const"] = nc.trunc_divide(num, nc.as_tensor(np.asarray(3, dtype)))
        out["div/by_const_neg"] = nc.trunc_divide(num, nc.as_tensor(np.asarray(-3, dtype)))
        out["div/by_const_zero"] = nc.trunc_divide(num, nc.as_tensor(np.asarray(0, dtype)))
        out["div/by_const_minus_one"] = nc.trunc_divide(num, nc.as_tensor(np.asarray(-1, dtype)))
        out["pow/small"] = nc.power(base, expo)
        out["pow/negative_exponent"] = nc.power(nz_base, neg_expo)
        out["pow/float_exponent"] = bind("pow", nz_base, nc.astype(nc.abs(neg_expo), "float32"))
        return out

    return fn, (pairs, num, den, base, expo, nz_base, neg_expo), "exact"


@case("logical")
def _logical():
    rng = rng_for("logical")
    pairs = [(data(rng, a, BOOL), data(rng, b, BOOL)) for a, b in BROADCAST_PAIRS]

    def fn(pairs):
        out = {}
        for i, (a, b) in enumerate(pairs):
            out[f"and/{i}"] = nc.logical_and(a, b)
            out[f"or/{i}"] = nc.logical_or(a, b)
            out[f"xor/{i}"] = nc.logical_xor(a, b)
            out[f"equal/{i}"] = nc.equal(a, b)
            out[f"not_equal/{i}"] = nc.not_equal(a, b)
        return out

    return fn, (pairs,), "exact"


@case("bitwise", "int32", "int64")
def _bitwise(dtype):
    """~ & | ^ on integers are bitwise (NumPy), on bools logical: both in one graph."""
    rng = rng_for("bitwise", dtype)
    info = np.iinfo(dtype)
    pairs = [
        (data(rng, a, dtype, info.min, info.max), data(rng, b, dtype, info.min, info.max))
        for a, b in BROADCAST_PAIRS
    ]
    edges = np.array([0, -1, info.min, info.max, 0x5A5A, -0x1234], dtype)
    edges2 = np.array([-1, info.min, info.max, 0x0F0F, -0x5A5B, 7], dtype)
    flags = data(rng, (3, 17), BOOL)

    def fn(pairs, edges, edges2, flags):
        out = {}
        for i, (a, b) in enumerate(pairs + [(edges, edges2)]):
            out[f"not/{i}"] = ~a
            out[f"and/{i}"] = a & b
            out[f"or/{i}"] = a | b
            out[f"xor/{i}"] = a ^ b
        out["constants"] = (edges & 0xF0) ^ ~(edges2 | 3)  # simplified kernel constants
        out["bool_with_int"] = flags & 6
        out["bool"] = ~flags ^ (flags | flags[0])
        return out

    return fn, (pairs, edges, edges2, flags), "exact"


@case("compare", "float32", "float64", "int32", "int64")
def _compare(dtype):
    rng = rng_for("compare", dtype)
    # Few distinct values, so many elements compare equal.
    pairs = [
        (data(rng, a, I64, -2, 2).astype(dtype), data(rng, b, I64, -2, 2).astype(dtype))
        for a, b in BROADCAST_PAIRS
    ]
    if np.dtype(dtype).kind == "f":
        special = np.array([np.nan, np.nan, 1.0, np.inf, -np.inf, 0.0, -0.0], dtype)
        special2 = np.array([np.nan, 1.0, np.nan, np.inf, np.inf, -0.0, 0.0], dtype)
    else:
        info = np.iinfo(dtype)
        special = np.array([info.min, info.max, info.min, 0, -1], dtype)
        special2 = np.array([info.max, info.min, info.min, -1, 0], dtype)
    pairs.append((special, special2))
    ops = {
        "equal": nc.equal,
        "not_equal": nc.not_equal,
        "less": nc.less,
        "less_equal": nc.less_equal,
        "greater": nc.greater,
        "greater_equal": nc.greater_equal,
    }

    def fn(pairs):
        return {f"{n}/{i}": f(a, b) for n, f in ops.items() for i, (a, b) in enumerate(pairs)}

    return fn, (pairs,), "exact"


@case("where")
def _where():
    rng = rng_for("where")
    cond = data(rng, (17, 1, 3), BOOL)
    args = {d.name: (data(rng, (33, 3), d), data(rng, (1, 33, 1), d)) for d in (F32, F64, I32, I64)}
    args["bool"] = (data(rng, (33, 3), BOOL), data(rng, (3,), BOOL))

    def fn(cond, args, scalar_cond):
        out = {f"where/{k}": nc.where(cond, a, b) for k, (a, b) in args.items()}
        out["where/scalar_cond"] = nc.where(scalar_cond, *args["float32"])
        out["where/empty"] = nc.where(cond[:0], args["int32"][0], args["int32"][1])
        return out

    return fn, (cond, args, np.asarray(False)), "exact"


@case("cast")
def _cast():
    rng = rng_for("cast")
    floats = rng.uniform(-100.7, 100.7, (3, 17))  # truncation toward zero, no overflow
    floats[0, :4] = [-0.9, 0.9, -0.0, 2.5]
    srcs = {
        "float32": floats.astype(F32),
        "float64": floats,
        "int32": data(rng, (3, 17), I32, -1000, 1000),
        "int64": data(rng, (3, 17), I64, -1000, 1000),
        "bool": data(rng, (3, 17), BOOL),
    }
    srcs["int64"][0, :2] = [2**40 + 3, -(2**40) - 3]  # wraps when cast to int32
    # Float -> int saturates everywhere (NaN -> 0, beyond the range the nearest bound)
    edges = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 1e10, -1e10, 2.0**31, -(2.0**31)]
    edges += [2.0**31 - 1, -(2.0**31) - 1, 2.0**63, -(2.0**63), 1e30, -1e30, 2.9, -2.9]
    edges = np.array(edges)

    def fn(srcs, edges32, edges64):
        out = {}
        for s, x in srcs.items():
            for d in ("float32", "float64", "int32", "int64", "bool"):
                out[f"{s}->{d}"] = nc.astype(x, d)
        for name, x in (("float32", edges32), ("float64", edges64)):
            for d in ("float32", "float64", "int32", "int64", "bool"):
                out[f"{name}(edges)->{d}"] = nc.astype(x, d)
        return out

    with np.errstate(over="ignore"):
        return fn, (srcs, edges.astype(F32), edges), "exact"


# ---- movement ---------------------------------------------------------------------------


@case("movement", "float32", "int64", "bool")
def _movement(dtype):
    rng = rng_for("movement", dtype)
    x = data(rng, (3, 17, 5), dtype, -100, 100)
    v = data(rng, (1, 33), dtype, -100, 100)
    e = np.zeros((0, 4), dtype)

    def fn(x, v, e):
        out = {}
        out["reshape/flat"] = nc.reshape(x, (-1,))
        out["reshape/split"] = nc.reshape(x, (51, 5))
        out["reshape/merge"] = nc.reshape(x, (3, 5, 17))
        out["reshape/ones"] = nc.reshape(v, (33, 1, 1))
        out["reshape/empty"] = nc.reshape(e, (2, 0, 2))
        out["transpose/rev"] = nc.transpose(x)
        out["transpose/021"] = nc.transpose(x, (0, 2, 1))
        out["transpose/102"] = nc.transpose(x, (1, 0, 2))
        out["transpose/empty"] = nc.transpose(e)
        out["expand/rows"] = nc.broadcast_to(v, (17, 33))
        out["expand/new_axes"] = nc.broadcast_to(v, (2, 3, 33))
        out["expand/onnx"] = bind("expand", v, shape=(3, 1, 1))  # shape broadcasts too
        out["slice/basic"] = x[1:, 2:15:3, ::2]
        out["slice/negative_step"] = x[::-1, 15:1:-4, -1:-6:-2]
        out["slice/clamped"] = bind(
            "slice", x, starts=(-100, 100), ends=(100, -100), axes=(0, 1), steps=(1, -1)
        )
        out["slice/empty"] = x[:, 5:5]
        out["slice/int_index"] = x[1, :, 3]
        for mode in ("constant", "reflect", "edge"):
            out[f"pad/{mode}"] = nc.pad(x, ((1, 2), (0, 3), (4, 1)), mode=mode)
        out["pad/value"] = nc.pad(v, ((2, 0), (1, 1)), constant_values=1)
        out["pad/empty_axis"] = nc.pad(e, ((1, 1), (2, 0)), constant_values=1)
        out["concat/axis1"] = nc.concatenate([x, x[:, :3], x[:, 16:]], axis=1)
        out["concat/axis-1"] = nc.concatenate([x, x[..., :1]], axis=-1)
        out["concat/with_empty"] = nc.concatenate([v, v[:, :0], v], axis=1)
        out["concat/one"] = nc.concatenate([v], axis=0)
        out["stack"] = nc.stack([v, v, v], axis=1)
        return out

    return fn, (x, v, e), "exact"


@case("gather", "float32", "int32", "int64", "bool")
def _gather(dtype):
    rng = rng_for("gather", dtype)
    x = data(rng, (5, 17, 3), dtype, -100, 100)
    idx1 = rng.integers(-17, 17, (33,))  # negative indices count from the end
    idx2 = rng.integers(-5, 5, (2, 3)).astype(np.int32)
    along = rng.integers(-17, 17, (5, 4, 3))
    along1 = rng.integers(-3, 3, (2, 1, 3))  # extent 1 on the axis, a corner of the data

    def fn(x, idx1, idx2, along, along1):
        return {
            "take/axis1": nc.take(x, idx1, axis=1),
            "take/axis0_2d": nc.take(x, idx2, axis=0),
            "take/axis-1": nc.take(x, np.array([-1, 0, 2, -3]), axis=-1),
            "take/flat": nc.take(x, idx1),
            "take/scalar_index": nc.take(x, np.asarray(-2), axis=1),
            "take/empty_index": nc.take(x, np.zeros((0,), np.int64), axis=1),
            "take_along/axis1": nc.take_along_axis(x, along, axis=1),
            "take_along/corner": nc.take_along_axis(x, along1, axis=2),
        }

    return fn, (x, idx1, idx2, along, along1), "exact"


@case("one_hot")
def _one_hot():
    idx = np.array([[0, 3, -1, 4, -5, 5, -6, 2]])  # out of range -> all-zero rows
    i64, i32 = np.iinfo(np.int64), np.iinfo(np.int32)
    far = np.array([i64.min, i64.max, i64.min + 2, -(2**40), 2**40, 7, -8, -3, 2])
    far32 = np.array([i32.min, i32.max, i32.min + 2, -4, 3, -1, 2], np.int32)
    # Indices computed in the same kernel: a wrapping add, and float -> int casts of NaN,
    # infinities and huge values (which saturate, NaN to 0, on every backend).
    floats = np.array([np.nan, np.inf, -np.inf, 1e10, -1e10, 2.7, -0.5, -2.5, -3.5], np.float32)

    def fn(idx, idx32, far, far32, floats):
        return {
            "f32": nc.one_hot(idx, 5),
            "axis0_f64": nc.one_hot(idx, 5, dtype="float64", axis=0),
            "axis1_i32": nc.one_hot(idx32, 7, dtype="int32", axis=1),
            "bool": nc.one_hot(idx32, 3, dtype="bool"),
            "depth0": nc.one_hot(idx, 0),
            "far": nc.one_hot(far, 3),
            "far_axis0": nc.one_hot(far, 4, axis=0),
            "far32": nc.one_hot(far32, 3, dtype="int64"),
            "wrapped": nc.one_hot(far32 + 3, 5),  # i32.max + 3 wraps to a negative index
            "from_float": nc.one_hot(nc.astype(floats, "int32"), 3),
            "from_float64": nc.one_hot(nc.astype(floats, "int64"), 4, axis=0),
            "times": nc.one_hot(far, 3) * nc.reshape(nc.astype(far32[:3], "float32"), (3, 1, 1)),
        }

    return fn, (idx, idx.astype(np.int32), far, far32, floats), "exact"


# ---- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(CASES))
def test_op_matches_reference(key):
    fn, args, tol = CASES[key]()
    check(fn, *args, tol=tol)


def test_column_reductions_take_the_chunked_path():
    x = np.ones((37, 5), np.float32)
    program = nc.lower(lambda x: nc.sum(x, 0), x).program
    assert "partial" in program.text()
    program = nc.lower(lambda x: nc.sum(x, 1), x).program  # row reduction: the plain path
    assert "partial" not in program.text()


def test_every_primitive_is_covered():
    covered: set[str] = set()
    for make in CASES.values():
        fn, args, _ = make()
        covered |= S.traced_ops(fn, *args)
    # batch_size exists only in dynamic-batch graphs: tests/nncompile/test_dynamic_batch.py
    # compiles it (these cases trace with static shapes)
    missing = set(nc.ir.all_ops()) - covered - {"batch_size"}
    assert not missing, f"no LLVM test case reaches {sorted(missing)}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_subnormal_tails_when_flushing_is_off(monkeypatch, dtype):
    monkeypatch.setenv("NNCOMPILE_FLUSH_DENORMALS", "0")
    fn, args, tol = CASES[f"float-edges-{dtype}"]()
    assert any(np.all(np.isfinite(a)) and a.size and a.min() < -80 for a in args[:2])
    check(fn, *args, tol=tol)


@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_code_flushes_subnormals_and_restores_the_caller(threads):
    """FTZ/DAZ while compiled code runs, on every thread of its team; afterwards NumPy in
    the calling thread computes IEEE subnormals again."""
    x = np.full(1 << 20, 1e-38, np.float32)
    x[::2] = 3e-39  # subnormal inputs are read as 0 (DAZ) ...
    half = nc.compile(lambda v: v * np.float32(0.5), threads=threads)(x)
    assert not np.any(half)  # ... and subnormal results written as 0 (FTZ)
    assert np.all(x * np.float32(0.5) > 0)  # the caller's MXCSR is as it was


# ---- NNCOMPILE_BOUNDS_CHECK -----------------------------------------------------------------

BOUNDS_CHECKED = [
    "movement-float32",
    "gather-float32",
    "reduce-float32",
    "column-reduce-float32",
    "matmul-float32",
    "conv2d-float32",
    "pool-float32",
    "conv-backward-float32",
    "pool-backward-float32",
    "scatter-float32",
]


@pytest.mark.parametrize("key", BOUNDS_CHECKED)
def test_no_out_of_bounds_access_with_bounds_checks(key, monkeypatch):
    """The same cases with every load and store index checked: any out-of-bounds access
    by generated code raises ExecutionError instead of passing silently."""
    monkeypatch.setenv("NNCOMPILE_BOUNDS_CHECK", "1")
    fn, args, tol = CASES[key]()
    check(fn, *args, tol=tol)


def test_bounds_check_reports_the_kernel(monkeypatch):
    """A store index pushed out of range by hand (standing in for a code generator bug)
    is caught and named when bounds checks are on."""
    from nncompile.backends.llvm.module import build_module
    from nncompile.ir.kernel import Loop, Store, const_index, iadd

    def first_store(stmts):
        for s in stmts:
            if isinstance(s, Store):
                return s
            if isinstance(s, Loop):
                found = first_store(s.body)
                if found is not None:
                    return found
        return None

    def fn(x):
        return nc.exp(x) + 1.0

    x = np.ones((4, 5), np.float32)
    monkeypatch.setenv("NNCOMPILE_BOUNDS_CHECK", "1")
    lowered = nc.lower(fn, x)
    (kernel,) = lowered.program.kernels
    store = first_store(kernel.body)
    store.index = iadd(store.index, const_index(1))  # writes one past the end
    lowered.source = build_module(lowered.program, lowered.threads)
    with pytest.raises(nc.ExecutionError, match=f"out-of-bounds.*{kernel.name}"):
        lowered.compile()([x])
    monkeypatch.setenv("NNCOMPILE_BOUNDS_CHECK", "0")
    assert build_module(lowered.program, lowered.threads) != lowered.source  # checks cost code
