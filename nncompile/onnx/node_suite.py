"""ONNX's backend node suite (onnx.backend.test, one small model per case) through the
importer, eagerly or compiled: each case passes, is unsupported (UnsupportedError), gives
a wrong answer, or fails with another error. Used by benchmarks/onnx_node_suite.py and
the CI test tests/onnx/test_onnx_node_suite.py."""

from __future__ import annotations

import collections
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

RTOL, ATOL = 1e-4, 1e-6
# Cases whose expected data ONNX wrote out rounded: compared at the rounding's tolerance.
ROUNDED_EXPECTATIONS = {
    # y = [[[[0.1511]], ...]] in onnx/backend/test/case/node/averagepool.py; the exact mean
    # (0.8580 + 0.0786 + 0.2692 + 0.1537) / 9 = 0.15105554, as ONNX's reference computes
    "test_averagepool_2d_ceil_last_window_starts_on_pad": 1e-3,
    # Y_bicubic = [[[[-0.1406, 0.3828, ...]]]] in onnx/backend/test/case/node/gridsample.py;
    # ONNX's reference computes -0.140625 (and 0.3828125, ...)
    "test_gridsample_bicubic": 1e-3,
    # Y = [[[[0.4664, 0.4466, ...]]]] (and 0.2512, 0.4002, ...) in
    # onnx/backend/test/case/node/roialign.py: ONNX's reference differs by up to 8.4e-5
    "test_roialign_aligned_false": 1e-3,
    "test_roialign_aligned_true": 1e-3,
}
STATUSES = ("pass", "unsupported", "wrong", "error")
FAILURES = ("wrong", "error")


@dataclass
class Result:
    case: str
    op: str
    status: str
    detail: str = ""
    seconds: float = 0.0  # loading (and compiling) plus running every data set


def op_of(case: Any) -> str:
    types = [n.op_type for n in case.model.graph.node]
    return types[-1] if types else "?"


def compare(got: Any, want: np.ndarray, rtol: float = RTOL) -> str:
    """'' when equal enough, else what differs."""
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    want = np.asarray(want) if isinstance(want, np.generic) else want  # 0-d results
    if not isinstance(want, np.ndarray):
        return f"expected a {type(want).__name__}"
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind in "fc":
        close = np.isclose(got, want, rtol=rtol, atol=ATOL, equal_nan=True)
        if not close.all():
            i = tuple(int(k) for k in np.argwhere(~close)[0])
            return f"value at {i}: {got[i]} != {want[i]}"
        return ""
    return "" if np.array_equal(got, want) else "values differ"


def run_case(case: Any, compiled: bool = False) -> Result:
    start = time.perf_counter()
    result = _run_case(case, compiled)
    result.seconds = time.perf_counter() - start
    return result


def _run_case(case: Any, compiled: bool) -> Result:
    import nncompile as nc

    op = op_of(case)
    try:
        f = nc.onnx.load(case.model)
        fn = nc.compile(f, backend="llvm") if compiled else f
        for inputs, outputs in case.data_sets:
            inputs, outputs = _arrays(inputs), _arrays(outputs)
            if compiled:  # sizes given as inputs are static: Python data, in the compile key
                inputs = [
                    v.tolist() if name in f.size_inputs else v
                    for name, v in zip(f.input_names, inputs, strict=False)
                ]
            if compiled:  # nc.compile traces the container dtypes of narrow integer types
                inputs = list(nc.onnx.to_containers(*inputs))
            got = _onnx_dtypes(fn(*inputs), f)
            if len(got) != len(outputs):
                return Result(case.name, op, "wrong", f"{len(got)} outputs != {len(outputs)}")
            for k, (g, w) in enumerate(zip(got, outputs, strict=True)):
                problem = compare(g, w, ROUNDED_EXPECTATIONS.get(case.name, RTOL))
                if problem:
                    return Result(case.name, op, "wrong", f"output {k}: {problem}")
        return Result(case.name, op, "pass")
    except nc.onnx.UnsupportedError as e:
        return Result(case.name, op, "unsupported", str(e))
    except Exception as e:  # noqa: BLE001  (every other failure is reported, not raised)
        return Result(case.name, op, "error", f"{type(e).__name__}: {e}")


def _onnx_dtypes(got: Any, f: Any) -> tuple:
    """The outputs, those of a narrow integer type (held in int32 or int64) cast back to
    it; every other dtype is compared as it came."""
    import nncompile as nc

    got = got if isinstance(got, tuple) else (got,)
    if len(got) != len(f.output_dtypes):
        return got
    return nc.onnx.to_onnx_dtypes(got, f)


def _arrays(values: list[Any]) -> list[Any]:
    """The loader leaves some cases' data (exotic dtypes) as TensorProtos."""
    from onnx import TensorProto, numpy_helper

    return [numpy_helper.to_array(v) if isinstance(v, TensorProto) else v for v in values]


def load_cases(pattern: str = "") -> list[Any]:
    """The suite's cases (sorted by name) whose name matches the regex ``pattern``."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loader computes a few cases with inf/nan
        cases = load_model_tests(kind="node")
    rx = re.compile(pattern) if pattern else None
    return sorted((c for c in cases if rx is None or rx.search(c.name)), key=lambda c: c.name)


def run_suite(pattern: str = "", compiled: bool = False) -> list[Result]:
    return [run_case(c, compiled) for c in load_cases(pattern)]


def spread(cases: list[Any], results: list[Result]) -> list[Any]:
    """``cases`` reordered round-robin over their ops (each op's first case, then each
    op's second, ...): a deterministic order in which any prefix covers many ops."""
    by_op: dict[str, list[Any]] = collections.defaultdict(list)
    for case, r in zip(cases, results, strict=True):
        by_op[r.op].append(case)
    order, depth = [], 0
    while len(order) < len(cases):
        order += [by_op[op][depth] for op in sorted(by_op) if depth < len(by_op[op])]
        depth += 1
    return order


def run_compiled(cases: list[Any], budget_s: float) -> tuple[list[Result], int]:
    """Compile and run ``cases`` in order until ``budget_s`` seconds are spent:
    (results, how many cases were left out)."""
    results: list[Result] = []
    deadline = time.perf_counter() + budget_s
    for case in cases:
        if time.perf_counter() > deadline:
            break
        results.append(run_case(case, compiled=True))
    return results, len(cases) - len(results)


def report(results: list[Result], verbose: bool = False) -> str:
    totals = collections.Counter(r.status for r in results)
    lines = [
        f"{len(results)} cases: " + ", ".join(f"{totals[s]} {s}" for s in STATUSES),
    ]
    by_op: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in results:
        by_op[r.op][r.status] += 1
    lines.append(f"{'op':<28}" + "".join(f"{s:>12}" for s in STATUSES))
    for op in sorted(by_op):
        lines.append(f"{op:<28}" + "".join(f"{by_op[op][s]:>12}" for s in STATUSES))
    shown = ("unsupported",) + FAILURES if verbose else FAILURES
    for r in results:
        if r.status in shown:
            lines.append(f"{r.status:<12} {r.case}: {r.detail[:200]}")
    return "\n".join(lines)


def slowest(results: list[Result], n: int = 10) -> str:
    top = sorted(results, key=lambda r: -r.seconds)[:n]
    return "\n".join(f"{r.seconds:8.2f} s  {r.case} ({r.status})" for r in top)
