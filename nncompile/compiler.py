"""nc.compile / nc.jit / nc.lower: trace, optimize, lower and build native code.

``compile(fn, backend)`` returns a callable that takes the same arguments as ``fn``
(NumPy arrays or nested containers of them) and returns NumPy arrays in ``fn``'s output
structure. It traces and compiles on the first call for each input signature (tree
structure, static arguments, shapes and dtypes) and keeps the result in memory.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import config, pytree
from .backend import EmitOptions, backend_names, check_threads, get_backend, is_device_array
from .call_fast_path import FastPath
from .call_keys import positional_call, static_key, structure_key
from .dump_files import dump_root, write_dump
from .dynamic_batch import DynamicBatch, batched_leaves, check_spec
from .gc_defer import full_collections_deferred
from .ir.errors import CompileError
from .ir.graph import Graph
from .ir.precision import check_precision
from .ir.precision import matmul_precision as matmul_precision_scope
from .ir.symbolic import SYMBOL, batch_hint
from .lowering import Program, lower_graph
from .passes import optimize
from .tracing import argument_leaves, is_array_leaf, trace

BACKENDS = backend_names()  # ("numpy", "llvm", "cuda"): nncompile/backend.py registers them


def _leaf_type(a: Any) -> tuple:
    if type(a) is np.ndarray or is_device_array(a):
        return (a.shape, a.dtype)
    return (np.shape(a), np.result_type(a))


@dataclass
class Lowered:
    """A traced, optimized and lowered function, not yet turned into native code."""

    graph: Graph  # the optimized graph
    program: Program
    backend: str
    source: str  # the backend's generated code: LLVM IR (llvm), CUDA C (cuda)
    threads: int = 1
    timings: dict[str, float] = field(default_factory=dict)
    artifacts: Any = None  # what the backend's build needs besides the source

    def compile(self, device_outputs: bool = False):
        """Native code for this program (needs the backend's toolchain and device);
        ``device_outputs`` (cuda): calls return DeviceArrays that stay on the device."""
        with full_collections_deferred():
            return get_backend(self.backend).build(self, device_outputs)


def lower_graph_for(
    graph: Graph,
    backend: str = "llvm",
    level: int = 2,
    threads: int | None = None,
    donated_inputs: frozenset[int] = frozenset(),
    kernel_entries: bool = False,
) -> Lowered:
    target = get_backend(backend)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    # compiled backends need level 2's fusion groups; the interpreter runs any level
    opt = optimize(graph, level=max(level, 2) if target.device else level)
    timings["optimize"] = time.perf_counter() - start
    if target.device is None:  # the interpreter: nothing to lower or emit
        return Lowered(opt, None, backend, "", threads or 1, timings)
    start = time.perf_counter()
    program = lower_graph(opt.fusion, target.device, donated_inputs)
    timings["lower"] = time.perf_counter() - start
    start = time.perf_counter()
    emitted = target.emit(program, EmitOptions(threads, kernel_entries))
    timings["codegen"] = time.perf_counter() - start
    lowered = Lowered(
        opt, program, backend, emitted.source, emitted.threads, timings, emitted.artifacts
    )
    if dump_root():  # (the text of a big program takes a while)
        write_dump(opt.name, "kernels.txt", program.text())
        write_dump(opt.name, target.source_file, emitted.source)
    return lowered


def lower(
    fn: Callable[..., Any],
    *examples: Any,
    backend: str = "llvm",
    level: int = 2,
    threads: int | None = None,
    dynamic_batch: DynamicBatch = None,
    matmul_precision: str | None = None,
) -> Lowered:
    """Trace ``fn`` on ``examples`` and lower it; ``.source`` is the generated code.
    ``dynamic_batch`` and ``matmul_precision`` as for ``compile``."""
    batched = batched_leaves(fn, examples, check_spec(dynamic_batch))
    precision = precision_for(backend, matmul_precision)
    with full_collections_deferred(), batch_hint(_first_batch(batched, examples)):
        graph = trace(fn, *examples, batched_leaves=batched)
        with matmul_precision_scope(precision):
            return lower_graph_for(graph, backend, level, threads)


BF16_BACKENDS = ("llvm", "cuda")


def precision_for(backend: str, requested: str | None) -> str:
    """The matmul precision of a compile. Asked for by argument, bf16 is built for the LLVM
    and CUDA backends only: elsewhere a clear error, never float32 products passed off as
    bf16 ones. Without an argument, NNCOMPILE_MATMUL_PRECISION is the default of the
    compiles that can use it; the others stay float32."""
    if requested is None:
        value = check_precision(config.get_enum(config.MATMUL_PRECISION) or "float32")
        return value if backend in BF16_BACKENDS else "float32"
    value = check_precision(requested)
    if value == "bf16" and backend not in BF16_BACKENDS:
        raise NotImplementedError(
            f"matmul_precision='bf16' is built for the llvm (AMX tiles) and cuda (tensor "
            f"cores) backends, not for backend={backend!r}, which computes float32 products"
        )
    return value


def _first_batch(batched: frozenset[int], args: tuple) -> int | None:
    """The leading size of the first batched leaf (the batch size heuristics assume)."""
    if not batched:
        return None
    leaves = pytree.flatten(args, is_array_leaf)[0]
    return int(np.shape(leaves[min(batched)])[0])


DEFAULT_MEMORY_CACHE = config.MEMORY_CACHE.default


def memory_cache_size() -> int:
    """NNCOMPILE_MEMORY_CACHE: compiled signatures each function keeps (least recently
    used ones are dropped, and their native code and arenas freed)."""
    return config.get_int(config.MEMORY_CACHE)


class CompiledFunction:
    def __init__(
        self,
        fn: Callable[..., Any],
        backend: str = "llvm",
        level: int = 2,
        donate_argnums: Sequence[int] = (),
        threads: int | None = None,
        check: bool | None = None,
        device_outputs: bool = False,
        dynamic_batch: DynamicBatch = None,
        matmul_precision: str | None = None,
    ):
        target = get_backend(backend)
        self.dynamic_batch = check_spec(dynamic_batch)
        self.matmul_precision = precision_for(backend, matmul_precision)
        if threads is not None:
            check_threads(threads)
        self.fn = fn
        self.backend = backend
        self.level = level
        self.donate_argnums = tuple(donate_argnums)
        self.threads = threads
        # check: run the reference alongside and compare every materialized buffer
        self.check = _check_env() if check is None else check
        if self.check and target.device and not target.per_kernel:
            raise NotImplementedError(
                f"check=True needs per-kernel entry points, which backend {backend!r} lacks"
            )
        if self.check and self.matmul_precision != "float32":
            if matmul_precision is not None:
                raise NotImplementedError(
                    "check=True compares with the float32 reference; it is not built for "
                    f"matmul_precision={self.matmul_precision!r}"
                )
            self.matmul_precision = "float32"  # the environment's default yields to it
        if device_outputs and not target.device_outputs:
            raise CompileError(
                f"device_outputs=True needs a backend whose results can stay on the device "
                f"(backend='cuda'), not {backend!r}"
            )
        self.device_outputs = device_outputs  # cuda: results stay on the device
        # Signature -> (lowered, executable, graph), least recently used first.
        self._cache: OrderedDict[tuple, tuple[Lowered, Any, Graph]] = OrderedDict()
        self._last: tuple | None = None
        self._fast: FastPath | None = None  # the last signature's calls (call_fast_path.py)
        self._last_batched: tuple[dict, frozenset[int]] | None = None
        self._statics: dict[tuple, list] = {}
        # Compiling is serialized per function (two threads needing one new signature
        # compile it once); calls of compiled signatures never wait for it.
        self._compile_lock = threading.RLock()
        self.compile_count = 0

        functools.update_wrapper(self, fn)

    def compiled_for(self, *args: Any, **kwargs: Any) -> tuple[Lowered, Any, Graph]:
        fn, args, kw = positional_call(self.fn, args, kwargs) if kwargs else (self.fn, args, ())
        arrays, statics, tree = pytree.flatten(args, is_array_leaf)
        return self._compiled(fn, kw, args, arrays, statics, tree)

    def _compiled(self, fn, kw, args, arrays, statics, tree) -> tuple[Lowered, Any, Graph]:
        # Training loops call with the same signature every step: compare with the last
        # call before building the whole key.
        types = tuple(map(_leaf_type, arrays))
        batched: frozenset[int] = frozenset()
        if self.dynamic_batch is not None:  # the batch size is not part of the signature
            batched = self._batched_for(fn, args, tree)
            types = tuple(
                ((SYMBOL, *t[0][1:]), t[1]) if k in batched and t[0] else t
                for k, t in enumerate(types)
            )
        statics_key = (kw, tuple(map(static_key, statics))) if statics or kw else ()
        last = self._last
        if last is not None and last[0] == types and last[1] == statics_key and last[2] == tree:
            return last[3]
        key = (structure_key(tree), statics_key, types)
        entry = self._cache.get(key)
        if entry is None:
            with self._compile_lock:
                entry = self._cache.get(key)
                if entry is None:
                    with full_collections_deferred():
                        entry = self._build(fn, args, batched)
                    self._cache[key] = entry
                    # Statics keyed by identity must outlive their entry (ids are reused).
                    self._statics[key] = statics
                    self._evict()
        else:
            try:
                self._cache.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still usable
                pass
        # (the statics themselves too: an identity-keyed one must not die while its id is
        # the fast path's key)
        self._last = (types, statics_key, tree, entry, statics)
        return entry

    def _batched_for(self, fn, args: tuple, tree: dict) -> frozenset[int]:
        """The batched leaves of this call: fixed by the argument structure, except under
        ``dynamic_batch=True``, where they follow the leading sizes."""
        spec = self.dynamic_batch
        last = self._last_batched
        if spec is not True and last is not None and last[0] == tree:
            return last[1]
        batched = batched_leaves(fn, args, spec)
        if spec is not True:
            self._last_batched = (tree, batched)
        return batched

    def _build(self, fn, args: tuple, batched=frozenset()) -> tuple[Lowered, Any, Graph]:
        graph = trace(fn, *args, batched_leaves=batched)
        self.compile_count += 1
        if get_backend(self.backend).device is None:  # the interpreter runs the graph
            return (None, None, optimize(graph, self.level))
        donated = self._donated_inputs(args)
        checked = self.check
        # speed-only choices on symbolic sizes assume the first call's batch size
        with batch_hint(_first_batch(batched, args)):
            with matmul_precision_scope(self.matmul_precision):
                lowered = lower_graph_for(
                    graph, self.backend, self.level, self.threads, donated, kernel_entries=checked
                )
        executable = lowered.compile(self.device_outputs)
        if checked:
            from .checking import Checker

            executable = Checker(lowered, executable)
        return (lowered, executable, graph)

    def _evict(self) -> None:
        limit = memory_cache_size()
        while len(self._cache) > limit:
            key, _ = self._cache.popitem(last=False)
            self._statics.pop(key, None)

    def _donated_inputs(self, args: tuple) -> frozenset[int]:
        """Flat input numbers of the leaves of the donated arguments."""
        positions = {k % len(args) for k in self.donate_argnums if -len(args) <= k < len(args)}
        return argument_leaves(args, positions)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fast = self._fast
        if fast is not None and not kwargs:
            arrays = fast.leaves(args)
            if arrays is not None:
                return fast.run(arrays)
        fn, args, kw = positional_call(self.fn, args, kwargs) if kwargs else (self.fn, args, ())
        arrays, statics, tree = pytree.flatten(args, is_array_leaf)
        lowered, executable, graph = self._compiled(fn, kw, args, arrays, statics, tree)
        if executable is None:  # the numpy backend: the reference interpreter
            from .run import run

            return run(graph, *args)
        if not kw and self.dynamic_batch is None and FastPath.possible(tree, arrays):
            types = [_leaf_type(a) for a in arrays]
            self._fast = FastPath(tree, types, executable, lowered.graph.out_tree)
        outs = executable([np.asarray(a) if hasattr(a, "_type") else a for a in arrays])
        return pytree.unflatten(lowered.graph.out_tree, outs)


def _check_env() -> bool:
    return config.get_bool(config.CHECK)


def compile(
    fn: Callable[..., Any],
    backend: str = "llvm",
    *,
    level: int = 2,
    donate_argnums: Sequence[int] = (),
    threads: int | None = None,
    check: bool | None = None,
    device_outputs: bool = False,
    dynamic_batch: DynamicBatch = None,
    matmul_precision: str | None = None,
) -> CompiledFunction:
    """Compile ``fn`` for ``backend`` ("numpy" | "llvm" | "cuda"). ``check=True`` (or
    ``NNCOMPILE_CHECK=1``) runs the reference interpreter alongside and raises
    ``CheckError`` naming the first node whose compiled buffer diverges. With
    ``device_outputs`` (cuda) results are DeviceArrays that stay on the GPU; passing them
    back in (donated) keeps a training step's state on the device.

    ``dynamic_batch`` (True, ``{"x": 0, ...}`` by parameter name, or a tuple of argnums;
    see nncompile/dynamic_batch.py) makes the leading axis of those arguments one symbolic
    size ``n``: a single compile then serves every batch size (``compile_count`` stays 1).

    ``matmul_precision="bf16"`` (default ``NNCOMPILE_MATMUL_PRECISION``, else "float32")
    rounds the operands of every matrix product and GEMM-lowered convolution to bfloat16
    and sums the products in float32 (AMX tiles where the CPU has them; see
    docs/mixed_precision.md); inputs, outputs and every other op stay float32."""
    return CompiledFunction(
        fn,
        backend,
        level,
        donate_argnums,
        threads,
        check,
        device_outputs,
        dynamic_batch,
        matmul_precision,
    )


def jit(fn: Callable[..., Any] | None = None, **options: Any):
    """Decorator form of ``compile``: ``@nc.jit`` or ``@nc.jit(backend="llvm")``."""
    if fn is None:
        return lambda f: compile(f, **options)
    return compile(fn, **options)
