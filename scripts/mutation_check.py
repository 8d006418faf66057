"""Test the tests: break each op's reference implementation in turn and check that the
test suite notices.

    python scripts/mutation_check.py [OP ...] [--tests PATH ...]

For every op (default: all with a reference implementation) this runs pytest in a fresh
process with a plugin that wraps REFERENCE[op] so its first output is perturbed (floats
and ints +1, bools negated). An op whose mutation leaves every test passing is reported
as SURVIVED: a gap in the tests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

PLUGIN = textwrap.dedent(
    """
    import os
    import numpy as np
    from nncompile.backends.numpy import reference

    def _perturb(a):
        a = np.asarray(a)
        if a.size == 0:
            return a
        return ~a if a.dtype == bool else a + a.dtype.type(1)

    def pytest_configure(config):
        op = os.environ["NNCOMPILE_MUTATE_OP"]
        original = reference.REFERENCE[op]

        def broken(ins, attrs):
            outs = original(ins, attrs)
            return [_perturb(outs[0])] + list(outs[1:])

        reference.REFERENCE[op] = broken
    """
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ops", nargs="*", help="ops to mutate (default: all)")
    parser.add_argument("--tests", nargs="+", default=["tests"], help="test paths to run")
    args = parser.parse_args()

    from nncompile.backends.numpy import REFERENCE

    ops = args.ops or sorted(REFERENCE)
    survived = []
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "mutate_plugin.py"), "w") as f:
            f.write(PLUGIN)
        env = dict(os.environ, PYTHONPATH=tmp + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for op in ops:
            env["NNCOMPILE_MUTATE_OP"] = op
            start = time.perf_counter()
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-x",
                    "-q",
                    "-p",
                    "mutate_plugin",
                    "-p",
                    "no:cacheprovider",
                    *args.tests,
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            verdict = (
                "caught"
                if r.returncode == 1
                else ("SURVIVED" if r.returncode == 0 else f"error rc={r.returncode}")
            )
            print(f"{op:<16} {verdict:<10} {time.perf_counter() - start:5.1f}s", flush=True)
            if r.returncode != 1:
                survived.append(op)
    print(
        f"\n{len(ops) - len(survived)}/{len(ops)} mutations caught"
        + (f"; not caught: {', '.join(survived)}" if survived else "")
    )
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
