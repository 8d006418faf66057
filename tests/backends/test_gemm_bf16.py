"""matmul_precision="bf16": the runtime's bf16 GEMM in each of its forms (AMX tiles,
AVX512-BF16 vectors, float32 on rounded copies: NNCOMPILE_AMX / NNCOMPILE_AVX512BF16
choose) against a float64 product of the bf16-rounded operands, over operand layouts, edge
sizes, thread counts and accumulation; the option's errors. (Training with bf16:
tests/nn/test_mixed_precision.py.)"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from nncompile.backends.llvm import amx, runtime
from nncompile.backends.llvm.executable import aligned_empty
from nncompile.backends.llvm.gemm_packed import WORKSPACE_BYTES
from nncompile.ir.errors import ConfigError

import nncompile as nc

_I64, _P = ctypes.c_int64, ctypes.c_void_p
_GEMM = ctypes.CFUNCTYPE(None, _P, _P, _P, *([_I64] * 10), _P, _I64)
# "amx-emulated": the AMX form's code with its tile instructions in plain code
# (NNCOMPILE_AMX_EMULATE), so its loops, layouts and edges are tested on any CPU
FORMS = ["amx", "avx512bf16", "float32", "amx-emulated"]


def bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 to the nearest bfloat16 (ties to even), returned as float32."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)


def reference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The product of the rounded operands in float64, and the float32 summation bound
    (k u sum |a||b|, u = 2^-24, with a margin for the order of the sums)."""
    a64, b64 = bf16(a).astype(np.float64), bf16(b).astype(np.float64)
    k = a.shape[1]
    bound = 2 * (k + 2) * 2.0**-24 * (np.abs(a64) @ np.abs(b64)) + 1e-30
    return a64 @ b64, bound


@pytest.fixture(params=FORMS)
def form(request, monkeypatch):
    if request.param == "amx" and not amx.amx_usable():
        pytest.skip("this CPU or kernel offers no AMX bf16")
    if request.param == "avx512bf16" and not amx.cpu_has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16")
    if request.param == "amx-emulated" and amx.amx_usable():
        pytest.skip("this CPU runs AMX itself (the 'amx' form)")
    monkeypatch.setenv("NNCOMPILE_AMX", "1" if request.param == "amx" else "0")
    monkeypatch.setenv("NNCOMPILE_AMX_EMULATE", "1" if request.param == "amx-emulated" else "0")
    monkeypatch.setenv("NNCOMPILE_AVX512BF16", "1" if request.param == "avx512bf16" else "0")
    runtime.bf16_runtime()
    assert runtime.bf16_form() == request.param
    return request.param


def _call(a, b, c, beta: int, threads: int) -> None:
    fn = _GEMM(runtime.bf16_runtime().engine.get_function_address("nc_gemm_bf16"))
    workspace = aligned_empty(WORKSPACE_BYTES * threads)
    (m, k), n = a.shape, b.shape[1]
    sa, sb, sc = (tuple(s // 4 for s in x.strides) for x in (a, b, c))
    fn(
        a.ctypes.data,
        b.ctypes.data,
        c.ctypes.data,
        m,
        n,
        k,
        *sa,
        *sb,
        *sc,
        beta,
        workspace.ctypes.data,
        threads,
    )


SHAPES = [(1, 1, 1), (5, 7, 3), (16, 16, 32), (17, 15, 33), (31, 33, 65), (64, 96, 17)]
SHAPES += [(100, 530, 600), (257, 70, 2100)]  # several column and k blocks
SHAPES += [(96, 64, 128)]  # whole 16 x 16 squares: the transposed operands' register path
# k below gemm_bf16.SHORT_K (the float32 GEMM on rounded operands) and at it, over many
# blocks of C
SHAPES += [(300, 200, 10), (300, 200, 31), (300, 200, 32)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("layout", ["nn", "tn", "nt", "tt"])
@pytest.mark.parametrize("threads", [1, 2])
def test_runtime_gemm_matches_rounded_float64(form, m, n, k, layout, threads):
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    a = rng.standard_normal((k, m) if layout[0] == "t" else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if layout[1] == "t" else (k, n)).astype(np.float32)
    a = a.T if layout[0] == "t" else a
    b = b.T if layout[1] == "t" else b
    want, bound = reference(a, b)
    c = np.full((m, n), np.nan, np.float32)  # beta 0 must not read C
    _call(a, b, c, 0, threads)
    assert np.all(np.abs(c - want) <= bound)
    old = rng.standard_normal((m, n)).astype(np.float32)
    c = old.copy()
    _call(a, b, c, 1, threads)  # C += A @ B
    assert np.all(np.abs(c - (want + old)) <= bound + 2.0**-23 * np.abs(want + old))


# (m, n, k, B transposed): few rows and columns with a long k split k (each thread sums a
# range of k, into C or into partial sums the team adds into C); many rows split rows
# (each thread its own rows in its own workspace slice; gemm_team_split.BF16_ROWS, the
# last shape's B over the small-B size)
TEAM_SPLITS = [(64, 64, 5408, True), (37, 45, 3001, True), (130, 140, 300, False)]
TEAM_SPLITS += [(1040, 600, 500, False)]


@pytest.mark.parametrize("m,n,k,b_transposed", TEAM_SPLITS)
@pytest.mark.parametrize("threads", [2, 3])
def test_teams_split_k_or_rows(form, m, n, k, b_transposed, threads):
    rng = np.random.default_rng(m + k + threads)
    a = rng.standard_normal((m, k)).astype(np.float32)
    if b_transposed:
        b = rng.standard_normal((n, k)).astype(np.float32).T
    else:
        b = rng.standard_normal((k, n)).astype(np.float32)
    want, bound = reference(a, b)
    old = rng.standard_normal((m, n)).astype(np.float32)
    for beta in (0, 1):
        c = old.copy()
        _call(a, b, c, beta, threads)
        expected = want + old if beta else want
        assert np.all(np.abs(c - expected) <= bound + 2.0**-23 * np.abs(expected))


def test_empty_and_zero_k(form):
    c = np.ones((3, 4), np.float32)
    _call(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), c, 0, 1)
    assert not c.any()  # k = 0, beta 0: C = 0
    c[...] = 2
    _call(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), c, 1, 1)
    assert np.all(c == 2)


@pytest.mark.parametrize("a_transposed", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_packed_panel_by_panel_when_its_rows_do_not_fit(form, a_transposed, threads):
    # a thread packs all its rows of A once per k block where they fit in its share of
    # the workspace beside a B block; 2400 rows x 1024 k (4.9 MB) do not, and go panel by
    # panel (several k blocks too: k = 1100)
    rng = np.random.default_rng(11)
    a = rng.standard_normal((2400, 1100)).astype(np.float32)
    if a_transposed:
        a = np.asfortranarray(a)
    b = rng.standard_normal((1100, 40)).astype(np.float32)
    want, bound = reference(a, b)
    c = np.full((2400, 40), np.nan, np.float32)
    _call(a, b, c, 0, threads)
    assert np.all(np.abs(c - want) <= bound)


def test_rounding_ties_to_even_and_specials(form):
    """One-term products show the operands' rounding: ties to even, NaN and inf kept."""
    above = np.float32(1.0) + np.float32(2.0**-8)  # a tie between 1 and 1 + 2^-7: down
    odd = np.float32(1.0 + 2.0**-7 + 2.0**-8)  # a tie above an odd last bit: up
    a = np.array([[above], [odd], [np.inf], [np.nan], [3.0e38]], np.float32)
    b = np.ones((1, 1), np.float32)
    c = np.zeros((5, 1), np.float32)
    _call(a, b, c, 0, 1)
    assert c[0, 0] == 1.0 and c[1, 0] == np.float32(1.0 + 2.0**-6)
    assert c[2, 0] == np.inf and np.isnan(c[3, 0])
    assert c[4, 0] == bf16(np.float32(3.0e38))


@pytest.mark.parametrize("threads", [1, 2])
def test_packed_operands_round_ties_to_even_and_keep_specials(form, threads):
    """The same values through the packed blocks (k >= SHORT_K, whole 16-column panels of
    a row-major B: the vector pair rows, vcvtne2ps2bf16 where the CPU has it): in A's first
    column against ones, and in B's first row against ones; every other term zero."""
    above = np.float32(1.0) + np.float32(2.0**-8)
    odd = np.float32(1.0 + 2.0**-7 + 2.0**-8)
    specials = np.array([above, odd, np.inf, np.nan, 3.0e38, -odd], np.float32)
    want = np.array(
        [1.0, 1.0 + 2.0**-6, np.inf, np.nan, bf16(np.float32(3.0e38)), -(1.0 + 2.0**-6)]
    )
    k, n = 64, 32
    a = np.zeros((len(specials), k), np.float32)
    a[:, 0] = specials
    b = np.zeros((k, n), np.float32)
    b[0, :] = 1.0
    c = np.zeros((len(specials), n), np.float32)
    _call(a, b, c, 0, threads)
    np.testing.assert_array_equal(c, np.repeat(want[:, None], n, axis=1).astype(np.float32))
    a, b = np.zeros((n, k), np.float32), np.zeros((k, len(specials) * 4), np.float32)
    a[:, 0] = 1.0
    b[0, :] = np.tile(specials, 4)
    c = np.zeros((n, b.shape[1]), np.float32)
    _call(a, b, c, 0, threads)
    np.testing.assert_array_equal(c, np.tile(want, 4)[None, :].repeat(n, 0).astype(np.float32))


def test_compiled_matmuls_and_convolution_round_their_operands(form):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((70, 300)).astype(np.float32)
    w = rng.standard_normal((300, 40)).astype(np.float32)
    f = nc.compile(lambda x, w: nc.relu(x @ w + 1.0), matmul_precision="bf16")
    want, bound = reference(x, w)
    np.testing.assert_array_less(np.abs(f(x, w) - np.maximum(want + 1.0, 0)), bound + 1e-6)
    # a convolution lowered to a GEMM: the reference is float64 on rounded operands
    img = rng.standard_normal((4, 1, 12, 12)).astype(np.float32)
    k = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    conv = nc.compile(lambda i, k: nc.conv2d(i, k), matmul_precision="bf16")(img, k)
    exact = nc.compile(lambda i, k: nc.conv2d(i, k), backend="numpy")(
        bf16(img).astype(np.float64), bf16(k).astype(np.float64)
    )
    np.testing.assert_allclose(conv, exact, rtol=1e-5, atol=1e-5)
    text = nc.lower(lambda x, w: x @ w, x, w, matmul_precision="bf16").program.text()
    assert "bf16 products" in text


@pytest.mark.parametrize("channels,padding", [(1, 0), (1, 1), (4, 0), (4, 1)])
def test_convolution_gradients_round_their_operands(form, channels, padding):
    """Both gradients of a convolution (the weight gradient reads the input from a rounded
    copy, the GEMMs then leave it alone) equal float64 products of the rounded operands."""
    rng = np.random.default_rng(channels + padding)
    img = rng.standard_normal((5, channels, 11, 11)).astype(np.float32)
    k = rng.standard_normal((8, channels, 3, 3)).astype(np.float32)
    out = 11 + 2 * padding - 2
    g = rng.standard_normal((5, 8, out, out)).astype(np.float32)

    def loss(i, k, g):
        return nc.sum(nc.conv2d(i, k, padding=padding) * g)

    grads = nc.compile(nc.grad(loss, argnums=(0, 1)), matmul_precision="bf16")(img, k, g)
    exact = nc.compile(nc.grad(loss, argnums=(0, 1)), backend="numpy")(
        *(bf16(a).astype(np.float64) for a in (img, k, g))
    )
    for got, want in zip(grads, exact, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_float32_default_is_untouched():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 64)).astype(np.float32)
    w = rng.standard_normal((64, 8)).astype(np.float32)
    got = nc.compile(lambda x, w: x @ w)(x, w)
    np.testing.assert_allclose(got, x.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    assert np.abs(got - reference(x, w)[0]).max() > 1e-3  # bf16 rounding would show


def test_environment_default(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_MATMUL_PRECISION", "bf16")
    assert nc.compile(lambda x: x).matmul_precision == "bf16"
    # the default of the compiles that can use it: the others stay float32, no error
    assert nc.compile(lambda x: x, backend="numpy").matmul_precision == "float32"
    assert nc.compile(lambda x: x, check=True).matmul_precision == "float32"
    monkeypatch.setenv("NNCOMPILE_MATMUL_PRECISION", "bfloat")
    with pytest.raises(ConfigError, match="NNCOMPILE_MATMUL_PRECISION"):
        nc.compile(lambda x: x)


def test_refusals():
    with pytest.raises(ConfigError, match="matmul_precision must be one of"):
        nc.compile(lambda x: x, matmul_precision="fp8")
    with pytest.raises(NotImplementedError, match="computes float32 products"):
        nc.compile(lambda x: x, backend="numpy", matmul_precision="bf16")
    with pytest.raises(NotImplementedError, match="check=True"):
        nc.compile(lambda x: x, check=True, matmul_precision="bf16")


def test_threads_share_one_compiled_bf16_function(form):
    """Concurrent calls pack into their own call contexts' workspaces."""
    import threading

    rng = np.random.default_rng(5)
    w = rng.standard_normal((256, 192)).astype(np.float32)
    f = nc.compile(lambda x, w: x @ w, matmul_precision="bf16")
    xs = [rng.standard_normal((96, 256)).astype(np.float32) for _ in range(6)]
    wants = [reference(x, w) for x in xs]
    failures: list[str] = []

    def worker(i: int) -> None:
        for _ in range(20):
            want, bound = wants[i]
            if not np.all(np.abs(f(xs[i], w) - want) <= bound):
                failures.append(f"thread {i}")
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_a_forked_child_runs_bf16_code(form):
    """The AMX permission and the runtime GEMM carry into a child forked after use."""
    import multiprocessing

    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 128)).astype(np.float32)
    w = rng.standard_normal((128, 64)).astype(np.float32)
    f = nc.compile(lambda x, w: x @ w, matmul_precision="bf16")
    want, bound = reference(x, w)
    assert np.all(np.abs(f(x, w) - want) <= bound)  # used here first, then fork
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=lambda: results.put(f(x, w)))  # (fork: nothing pickled)
    child.start()
    got = results.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert np.all(np.abs(got - want) <= bound)


def test_the_float32_form_says_so_once(monkeypatch):
    import warnings

    monkeypatch.setenv("NNCOMPILE_AMX", "0")
    monkeypatch.setenv("NNCOMPILE_AVX512BF16", "0")
    monkeypatch.setattr(runtime, "_bf16_form", "amx")  # as if another form ran before
    with pytest.warns(RuntimeWarning, match="no usable AMX"):
        runtime.bf16_runtime()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runtime.bf16_runtime()  # the same form again: no second line
    assert runtime.bf16_form() == "float32"


@pytest.mark.parametrize(
    "setting, speedup, want",
    [
        ("auto", 1.9, "avx512bf16"),
        ("auto", 1.0, "float32"),
        ("1", 1.0, "avx512bf16"),
        ("0", 1.9, "float32"),
    ],
)
def test_avx512bf16_is_chosen_by_its_measured_speed(monkeypatch, setting, speedup, want):
    """Without AMX, vdpbf16ps is used where it measures clearly faster than float32 FMAs
    (auto), always (1) or never (0)."""
    from nncompile.backends.llvm import fma_peak

    monkeypatch.setenv("NNCOMPILE_AMX", "0")
    monkeypatch.setenv("NNCOMPILE_AVX512BF16", setting)
    monkeypatch.setattr(amx, "cpu_has_avx512bf16", lambda: True)
    monkeypatch.setattr(fma_peak, "bf16_dot_speedup", lambda: speedup)
    assert amx.bf16_form() == want


def test_avx512bf16_needs_the_cpu_feature(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_AMX", "0")
    monkeypatch.setenv("NNCOMPILE_AVX512BF16", "1")
    monkeypatch.setattr(amx, "cpu_has_avx512bf16", lambda: False)
    assert amx.bf16_form() == "float32"


def test_bf16_dot_peak_is_measured():
    from nncompile.backends.llvm import fma_peak

    if not amx.cpu_has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16")
    peak, speedup = fma_peak.bf16_dot_peak(0.02), fma_peak.bf16_dot_speedup(0.02)
    assert 1.0 < peak < 1e5 and 0.1 < speedup < 10
