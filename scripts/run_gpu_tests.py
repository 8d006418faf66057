"""Run tests/gpu on a machine that may not have pytest (the GPU machines come with numpy,
llvmlite, networkx, torch and the CUDA Python packages, not necessarily pytest). With
pytest installed this just calls it; without, a minimal stand-in provides what the test
modules use (mark.parametrize / fixture as plain decorators, raises, approx, skip) and the
tests run one by one.

    python scripts/run_gpu_tests.py [--without-pytest]

(``NNCOMPILE_CUDA_EMULATOR=1`` runs them on the CPU emulation instead of a GPU.)
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import re
import sys
import traceback
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stand_in() -> types.ModuleType:
    shim = types.ModuleType("pytest")

    class _Mark:
        def __getattr__(self, name):
            def mark(*args, **kwargs):
                if len(args) == 1 and callable(args[0]) and not kwargs:
                    return args[0]
                if name == "parametrize":  # remembered: main() runs every case

                    def remember(fn):
                        fn.cases = [(args[0], v) for v in args[1]] + getattr(fn, "cases", [])
                        return fn

                    return remember
                return lambda fn: fn

            return mark

    @contextlib.contextmanager
    def raises(kind, match=None):
        try:
            yield
        except kind as e:
            if match is not None and not re.search(match, str(e)):
                raise AssertionError(f"{e!r} does not match {match!r}") from e
            return
        raise AssertionError(f"did not raise {kind}")

    def approx(value, rel=1e-6, abs=1e-12):
        class Approx:
            def __eq__(self, other):
                return math.isclose(other, value, rel_tol=rel, abs_tol=abs)

        return Approx()

    shim.mark = _Mark()
    shim.fixture = shim.mark.fixture
    shim.raises = raises
    shim.approx = approx
    shim.skip = lambda reason="": (_ for _ in ()).throw(RuntimeError(f"skip: {reason}"))
    return shim


def main() -> int:
    try:
        import pytest
    except ImportError:
        pytest = None
    if pytest is not None and "--without-pytest" not in sys.argv:
        return pytest.main(
            [
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                "--import-mode=importlib",
                "-o",
                "addopts=",
                os.path.join(ROOT, "tests", "gpu"),
            ]
        )
    sys.modules["pytest"] = _stand_in()
    sys.path.insert(0, ROOT)
    from nncompile.backends.cuda import emulator, toolchain

    missing = None if toolchain.available_compilers() else "neither NVRTC nor nvcc is here"
    missing = missing or toolchain.missing_for_running()
    if missing and not emulator.emulating():
        print(f"no usable GPU: {missing}; nothing to run")
        return 0
    tests = importlib.import_module("tests.gpu.test_gpu_backend")
    runs = []
    for name, fn in vars(tests).items():
        if not name.startswith("test_") or not callable(fn):
            continue
        for arg, value in getattr(fn, "cases", [(None, None)]):
            if arg is None:
                runs.append((name, fn))
            else:
                runs.append((f"{name}[{value}]", lambda fn=fn, a=arg, v=value: fn(**{a: v})))
    failed = 0
    for name, fn in runs:
        try:
            fn()
            print(f"PASS {name}")
        except Exception:
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()[-2000:]}")
    print(f"{len(runs) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
