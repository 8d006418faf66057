"""ONNX's backend node suite (onnx.backend.test, one small model per case) through the
importer, eagerly and compiled: each case passes, is unsupported (UnsupportedError), gives
a wrong answer, or fails with another error. Prints totals and a per-op table (the code
is nncompile/onnx/node_suite.py; tests/onnx/test_onnx_node_suite.py runs it in CI).

    python benchmarks/onnx_node_suite.py                      # eager
    python benchmarks/onnx_node_suite.py --compiled           # LLVM-compiled too
    python benchmarks/onnx_node_suite.py -k conv -v           # cases whose name has "conv"
"""

from __future__ import annotations

import argparse
import sys
import time

from nncompile.onnx.node_suite import report, run_suite, slowest


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-k", default="", help="only cases whose name matches this regex")
    p.add_argument("--compiled", action="store_true", help="also compile each case (LLVM)")
    p.add_argument("-v", "--verbose", action="store_true", help="list unsupported cases too")
    p.add_argument("--slowest", type=int, default=0, help="list the N slowest cases")
    args = p.parse_args()
    start = time.perf_counter()
    results = run_suite(args.k)
    print("eager:", report(results, args.verbose))
    if args.slowest:
        print(slowest(results, args.slowest))
    if args.compiled:
        results = run_suite(args.k, compiled=True)
        print("compiled:", report(results, args.verbose))
        if args.slowest:
            print(slowest(results, args.slowest))
    print(f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
