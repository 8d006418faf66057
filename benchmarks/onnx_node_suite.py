"""ONNX's backend node suite (onnx.backend.test, one small model per case) through the
importer, eagerly and compiled: each case passes, is unsupported (UnsupportedError), gives
a wrong answer, or fails with another error. Prints totals and a per-op table.

    python benchmarks/onnx_node_suite.py                      # eager
    python benchmarks/onnx_node_suite.py --compiled           # LLVM-compiled too
    python benchmarks/onnx_node_suite.py -k conv -v           # cases whose name has "conv"
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

RTOL, ATOL = 1e-4, 1e-6
STATUSES = ("pass", "unsupported", "wrong", "error")


@dataclass
class Result:
    case: str
    op: str
    status: str
    detail: str = ""


def op_of(case: Any) -> str:
    types = [n.op_type for n in case.model.graph.node]
    return types[-1] if types else "?"


def compare(got: Any, want: np.ndarray) -> str:
    """'' when equal enough, else what differs."""
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    if not isinstance(want, np.ndarray):
        return f"expected a {type(want).__name__}"
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind in "fc":
        close = np.isclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True)
        if not close.all():
            i = np.argwhere(~close)[0]
            return f"value at {tuple(i)}: {got[tuple(i)]} != {want[tuple(i)]}"
        return ""
    return "" if np.array_equal(got, want) else "values differ"


def run_case(case: Any, compiled: bool) -> Result:
    import nncompile as nc

    op = op_of(case)
    try:
        f = nc.onnx.load(case.model)
        fn = nc.compile(f, backend="llvm") if compiled else f
        for inputs, outputs in case.data_sets:
            got = fn(*inputs)
            got = got if isinstance(got, tuple) else (got,)
            if len(got) != len(outputs):
                return Result(case.name, op, "wrong", f"{len(got)} outputs != {len(outputs)}")
            for k, (g, w) in enumerate(zip(got, outputs, strict=True)):
                problem = compare(g, w)
                if problem:
                    return Result(case.name, op, "wrong", f"output {k}: {problem}")
        return Result(case.name, op, "pass")
    except nc.onnx.UnsupportedError as e:
        return Result(case.name, op, "unsupported", str(e))
    except Exception as e:  # noqa: BLE001  (every other failure is reported, not raised)
        return Result(case.name, op, "error", f"{type(e).__name__}: {e}")


def run_suite(pattern: str = "", compiled: bool = False) -> list[Result]:
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loader computes a few cases with inf/nan
        cases = load_model_tests(kind="node")
    rx = re.compile(pattern) if pattern else None
    return [run_case(c, compiled) for c in cases if rx is None or rx.search(c.name)]


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
    bad = [
        r
        for r in results
        if r.status in (("unsupported", "wrong", "error") if verbose else ("wrong", "error"))
    ]
    for r in bad:
        lines.append(f"{r.status:<12} {r.case}: {r.detail[:200]}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-k", default="", help="only cases whose name matches this regex")
    p.add_argument("--compiled", action="store_true", help="also compile each case (LLVM)")
    p.add_argument("-v", "--verbose", action="store_true", help="list unsupported cases too")
    args = p.parse_args()
    start = time.perf_counter()
    results = run_suite(args.k)
    print("eager:", report(results, args.verbose))
    if args.compiled:
        results = run_suite(args.k, compiled=True)
        print("compiled:", report(results, args.verbose))
    print(f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
