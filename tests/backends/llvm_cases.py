"""The registry of LLVM op cases (test_llvm_ops.py and llvm_cases_contractions.py add to
it; tests/gpu runs the same cases on the CUDA backend). A case: make(param) -> (fn,
args, tol), registered under "name-param"."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

CASES: dict[str, Callable[[], tuple]] = {}


def case(name: str, *params):
    def deco(make):
        for p in params or (None,):
            key = name if p is None else f"{name}-{p}"
            CASES[key] = partial(make, p) if p is not None else make
        return make

    return deco
