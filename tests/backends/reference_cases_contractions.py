"""Reference cases (see reference_cases.py): contractions, the gradient primitives and
batch_size."""

from __future__ import annotations

import itertools
import math
from functools import partial

import numpy as np

from .reference_cases import (
    F32,
    F64,
    FLOATS,
    I32,
    I64,
    INT64_MAX,
    INT64_MIN,
    NUMERIC,
    bindex,
    bshape,
    build,
    case,
    rand,
    ties,
)
from .reference_cases_shapes import (
    _GATHER_ELEMENTS,
    _GATHERS,
    _SLICES,
    _sum,
    onnx_slice_indices,
    slice_expected,
)

# ---- contractions -----------------------------------------------------------------------------


def matmul_expected(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
    b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
    batch = bshape(a2.shape[:-2], b2.shape[:-2])
    (m, k), n = a2.shape[-2:], b2.shape[-1]

    def at(o):
        ai, bi = bindex(o[:-2], a2.shape[:-2]), bindex(o[:-2], b2.shape[:-2])
        terms = [a2[ai + (o[-2], j)].item() * b2[bi + (j, o[-1])].item() for j in range(k)]
        return _sum(terms, a.dtype)

    out = build(batch + (m, n), a.dtype, at)
    if a.ndim == 1:
        out = out.reshape(out.shape[:-2] + out.shape[-1:])
    if b.ndim == 1:
        out = out.reshape(out.shape[:-1])
    return out


_MATMULS = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((3, 0), (0, 2)),
    ((0, 4), (4, 2)),
    ((1, 1), (1, 1)),
]
for _dtype, (_sa, _sb) in itertools.product(NUMERIC, _MATMULS):
    _a, _b = rand(_sa, _dtype), rand(_sb, _dtype)
    case("matmul", [_a, _b], {}, partial(matmul_expected, _a, _b), f"{_dtype}{_sa}{_sb}", "acc")


def _window_out(size: int, k: int, s: int, pad_total: int, d: int) -> int:
    return (size + pad_total - d * (k - 1) - 1) // s + 1


def _window_taps(x: np.ndarray, o, kernel, strides, pads, dilations):
    """(ki, kj, y, x) of every in-bounds tap of output position o=(i, j)."""
    h, w = x.shape[2:]
    for ki in range(kernel[0]):
        for kj in range(kernel[1]):
            y = o[0] * strides[0] - pads[0] + ki * dilations[0]
            xx = o[1] * strides[1] - pads[1] + kj * dilations[1]
            if 0 <= y < h and 0 <= xx < w:
                yield ki, kj, y, xx


def conv2d_expected(x, w, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), groups=1):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = _window_out(h, kh, strides[0], pads[0] + pads[2], dilations[0])
    ow = _window_out(wd, kw, strides[1], pads[1] + pads[3], dilations[1])
    per_group = o // groups

    def at(idx):
        b, oc, i, j = idx
        g = oc // per_group
        terms = [
            x[b, g * cg + ci, y, xx].item() * w[oc, ci, ki, kj].item()
            for ci in range(cg)
            for ki, kj, y, xx in _window_taps(x, (i, j), (kh, kw), strides, pads, dilations)
        ]
        return math.fsum(terms)

    return build((n, o, oh, ow), x.dtype, at)


def pool_expected(x, kind, kernel, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), cip=False):
    n, c, h, w = x.shape
    oh = _window_out(h, kernel[0], strides[0], pads[0] + pads[2], dilations[0])
    ow = _window_out(w, kernel[1], strides[1], pads[1] + pads[3], dilations[1])

    def at(idx):
        b, ch, i, j = idx
        taps = _window_taps(x, (i, j), kernel, strides, pads, dilations)
        vals = [x[b, ch, y, xx].item() for _, _, y, xx in taps]
        if kind == "max":
            return max(vals, default=-math.inf)  # padding never wins
        return math.fsum(vals) / (kernel[0] * kernel[1] if cip else len(vals))

    return build((n, c, oh, ow), x.dtype, at)


# (x shape, w shape, attrs)
_CONVS = [
    ((1, 1, 5, 5), (1, 1, 3, 3), {}),
    ((2, 3, 7, 6), (4, 3, 3, 2), {"strides": [2, 1]}),
    ((1, 2, 5, 6), (3, 2, 3, 3), {"pads": [1, 0, 2, 1]}),
    ((1, 2, 6, 7), (2, 2, 2, 3), {"dilations": [2, 1], "pads": [2, 1, 2, 1]}),
    ((1, 4, 5, 5), (6, 2, 3, 3), {"groups": 2}),
    ((2, 3, 6, 6), (3, 1, 3, 3), {"groups": 3, "pads": [1, 1, 1, 1]}),  # depthwise
    ((1, 3, 5, 5), (6, 1, 2, 2), {"groups": 3, "strides": [2, 2]}),  # channel multiplier 2
    (
        (2, 4, 9, 8),
        (4, 2, 2, 3),
        {"strides": [2, 3], "pads": [0, 2, 1, 1], "dilations": [2, 2], "groups": 2},
    ),
    ((1, 2, 4, 4), (3, 2, 1, 1), {}),
    ((0, 2, 4, 4), (3, 2, 3, 3), {}),
    ((1, 2, 3, 4), (2, 2, 3, 4), {}),  # kernel covers the input: 1x1 output
]
for _dtype, (_sx, _sw, _attrs) in itertools.product(FLOATS, _CONVS):
    _x, _w = rand(_sx, _dtype), rand(_sw, _dtype)
    _fn = partial(
        conv2d_expected, _x, _w, **{k: tuple(v) if k != "groups" else v for k, v in _attrs.items()}
    )
    case("conv2d", [_x, _w], _attrs, _fn, f"{_dtype}{_sx}{_sw}{_attrs}", "acc")

# (x shape, attrs); max-pool data is negative so a padding value of 0 would win
_POOLS = [
    ((1, 2, 4, 4), {"kernel": [2, 2], "strides": [2, 2]}),
    ((2, 1, 5, 5), {"kernel": [3, 3], "pads": [1, 1, 1, 1]}),
    ((1, 2, 5, 4), {"kernel": [3, 2], "pads": [0, 1, 2, 0]}),
    ((1, 1, 6, 6), {"kernel": [2, 2], "dilations": [2, 2]}),
    ((1, 2, 5, 7), {"kernel": [2, 3], "strides": [1, 2], "pads": [1, 2, 0, 1]}),
    (
        (1, 1, 7, 7),
        {"kernel": [3, 2], "strides": [2, 2], "pads": [2, 1, 1, 0], "dilations": [1, 2]},
    ),
    ((0, 2, 4, 4), {"kernel": [2, 2]}),
    ((1, 1, 1, 1), {"kernel": [1, 1]}),
]


def _tupled(attrs: dict) -> dict:
    return {k: tuple(v) for k, v in attrs.items() if k != "kernel"}


for _dtype, (_sx, _attrs) in itertools.product(FLOATS, _POOLS):
    _x = rand(_sx, _dtype, -3, -0.5)
    _fn = partial(pool_expected, _x, "max", tuple(_attrs["kernel"]), **_tupled(_attrs))
    case("max_pool2d", [_x], _attrs, _fn, f"{_dtype}{_sx}{_attrs}")
    for _cip in (False, True):
        _x = rand(_sx, _dtype)
        _k = tuple(_attrs["kernel"])
        _fn = partial(pool_expected, _x, "avg", _k, **_tupled(_attrs), cip=_cip)
        _a = _attrs | {"count_include_pad": _cip}
        case("avg_pool2d", [_x], _a, _fn, f"{_dtype}{_sx}{_attrs}-cip{_cip}", "acc")
# count_include_pad defaults to False, as in ONNX
_x = rand((1, 1, 3, 3), F64)
_fn = partial(pool_expected, _x, "avg", (2, 2), pads=(1, 1, 0, 0))
_a = {"kernel": [2, 2], "pads": [1, 1, 0, 0]}
case("avg_pool2d", [_x], _a, _fn, "default-cip", "acc")  # a mean: summation order may differ


# ---- gradient primitives -----------------------------------------------------------------------
# Expected values by index loops: the conv/pool adjoints gather, for every input position, the
# output positions whose window covers it (the references scatter window by window instead).


def _covering(pos: int, size_out: int, k: int, s: int, p: int, d: int):
    """(output index, kernel offset) pairs whose window tap lands on input index ``pos``."""
    for ki in range(k):
        q, r = divmod(pos + p - ki * d, s)
        if r == 0 and 0 <= q < size_out:
            yield q, ki


def conv2d_backward_input_expected(g, w, input_hw, strides, pads, dilations, groups):
    n, o, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    per_group = o // groups

    def at(idx):
        b, c, y, xx = idx
        grp, ci = divmod(c, cg)
        terms = [
            g[b, oc, i, j].item() * w[oc, ci, ki, kj].item()
            for oc in range(grp * per_group, (grp + 1) * per_group)
            for i, ki in _covering(y, oh, kh, strides[0], pads[0], dilations[0])
            for j, kj in _covering(xx, ow, kw, strides[1], pads[1], dilations[1])
        ]
        return math.fsum(terms)

    return build((n, cg * groups) + tuple(input_hw), g.dtype, at)


def conv2d_backward_weight_expected(x, g, kernel, strides, pads, dilations, groups):
    n, c, h, wd = x.shape
    o, oh, ow = g.shape[1:]
    cg = c // groups
    per_group = o // groups

    def at(idx):
        oc, ci, ki, kj = idx
        ch = oc // per_group * cg + ci
        terms = []
        for b, i, j in itertools.product(range(n), range(oh), range(ow)):
            y = i * strides[0] - pads[0] + ki * dilations[0]
            xx = j * strides[1] - pads[1] + kj * dilations[1]
            if 0 <= y < h and 0 <= xx < wd:
                terms.append(x[b, ch, y, xx].item() * g[b, oc, i, j].item())
        return math.fsum(terms)

    return build((o, cg) + tuple(kernel), x.dtype, at)


def _conv_tuples(attrs: dict) -> dict:
    out = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "groups": 1}
    return out | {k: v if k == "groups" else tuple(v) for k, v in attrs.items()}


for _dtype, (_sx, _sw, _attrs) in itertools.product(FLOATS, _CONVS):
    _full = _conv_tuples(_attrs)
    _probe = conv2d_expected(np.zeros(_sx, F64), np.zeros(_sw, F64), **_full)
    _g, _w, _x = rand(_probe.shape, _dtype), rand(_sw, _dtype), rand(_sx, _dtype)
    _tag = f"{_dtype}{_sx}{_sw}{_attrs}"
    _fn = partial(conv2d_backward_input_expected, _g, _w, _sx[2:], **_full)
    _a = _attrs | {"input_hw": list(_sx[2:])}
    case("conv2d_backward_input", [_g, _w], _a, _fn, _tag, "acc")
    _fn = partial(conv2d_backward_weight_expected, _x, _g, _sw[2:], **_full)
    _a = _attrs | {"kernel": list(_sw[2:])}
    case("conv2d_backward_weight", [_x, _g], _a, _fn, _tag, "acc")


def max_pool2d_backward_expected(x, g, kernel, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1)):
    """Each window's gradient goes to its first maximal element in row-major order."""
    out = np.zeros(x.shape, F64)
    for b, ch, i, j in np.ndindex(*g.shape):
        best = None
        for _, _, y, xx in _window_taps(x, (i, j), kernel, strides, pads, dilations):
            if best is None or x[b, ch, y, xx] > x[b, ch, best[0], best[1]]:
                best = (y, xx)
        if best is not None:
            out[b, ch, best[0], best[1]] += g[b, ch, i, j].item()
    return out.astype(x.dtype)


def avg_pool2d_backward_expected(g, input_hw, kernel, strides, pads, dilations, cip):
    n, c, oh, ow = g.shape
    h, w = input_hw

    def at(idx):
        b, ch, y, xx = idx
        terms = []
        for i, _ in _covering(y, oh, kernel[0], strides[0], pads[0], dilations[0]):
            for j, _ in _covering(xx, ow, kernel[1], strides[1], pads[1], dilations[1]):
                probe = np.zeros((1, 1, h, w))
                taps = len(list(_window_taps(probe, (i, j), kernel, strides, pads, dilations)))
                terms.append(g[b, ch, i, j].item() / (kernel[0] * kernel[1] if cip else taps))
        return math.fsum(terms)

    return build((n, c, h, w), g.dtype, at)


def _pool_tuples(attrs: dict) -> dict:
    out = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)}
    return out | {k: tuple(v) for k, v in attrs.items() if k != "kernel"}


for _dtype, (_sx, _attrs) in itertools.product(FLOATS, _POOLS):
    _k, _full = tuple(_attrs["kernel"]), _pool_tuples(_attrs)
    _oshape = pool_expected(np.zeros(_sx, F64), "avg", _k, **_full).shape
    _tag = f"{_dtype}{_sx}{_attrs}"
    # Negative data (zero padding would win), then few distinct values (ties everywhere).
    for _name, _x in (("neg", rand(_sx, _dtype, -3, -0.5)), ("ties", ties(_sx, _dtype))):
        _g = rand(_oshape, _dtype)
        _fn = partial(max_pool2d_backward_expected, _x, _g, _k, **_full)
        case("max_pool2d_backward", [_x, _g], _attrs, _fn, f"{_name}-{_tag}", "acc")
    for _cip in (False, True):
        _g = rand(_oshape, _dtype)
        _fn = partial(avg_pool2d_backward_expected, _g, _sx[2:], _k, **_full, cip=_cip)
        _a = _attrs | {"count_include_pad": _cip, "input_hw": list(_sx[2:])}
        case("avg_pool2d_backward", [_g], _a, _fn, f"{_tag}-cip{_cip}", "acc")
_g = rand((1, 1, 3, 3), F64)
_fn = partial(avg_pool2d_backward_expected, _g, (3, 3), (2, 2), (1, 1), (1, 1, 0, 0), (1, 1), False)
_a = {"kernel": [2, 2], "pads": [1, 1, 0, 0], "input_hw": [3, 3]}
case("avg_pool2d_backward", [_g], _a, _fn, "default-cip", "acc")

# Ties by hand (x, g, kernel, strides, expected): the first maximum in row-major order of
# each window takes the gradient, and overlapping windows add up on a shared maximum.
_MAX_POOL_TIES = [
    ([[1, 1], [1, 1]], [[5]], (2, 2), (2, 2), [[5, 0], [0, 0]]),
    (
        [[5, 5, 1], [5, 2, 5], [0, 5, 5]],
        [[1, 2], [3, 4]],
        (2, 2),
        (1, 1),
        [[1, 2, 0], [3, 0, 4], [0, 0, 0]],
    ),
    (
        [[0, 0, 0], [0, 9, 0], [0, 0, 0]],
        [[1, 2], [3, 4]],
        (2, 2),
        (1, 1),
        [[0, 0, 0], [0, 10, 0], [0, 0, 0]],
    ),
    ([[2, 3, 3, 2]], [[1, 10, 100]], (1, 2), (1, 1), [[0, 11, 100, 0]]),
    ([[7, 7, 7, 7]], [[1, 10]], (1, 3), (1, 1), [[1, 10, 0, 0]]),
]
for _dtype, (_x, _g, _k, _s, _want) in itertools.product(FLOATS, _MAX_POOL_TIES):
    _x4, _g4 = np.array(_x, _dtype)[None, None], np.array(_g, _dtype)[None, None]
    _attrs = {"kernel": list(_k), "strides": list(_s)}
    _tag = f"ties-by-hand-{_dtype}{_x4.shape}{_k}{_s}"
    case("max_pool2d_backward", [_x4, _g4], _attrs, np.array(_want, _dtype)[None, None], _tag)


def scatter_add_expected(g: np.ndarray, idx: np.ndarray, axis: int, shape) -> np.ndarray:
    axis %= len(shape)
    k = idx.ndim
    out = np.zeros(shape, F64 if g.dtype.kind == "f" else I64)
    for o in np.ndindex(*g.shape):
        i = int(idx[o[axis : axis + k]])
        out[o[:axis] + (i + shape[axis] if i < 0 else i,) + o[axis + k :]] += g[o]
    return out.astype(g.dtype)


def scatter_elements_add_expected(g, idx, axis: int, shape) -> np.ndarray:
    axis %= len(shape)
    out = np.zeros(shape, F64 if g.dtype.kind == "f" else I64)
    for o in np.ndindex(*g.shape):
        i = int(idx[o])
        out[o[:axis] + (i + shape[axis] if i < 0 else i,) + o[axis + 1 :]] += g[o]
    return out.astype(g.dtype)


# Repeated indices add up (both signs of the same place too).
_SCATTERS = _GATHERS + [
    ((4, 2), np.array([1, 1, -3, 3, 1], I64), 0),
    ((2, 3, 2), np.array([[2, -1], [0, 2], [2, 2]], I32), 1),
]
for _dtype, (_shape, _idx, _axis) in itertools.product((F32, F64, I32, I64), _SCATTERS):
    if 0 in _shape:
        continue  # scatter into an empty axis has no valid index
    _a = _axis % len(_shape)
    _g = rand(_shape[:_a] + _idx.shape + _shape[_a + 1 :], _dtype)
    _fn = partial(scatter_add_expected, _g, _idx, _axis, _shape)
    _attrs = {"axis": _axis, "shape": list(_shape)}
    case("scatter_add", [_g, _idx], _attrs, _fn, f"{_dtype}{_shape}{_idx.shape}{_axis}", "acc")

for _dtype, (_shape, _ishape, _axis) in itertools.product((F32, F64, I64), _GATHER_ELEMENTS):
    _n = _shape[_axis]
    _idx = rand(_ishape, I64 if _axis >= 0 else I32, -_n, _n - 1)
    _g = rand(_ishape, _dtype)
    _fn = partial(scatter_elements_add_expected, _g, _idx, _axis, _shape)
    _attrs = {"axis": _axis, "shape": list(_shape)}
    _tag = f"{_dtype}{_shape}{_ishape}{_axis}"
    case("scatter_elements_add", [_g, _idx], _attrs, _fn, _tag, "acc")
_idx = np.array([[0, 0, 2], [0, -3, 2]], I64)  # every column hits row 0 or 2 twice
_g = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]], F64)
_want = np.array([[11.0, 22.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 33.0]], F64)
case("scatter_elements_add", [_g, _idx], {"axis": 0, "shape": [3, 3]}, _want, "duplicates")


def slice_backward_expected(g: np.ndarray, shape, starts, ends, axes, steps) -> np.ndarray:
    picks = [list(range(d)) for d in shape]
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        picks[a % len(shape)] = onnx_slice_indices(shape[a % len(shape)], s, e, st)
    out = np.zeros(shape, g.dtype)
    for o in np.ndindex(*g.shape):
        out[tuple(p[i] for p, i in zip(picks, o, strict=True))] = g[o]
    return out


for _dtype, (_shape, *_spec) in itertools.product((F32, F64, I64), _SLICES):
    _gshape = slice_expected(np.zeros(_shape), *_spec).shape
    _g = rand(_gshape, _dtype)
    _attrs = dict(zip(("starts", "ends", "axes", "steps"), _spec, strict=True))
    _fn = partial(slice_backward_expected, _g, _shape, *_spec)
    case("slice_backward", [_g], _attrs | {"shape": list(_shape)}, _fn, f"{_dtype}{_shape}{_spec}")


# random_uniform: splitmix64 with Python ints (mod 2**64), independent of the NumPy version.
_M64 = 2**64 - 1


def splitmix64_int(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def random_uniform_expected(key: int, shape, dtype) -> np.ndarray:
    """u[i] = top bits of splitmix64(splitmix64(key) + i) for the flat index i: 24 bits
    for float32, 53 for float64, scaled to [0, 1)."""
    seed = splitmix64_int(key & _M64)  # an int64 key is read as its two's complement
    bits = [splitmix64_int((seed + i) & _M64) for i in range(math.prod(shape))]
    if np.dtype(dtype) == F32:
        vals = [(b >> 40) * 2.0**-24 for b in bits]
    else:
        vals = [(b >> 11) * 2.0**-53 for b in bits]
    return np.array(vals, F64).astype(dtype).reshape(shape)


_RANDOM_KEYS = [(0, I64), (1, I64), (-1, I64), (INT64_MAX, I64), (INT64_MIN, I64), (12345, I32)]
_RANDOM_KEYS += [(-7, I32)]
for (_key, _kdt), _dtype in itertools.product(_RANDOM_KEYS, FLOATS):
    for _shape in ((2, 3), (), (0, 4)):
        _fn = partial(random_uniform_expected, _key, _shape, _dtype)
        _attrs = {"shape": list(_shape), "dtype": _dtype}
        case("random_uniform", [np.array(_key, _kdt)], _attrs, _fn, f"{_key}{_kdt}{_dtype}{_shape}")
case(
    "random_uniform",
    [np.array(3, I64)],
    {"shape": [5]},  # float32 by default
    partial(random_uniform_expected, 3, (5,), F32),
    "default-dtype",
)

# batch_size reads the batch size the interpreter binds (the tests below bind n = 5)
case("batch_size", [], {"scale": 3, "offset": 2, "dtype": F32}, np.array(17, F32), "3n+2")
case("batch_size", [], {}, np.array(5, I64), "default")
BOUND_BATCH = 5
