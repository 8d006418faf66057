"""NCHW im2col convolutions on the CPU run in slots (Target.conv_batch "slots"): the
batch split over as many slots as cores, each slot unfolding one image at a time into its
own scratch and running one-thread GEMMs on it, slots in parallel. Batches that do not
divide evenly, groups, strides, padding and an epilogue; slot counts 1, 2 and 3; thread
counts 1 and 2 (GEMMs inside a parallel loop pack into per-thread workspaces)."""

from __future__ import annotations

import numpy as np
import pytest
from nncompile.ir.kernel import Gemm, Loop, walk

import nncompile as nc

from .llvm_support import acc, check

CASES = [  # (batch, in channels, out channels, size, kernel, stride, padding, groups)
    (5, 8, 12, 9, 3, 1, 1, 1),
    (7, 12, 16, 10, 3, 2, 0, 2),
    (1, 16, 6, 6, 3, 1, 1, 1),
    (4, 12, 15, 7, 5, 1, 2, 3),
]


def _slot_loops(program) -> list[Loop]:
    loops = [s for k in program.kernels for s in walk(k.body) if isinstance(s, Loop)]
    return [loop for loop in loops if any(isinstance(s, Gemm) for s in walk(loop.body))]


@pytest.mark.parametrize("slots", [1, 2, 3])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "n{}c{}o{}s{}k{}st{}p{}g{}".format(*c))
def test_conv_in_slots_matches_reference(case, threads, slots, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_THREADS", str(slots))  # the slot count lowering uses
    n, c, o, size, k, stride, pad, groups = case
    rng = np.random.default_rng(n * 100 + c)
    x = rng.uniform(-1, 1, (n, c, size, size)).astype(np.float32)
    w = rng.uniform(-1, 1, (o, c // groups, k, k)).astype(np.float32)
    bias = rng.uniform(-1, 1, (o,)).astype(np.float32)

    def fn(x, w, bias):
        y = nc.conv2d(x, w, bias, stride=stride, padding=pad, groups=groups)
        return nc.relu(y), y * 2.0

    program = nc.lower(fn, x, w, bias).program
    slot_loops = _slot_loops(program)
    assert slot_loops, "the convolution should run as a loop over slots"
    assert slot_loops[0].extent == -(-n // -(-n // min(n, slots)))
    check(fn, x, w, bias, tol=acc("float32", c * k * k, 4.0), threads=threads)


def test_conv_in_slots_survives_a_foreign_thread_count(monkeypatch):
    """A program lowered for 4 slots still runs right with 1 or 2 threads, and one
    lowered for 1 slot with 2 threads: the slot count is only a performance choice."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (6, 8, 8, 8)).astype(np.float32)
    w = rng.uniform(-1, 1, (16, 8, 3, 3)).astype(np.float32)
    want = nc.run(nc.trace(lambda x, w: nc.conv2d(x, w, padding=1), x, w), x, w)
    for slots, threads in ((4, 1), (4, 2), (1, 2)):
        monkeypatch.setenv("NNCOMPILE_THREADS", str(slots))
        got = nc.compile(lambda x, w: nc.conv2d(x, w, padding=1), threads=threads)(x, w)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("slots", [1, 2, 3])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "n{}c{}o{}s{}k{}st{}p{}g{}".format(*c))
def test_input_gradient_in_slots_matches_reference(case, slots, layout, monkeypatch):
    """The input gradient (a transposed convolution: GEMM into the slot's scratch, then
    col2im into the image) and the weight gradient beside it (chunks of images, each
    unfolded into the chunk's own scratch, one-thread GEMMs into the chunk's partial sum;
    NHWC gradients transposed per image first)."""
    monkeypatch.setenv("NNCOMPILE_THREADS", str(slots))
    n, c, o, size, k, stride, pad, groups = case
    rng = np.random.default_rng(n * 10 + o)
    x = rng.uniform(-1, 1, (n, c, size, size)).astype(np.float32)
    w = rng.uniform(-1, 1, (o, c // groups, k, k)).astype(np.float32)
    out = (size + 2 * pad - k) // stride + 1
    r = rng.uniform(-1, 1, (n, o, out, out)).astype(np.float32)
    if layout == "NHWC":
        x, r = x.transpose(0, 2, 3, 1).copy(), r.transpose(0, 2, 3, 1).copy()

    def loss(x, w, r):
        y = nc.conv2d(x, w, stride=stride, padding=pad, groups=groups, layout=layout)
        return nc.sum(y * r)

    grads = nc.grad(loss, argnums=(0, 1))
    check(grads, x, w, r, tol=acc("float32", o * k * k * n, 4.0), threads=2)


@pytest.mark.parametrize("out_channels", [1, 2, 3, 4])
def test_few_output_channels_convolve_directly(out_channels):
    """Up to FEW_OUT output channels per group, a longer sum (here 8 x 3 x 3 = 72) is
    still convolved directly: an im2col matrix would serve too few output channels. (1, 2,
    3 and 4 channels: direct convolutions compute 4, 2 or 1 channels per step.)"""
    rng = np.random.default_rng(out_channels)
    x = rng.uniform(-1, 1, (3, 8, 12, 12)).astype(np.float32)
    w = rng.uniform(-1, 1, (out_channels, 8, 3, 3)).astype(np.float32)

    def fn(x, w):
        return nc.sigmoid(nc.conv2d(x, w, padding=1))

    assert not _slot_loops(nc.lower(fn, x, w).program)
    check(fn, x, w, tol=acc("float32", 72, 4.0), threads=2)


def _slot_conv(x, w):
    return nc.relu(nc.conv2d(x, w, padding=1))


_SLOT_X = np.random.default_rng(7).uniform(-1, 1, (6, 8, 10, 10)).astype(np.float32)
_SLOT_W = np.random.default_rng(8).uniform(-1, 1, (16, 8, 3, 3)).astype(np.float32)


def test_slot_convolutions_called_from_threads_at_once():
    """Each concurrent call has its own context, so its own per-thread GEMM workspaces:
    eight threads calling one compiled convolution get the one right answer."""
    import concurrent.futures

    f = nc.compile(_slot_conv, threads=2)
    want = nc.run(nc.trace(_slot_conv, _SLOT_X, _SLOT_W), _SLOT_X, _SLOT_W)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: f(_SLOT_X, _SLOT_W), range(32)))
    for got in results:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _slot_child(queue) -> None:
    queue.put(np.asarray(nc.compile(_slot_conv, threads=2)(_SLOT_X, _SLOT_W)))


def test_slot_convolutions_in_a_child_forked_after_parallel_calls():
    """Forked after the parent ran slot GEMMs in parallel regions, a child runs serially
    (thread 0's workspace, the whole range) and gets the same result."""
    import multiprocessing

    f = nc.compile(_slot_conv, threads=2)
    want = np.asarray(f(_SLOT_X, _SLOT_W))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_slot_child, args=(queue,))
    child.start()
    try:
        got = queue.get(timeout=60)
    except Exception:
        child.kill()
        pytest.fail("the forked child hung or failed in its first compiled call")
    child.join(30)
    assert child.exitcode == 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
