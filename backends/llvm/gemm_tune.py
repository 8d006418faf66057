"""Tuning the packed GEMM on the machine it runs on, once, cached on disk.

The analytical blocking (gemm_params.model_params) is the starting point; its neighbours
(half and double KC, half NC and MC, and on wide registers a 12 x 32 tile) are timed on
three products - one spanning several blocks, two training shapes - on all the cores this
process may use, interleaved over a few rounds so that a burst of noise does not pick the
winner. Each micro-tile is compiled once (the blocking is a global of the compiled
module); the score is the mean time relative to the fastest candidate on each shape.
About 0.5 s with the micro-tiles' objects in the disk cache, 1.7 s without. The winner is
checked against NumPy and stored as JSON in the compile cache folder, keyed by the CPU
(model, LLVM name and features), the thread count and the nncompile and llvmlite
versions; later processes read it, and processes started together tune once (a lock).

``NNCOMPILE_GEMM_TUNE``: ``auto`` (default) tunes at the first GEMM of a process when no
stored result exists and the cache folder is on (with it off, tuning would repeat in every
process, so the model is used); ``model`` uses the model and never times anything;
``force`` tunes again and overwrites the stored result. ``nncompile tune`` does the same
as ``force`` and prints what it chose.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import llvmlite
import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np

from ... import config
from ...disk_cache import cache_dir
from ...fileio import atomic_write
from ...ir.errors import CompileError
from .gemm_packed import (
    BLOCKING_FIELDS,
    BLOCKING_GLOBAL,
    WORKSPACE_BYTES,
    build_gemm_functions,
    runtime_functions,
)
from .gemm_params import GemmParams, MicroTile, model_params, within_workspace
from .gemm_team_split import small_b_bytes
from .jit import NativeCode, compile_ir
from .machine import Machine, this_machine
from .parallel import MAX_THREADS, ParallelRuntime
from .threads import note_parallel_run, serial_after_fork

# (m, k, n): one product spanning several row blocks and rank updates, two training shapes
# (a layer's forward, a convolution's weight gradient: few rows and columns, a long k)
TUNING_SHAPES = ((1024, 512, 1024), (256, 784, 256), (64, 5408, 64))
ROUNDS = 3  # interleaved rounds over all candidates; each keeps its best round
CALLS = 3  # calls of each shape per round


@dataclass
class Tuning:
    params: GemmParams
    machine: Machine
    threads: int
    source: str  # "model" | "tuned" | "stored"
    seconds: float = 0.0  # what tuning took (0 when not tuned in this process)
    # candidate -> its mean time over TUNING_SHAPES relative to the fastest, when tuned
    timings: dict[str, float] = field(default_factory=dict)
    date: str = ""
    native: NativeCode | None = None  # the winner's compiled GEMMs, when tuned here
    stored_at: str = ""  # the file holding it, when stored

    def describe(self) -> str:
        p = self.params
        lines = [
            f"machine: {self.machine.describe()}",
            f"GEMM blocking ({self.source}, {self.threads} threads): micro-tile "
            f"{p.mr} x {p.nr} floats ({p.mr} x {p.vectors} vectors), "
            f"KC {p.kc}, MC {p.mc}, NC {p.nc}; row splits count a B of up to "
            f"{small_b_bytes(self.machine) // 1024} KiB (half of L2) as cached",
        ]
        if self.timings:
            lines.append("  candidates, mean time relative to the fastest on each tuning shape:")
            for name, t in sorted(self.timings.items(), key=lambda kv: kv[1]):
                lines.append(f"  {name}: {t:.3f}")
        if self.seconds:
            lines.append(f"tuning took {self.seconds:.2f} s")
        if self.date:
            lines.append(f"tuned on {self.date}")
        return "\n".join(lines)


def _name(p: GemmParams) -> str:
    return f"{p.mr}x{p.nr} kc{p.kc} mc{p.mc} nc{p.nc}"


def candidates(machine: Machine) -> list[GemmParams]:
    """The model's blocking and its neighbours: half and double KC, half NC, half MC; on
    wide registers also a tile twice as tall with half the vectors per row, at the model's
    KC and at the KC whose B micro-panel fits half of L1."""
    base = model_params(machine)
    mr, vectors, lanes = base.mr, base.vectors, base.lanes
    shapes = [(mr, vectors, kc, base.mc, base.nc) for kc in (base.kc, base.kc // 2)]
    shapes += [(mr, vectors, 2 * base.kc, base.mc // 2, base.nc // 2)]
    shapes += [(mr, vectors, base.kc, base.mc, base.nc // 2)]
    shapes += [(mr, vectors, base.kc, base.mc // 2, base.nc)]
    if vectors >= 4:  # (8 x 3 measured 1.5x slower than either)
        tall, half = 2 * mr, vectors // 2
        fits_l1 = max(16, machine.l1d // 2 // (half * lanes * 4) // 16 * 16)
        shapes += [(tall, half, kc, base.mc, base.nc) for kc in sorted({base.kc, fits_l1})]
    unique: list[GemmParams] = []
    for tile_rows, tile_vectors, kc, mc, nc in shapes:
        nr = tile_vectors * lanes
        mc, nc = max(tile_rows, mc // tile_rows * tile_rows), max(nr, nc // nr * nr)
        try:
            p = within_workspace(tile_rows, tile_vectors, lanes, kc, mc, nc)
        except ValueError:
            continue
        if p not in unique:
            unique.append(p)
    return unique


_GEMM_CTYPE = ctypes.CFUNCTYPE(
    None, *([ctypes.c_void_p] * 3 + [ctypes.c_int64] * 10 + [ctypes.c_void_p, ctypes.c_int64])
)


def compile_gemm(tile: MicroTile) -> NativeCode:
    """The runtime GEMMs (gemm_packed.runtime_functions) compiled with the micro-tile
    ``tile``: about 0.6 s, or a disk cache hit. Set its blocking with ``set_blocking``
    before the first call."""
    module = ir.Module(name="nc_runtime")
    module.triple = llvm.get_process_triple()
    build_gemm_functions(module, ParallelRuntime(module, MAX_THREADS), tile)
    return compile_ir(str(module), entry=next(iter(runtime_functions())))


def set_blocking(native: NativeCode, params: GemmParams) -> None:
    """Make the GEMMs of ``native`` (compiled for ``params.tile``) use ``params``'s blocking,
    and this machine's small-B size for row splits (gemm_team_split.small_b_bytes). Only
    while no call of them runs: the runtime sets it once, before registering them."""
    address = native.engine.get_global_value_address(BLOCKING_GLOBAL)
    values = [params.kc, params.mc, params.nc, small_b_bytes(this_machine())]
    (ctypes.c_int64 * BLOCKING_FIELDS).from_address(address)[:] = values


class _Timer:
    """Calls one compiled micro-tile's float32 GEMM on the tuning shapes."""

    def __init__(self, native: NativeCode, threads: int, workspace: np.ndarray, operands):
        self.native = native
        self.fn = _GEMM_CTYPE(native.engine.get_function_address("nc_gemm_f32"))
        self.threads, self.workspace, self.operands = threads, workspace, operands

    def round(self, params: GemmParams) -> list[float]:
        """The best of CALLS calls of each shape, in seconds."""
        set_blocking(self.native, params)
        times = []
        for a, b, c in self.operands:
            (m, k), n = a.shape, b.shape[1]
            args = (a.ctypes.data, b.ctypes.data, c.ctypes.data, m, n, k, k, 1, n, 1, n, 1, 0)
            samples = []
            for _ in range(CALLS):
                t = time.perf_counter()
                self.fn(*args, self.workspace.ctypes.data, self.threads)
                samples.append(time.perf_counter() - t)
            times.append(min(samples))
        return times


def tune(machine: Machine, threads: int) -> Tuning:
    """Time the candidates on this machine and return the fastest (its results checked
    against NumPy, so a blocking that computes wrong results can never win). The winner's
    compiled code comes with it (``Tuning.native``)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    operands = []
    for m, k, n in TUNING_SHAPES:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        operands.append((a, b, np.empty((m, n), np.float32)))
    from .executable import aligned_empty  # (executable imports the runtime, which imports this)

    workspace = aligned_empty(WORKSPACE_BYTES * threads)
    options = {_name(p): p for p in candidates(machine)}
    timers: dict[MicroTile, _Timer] = {}
    for p in options.values():
        if p.tile not in timers:
            timers[p.tile] = _Timer(compile_gemm(p.tile), threads, workspace, operands)
    times = {name: [float("inf")] * len(TUNING_SHAPES) for name in options}
    for _ in range(ROUNDS):
        for name, p in options.items():
            measured = timers[p.tile].round(p)
            times[name] = [min(x, y) for x, y in zip(times[name], measured, strict=True)]
    # the score: each shape's time relative to its best candidate's, summed (so the large
    # product does not outweigh the training shapes)
    fastest = [min(t[i] for t in times.values()) for i in range(len(TUNING_SHAPES))]
    score = {
        name: sum(x / f for x, f in zip(t, fastest, strict=True)) / len(fastest)
        for name, t in times.items()
    }
    winner = options[min(score, key=score.get)]
    timers[winner.tile].round(winner)
    for a, b, c in operands:
        want = a.astype(np.float64) @ b.astype(np.float64)
        if not np.allclose(c, want, rtol=1e-3, atol=1e-3 * a.shape[1] ** 0.5):
            raise CompileError(f"the GEMM blocking {winner} computed wrong results (a bug)")
    return Tuning(
        winner,
        machine,
        threads,
        "tuned",
        seconds=time.perf_counter() - t0,
        timings=score,
        date=datetime.date.today().isoformat(),
        native=timers[winner.tile].native,
    )


def _store_path(machine: Machine, threads: int) -> str | None:
    folder = cache_dir()
    if folder is None:
        return None
    from ... import __version__

    h = hashlib.sha256()
    for part in (
        machine.cpu_model,
        machine.llvm_cpu,
        llvm.get_host_cpu_features().flatten(),
        str(threads),
        __version__,
        llvmlite.__version__,
    ):
        h.update(part.encode() + b"\0")
    return os.path.join(folder, f"gemm-tuning-{h.hexdigest()[:24]}.json")


def _load(path: str, machine: Machine, threads: int) -> Tuning | None:
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        params = GemmParams.from_dict(stored["params"])
        # only a blocking this version could have picked here: a file edited by hand (or
        # damaged into other valid numbers) must not compile a 1000-row micro-kernel
        if params not in candidates(machine):
            return None
        timings = {str(k): float(v) for k, v in stored.get("timings", {}).items()}
        return Tuning(params, machine, threads, "stored", timings=timings, date=stored["date"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or from another version: tune again


def _store(path: str, tuning: Tuning) -> bool:
    record = {
        "params": asdict(tuning.params),
        "machine": asdict(tuning.machine),
        "threads": tuning.threads,
        "timings": tuning.timings,
        "seconds": tuning.seconds,
        "date": tuning.date,
    }
    try:
        atomic_write(path, json.dumps(record, indent=1, sort_keys=True))
    except OSError:
        return False  # a read-only or full cache folder only costs tuning again next time
    return True


def gemm_tuning(mode: str | None = None) -> Tuning:
    """The blocking this process uses, per ``NNCOMPILE_GEMM_TUNE`` (or ``mode``)."""
    from ...backend import default_threads

    mode = mode or config.get_enum(config.GEMM_TUNE)
    machine, threads = this_machine(), min(default_threads(), MAX_THREADS)
    if serial_after_fork():  # no thread team can run here: use what is stored, or the model
        mode = "auto" if mode == "force" else mode
        threads = 1
    if mode == "model":
        return Tuning(model_params(machine), machine, threads, "model")
    path = _store_path(machine, threads)
    if path is None:
        if mode != "force":
            return Tuning(model_params(machine), machine, threads, "model")
        return _tune_now(machine, threads, None)
    if mode != "force":
        stored = _stored(path, machine, threads)
        if stored is not None:
            return stored
    # One process tunes at a time: a second one started meanwhile waits for the first's
    # result instead of timing on the same cores (each would measure the other).
    with _tuning_lock(path + ".lock"):
        if mode != "force":
            stored = _stored(path, machine, threads)
            if stored is not None:
                return stored
        return _tune_now(machine, threads, path)


def _stored(path: str, machine: Machine, threads: int) -> Tuning | None:
    stored = _load(path, machine, threads)
    if stored is not None:
        stored.stored_at = path
    return stored


def _tune_now(machine: Machine, threads: int, path: str | None) -> Tuning:
    if threads > 1:
        note_parallel_run()  # the candidates run on a libgomp team
    tuning = tune(machine, threads)
    if path is not None and _store(path, tuning):
        tuning.stored_at = path
    return tuning


LOCK_WAIT_SECONDS = 60.0  # then tune anyway (a stuck or very slow holder)


@contextlib.contextmanager
def _tuning_lock(path: str) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (flock: released by the OS if the holder
    dies), waited for at most LOCK_WAIT_SECONDS; without a usable lock file, no lock."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # (closing releases the lock)
