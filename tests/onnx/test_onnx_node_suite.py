"""CI: ONNX's backend node suite through the importer. Every case runs eagerly; the cases
that pass eagerly are then compiled with LLVM in a deterministic order spread over the
ops, within a time budget. No case may give a wrong answer or fail with anything other
than a clear UnsupportedError. The per-op report goes to the terminal (even without -s)
and to onnx_node_report.txt under pytest's base temporary folder."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("onnx")

from nncompile.onnx import node_suite  # noqa: E402

COMPILE_BUDGET_S = 75.0  # the compiled part; the whole test stays under ~2 minutes


def test_node_suite_has_no_wrong_answers_or_errors(tmp_path_factory, capsys):
    start = time.perf_counter()
    cases = node_suite.load_cases()
    eager = [node_suite.run_case(c) for c in cases]
    eager_s = time.perf_counter() - start
    passing = [(c, r) for c, r in zip(cases, eager, strict=True) if r.status == "pass"]
    order = node_suite.spread([c for c, _ in passing], [r for _, r in passing])
    compiled, left_out = node_suite.run_compiled(order, COMPILE_BUDGET_S)
    compiled_s = time.perf_counter() - start - eager_s
    mean = compiled_s / max(len(compiled), 1)
    text = "\n".join(
        [
            f"ONNX node suite, eager ({eager_s:.1f} s): " + node_suite.report(eager),
            "",
            f"compiled (LLVM) {len(compiled)} of the {len(passing)} eagerly passing cases "
            f"({compiled_s:.1f} s, {mean:.2f} s per case; {left_out} left out by the "
            f"{COMPILE_BUDGET_S:.0f} s budget): " + node_suite.report(compiled),
            "",
            "slowest compiled cases:",
            node_suite.slowest(compiled, 5),
        ]
    )
    path = tmp_path_factory.getbasetemp() / "onnx_node_report.txt"
    path.write_text(text + "\n")
    with capsys.disabled():  # CI runs without -s: the report is shown anyway
        print(f"\n{text}\n(report written to {path})")
    bad = [r for r in eager + compiled if r.status in node_suite.FAILURES]
    assert not bad, "\n".join(f"{r.status} {r.case}: {r.detail[:300]}" for r in bad)
    assert len(cases) >= 1000  # the suite was found (onnx ships ~1900 node cases)


def test_compare_requires_equal_shape_dtype_and_values():
    want = np.array([1.0, np.nan], np.float32)
    assert node_suite.compare(want.copy(), want) == ""  # NaN where ONNX has NaN is equal
    assert "dtype float64 != float32" in node_suite.compare(want.astype(np.float64), want)
    assert "shape (1,) != (2,)" in node_suite.compare(want[:1], want)
    assert "value at (0,)" in node_suite.compare(np.array([1.1, np.nan], np.float32), want)
    assert node_suite.compare(np.array(3, np.int64), np.int64(3)) == ""  # 0-d results
    assert node_suite.compare(np.array([1, 2]), np.array([1, 3])) == "values differ"


def test_spread_takes_each_op_in_turn():
    results = [node_suite.Result(f"c{i}", op, "pass") for i, op in enumerate("aaabcc")]
    order = node_suite.spread(list(range(6)), results)
    assert order == [0, 3, 4, 1, 5, 2]
