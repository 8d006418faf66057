"""`nncompile run model.onnx` and `nncompile bench model.onnx --vs onnxruntime`."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from nncompile.cli import main  # noqa: E402

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def write_model(path, batch_dim="N", width=4):
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["y"]),
            helper.make_node("Relu", ["y"], ["r"]),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, width]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [3]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, None),
        ],
        [numpy_helper.from_array(W, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def one_line_error(capsys, code, expected):
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err, err


@pytest.fixture
def files(tmp_path):
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    b = np.array([0.5, -10.0, 0.0], np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "b.npy", b)
    return (
        write_model(tmp_path / "m.onnx"),
        str(tmp_path / "x.npy"),
        str(tmp_path / "b.npy"),
        x @ W + b,
    )


@pytest.mark.parametrize("backend", ["eager", "llvm"])
def test_run_writes_the_outputs_to_an_npz(files, tmp_path, capsys, backend):
    model, x, b, want = files
    out = tmp_path / "out.npz"
    argv = ["run", model, "--input", x, "--input", b, "--output", str(out), "--backend", backend]
    assert main(argv) == 0
    assert "wrote 2 outputs" in capsys.readouterr().out
    with np.load(out) as got:
        assert sorted(got.files) == ["r", "y"]
        np.testing.assert_allclose(got["y"], want, rtol=1e-6)
        np.testing.assert_allclose(got["r"], np.maximum(want, 0), rtol=1e-6)


def test_run_by_name_prints_the_outputs(files, capsys):
    model, x, b, want = files
    assert main(["run", model, "--input", f"b={b}", "--input", f"x={x}"]) == 0
    out = capsys.readouterr().out
    assert "y: float32 (2, 3)" in out and "r: float32 (2, 3)" in out
    assert f"{want[0, 0]:.6f}".rstrip("0") in out


def test_run_errors_are_one_line(files, tmp_path, capsys):
    model, x, b, _ = files
    one_line_error(capsys, main(["run", model, "--input", x]), "missing model inputs ['b']")
    one_line_error(capsys, main(["run", model, "--input", b, "--input", x]), "model input 'x'")
    missing = tmp_path / "nope.npy"
    one_line_error(capsys, main(["run", model, "--input", str(missing)]), "No such file")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    one_line_error(capsys, main(["run", model, "--input", str(junk)]), "not a readable .npy")
    one_line_error(capsys, main(["run", str(tmp_path / "x.npy")]), "not a readable ONNX model")
    one_line_error(
        capsys, main(["run", model, "--input", f"x={x}", "--input", b]), "positional inputs"
    )
    with pytest.raises(SystemExit) as usage:  # argparse's usage errors: also one line
        main(["run", model, "--backend", "tpu"])
    one_line_error(capsys, usage.value.code, "invalid choice")


def test_bench_against_onnxruntime(files, capsys):
    pytest.importorskip("onnxruntime")
    model, *_ = files
    argv = ["bench", model, "--vs", "onnxruntime", "--batch", "5", "--steps", "5"]
    assert main(argv + ["--budget", "2"]) == 0
    out = capsys.readouterr().out
    assert "x float32 (5, 4), b float32 (3,); batch 5" in out
    rows = {line.split()[0] + " " + line.split()[1]: line.split() for line in out.splitlines()}
    for name in ("nncompile llvm", "onnxruntime cpu"):
        median_ms, items_per_s = float(rows[name][2]), float(rows[name][4])
        # items/s is batch / median (both printed to 4 significant digits)
        assert median_ms > 0 and items_per_s == pytest.approx(5e3 / median_ms, rel=0.002)
    diff = float(out.split("largest difference between the outputs:")[1])
    assert diff < 1e-5


def test_bench_errors(files, tmp_path, capsys):
    model, *_ = files
    one_line_error(capsys, main(["bench", model, "--vs", "torch"]), "--vs onnxruntime")
    one_line_error(capsys, main(["bench", model, "mlp"]), "one .onnx file")
    huge = write_model(tmp_path / "huge.onnx", batch_dim=10**12)
    one_line_error(capsys, main(["bench", huge]), "too large to benchmark")
