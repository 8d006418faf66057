"""`nncompile bench`, `viz` and `dump` on tiny workloads and on user targets."""

import json
import shutil
import textwrap

import pytest

from nncompile import bench, workloads
from nncompile.cli import main
from nncompile.errors import ConfigError

MODES = {"eager", "llvm", "cuda", "torch", "torch.compile"}


def check_rows(rows, workload, modes):
    assert {r["mode"] for r in rows if r["workload"] == workload} == modes
    for r in rows:
        if r["workload"] != workload:
            continue
        if r["status"] == "ok":
            assert r["median_ms"] > 0 and r["p25_ms"] <= r["median_ms"] <= r["p75_ms"]
            assert r["throughput"] > 0 and r["steps"] >= 3
            if r["mode"] != "eager":
                assert r["speedup_vs_eager"] > 0 and r["compile_s"] >= 0
            if r["mode"] in ("eager", "llvm"):
                assert r["peak_mb"] > 0
        else:
            assert r["status"].startswith("unavailable: ")
    by_mode = {r["mode"]: r for r in rows if r["workload"] == workload}
    assert by_mode["eager"]["speedup_vs_eager"] == pytest.approx(1.0)
    assert by_mode["llvm"]["status"] == "ok"


def test_bench_json_for_every_mode(capsys):
    pytest.importorskip("torch")
    args = ["bench", "elementwise", "matmul", "--size", "64", "--steps", "3", "--json"]
    assert main([*args, "--vs", "torch"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for name in ("elementwise", "matmul"):
        check_rows(rows, name, MODES)
    matmul = next(r for r in rows if r["workload"] == "matmul" and r["mode"] == "llvm")
    assert matmul["unit"] == "GFLOP/s"


def test_bench_training_workloads_table(capsys):
    assert main(["bench", "mlp", "cnn", "--batch", "2", "--steps", "3", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "mlp: MLP 784-256-128-10 Adam step, batch 2" in out
    assert "seed CNN" in out and "samples/s" in out
    assert "GFLOP/s" in out and "%peak" in out and "conv2d" in out


def test_bench_without_torch_reports_it(monkeypatch):
    w = workloads.builtin("elementwise", size=100)
    w.torch = None
    (result,) = bench.bench(w, ["torch"], steps=3)
    assert result.status.startswith("unavailable")


USER_FILE = textwrap.dedent(
    """
    import numpy as np
    import nncompile as nc
    from nncompile import nn

    def scaled(x, w):
        return nc.tanh(x @ w).sum()

    def scaled_example_args():
        return np.ones((8, 3), np.float32), np.ones((3, 2), np.float32)

    def model():
        return nn.Sequential([nn.Dense(4, "relu", input_shape=(5,)), nn.Dense(3, "softmax")])
    """
)


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user_models.py"
    path.write_text(USER_FILE)
    return str(path)


def test_user_targets(user_file, capsys):
    args = ["--steps", "3", "--json", "--batch", "4"]
    assert main(["bench", f"{user_file}:scaled", f"{user_file}:model", *args]) == 0
    rows = json.loads(capsys.readouterr().out)
    check_rows(rows, "scaled", {"eager", "llvm", "cuda"})
    check_rows(rows, "model", {"eager", "llvm", "cuda"})


@pytest.mark.parametrize(
    "spec, match",
    [
        ("nosuch", "built-in workload"),
        ("missing.py:f", "no file"),
        ("json:nothing_here", "has no"),
        ("json:dumps", "example_args"),
    ],
)
def test_bad_targets(spec, match):
    with pytest.raises(ConfigError, match=match):
        workloads.resolve(spec)


def test_viz_command_writes_the_picture(user_file, tmp_path, capsys):
    out = tmp_path / "scaled.dot"
    assert main(["viz", f"{user_file}:scaled", "--stage", "grad", "-o", str(out)]) == 0
    text = out.read_text()
    assert "tanh" in text and "mistyrose" in text
    big = tmp_path / "lstm.dot"
    assert main(["viz", "lstm", "--batch", "2", "-o", str(big)]) == 0
    assert '"cluster/k' in big.read_text()  # large graphs collapse kernels


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` is not installed")
def test_viz_command_renders_svg(tmp_path):
    out = tmp_path / "cnn.svg"
    assert main(["viz", "cnn", "--batch", "2", "-o", str(out)]) == 0
    assert out.read_bytes().lstrip().startswith(b"<?xml")


def test_dump_command(tmp_path, capsys):
    assert main(["dump", "mlp", "--batch", "2", "-o", str(tmp_path)]) == 0
    files = {p.rsplit("/", 1)[1] for p in capsys.readouterr().out.split()}
    assert {"kernels.txt", "llvm.ll", "llvm_optimized.ll", "assembly.s"} <= files
    assert any(f.endswith("_fusion.txt") for f in files)
    assert (
        main(
            [
                "dump",
                "elementwise",
                "--size",
                "100",
                "--stage",
                "cuda",
                "--backend",
                "cuda",
                "-o",
                str(tmp_path / "cu"),
            ]
        )
        == 0
    )
    cu = capsys.readouterr().out.split()
    assert len(cu) == 1 and cu[0].endswith("kernels.cu")
    assert "__global__" in open(cu[0]).read()


def test_dump_asks_the_backend_for_its_files(tmp_path):
    from nncompile.backend import get_backend
    from nncompile.dump import dump_target

    # numpy interprets the graph: its dump is the IR stages only
    files = {p.rsplit("/", 1)[1] for p in dump_target("mlp", str(tmp_path), backend="numpy")}
    assert files and not files & {"kernels.txt", "llvm.ll", "assembly.s", "kernels.cu"}
    assert get_backend("numpy").dump_files(None) == {}


def test_torch_on_a_missing_gpu_is_reported_unavailable(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    args = ["bench", "elementwise", "--size", "64", "--steps", "3", "--json", "--vs", "torch"]
    assert main([*args, "--torch-device", "cuda"]) == 0
    rows = {r["mode"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["torch"]["status"].startswith("unavailable: PyTorch on cuda")
    assert rows["llvm"]["status"] == "ok"


def test_the_cuda_mode_runs_on_the_emulation(monkeypatch, tmp_path, capsys):
    """The GPU machine's benchmark path (device-resident parameters, donated steps,
    device outputs) runs end to end on the CPU emulation, and says it was emulated."""
    if shutil.which("g++") is None:
        pytest.skip("the emulation needs g++")
    monkeypatch.setenv("NNCOMPILE_CUDA_EMULATOR", "1")
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    assert main(["bench", "mlp", "--batch", "2", "--steps", "3", "--budget", "5"]) == 0
    out = capsys.readouterr().out
    assert "ran on the CPU emulation" in out
    (cuda,) = [line for line in out.splitlines() if line.strip().startswith("cuda")]
    assert "unavailable" not in cuda


def test_library_entry_points_reject_non_positive_sizes():
    w = workloads.resolve("matmul", size=8)
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        bench.bench(w, ["eager"], steps=0)
    with pytest.raises(ConfigError, match="size must be a positive integer"):
        workloads.resolve("elementwise", size=0)
    with pytest.raises(ConfigError, match="batch must be a positive integer"):
        workloads.resolve("mlp", batch=0)


def test_dump_into_a_file_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["dump", "mlp", "--batch", "2", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err and target.read_text() == "x"


def test_dump_with_a_dynamic_batch_names_the_batch_size(tmp_path, capsys):
    out = tmp_path / "dyn"
    args = ["dump", "mlp", "--batch", "3", "--dynamic-batch", "--stage", "ir", "--stage", "llvm"]
    assert main([*args, "-o", str(out)]) == 0
    files = capsys.readouterr().out.split()
    text = {p.rsplit("/", 1)[1]: open(p).read() for p in files}
    assert "float32[n,784]" in text["00_input.txt"]
    assert '%"n" = load i64' in text["llvm.ll"]
    assert main(["dump", "matmul", "--size", "8", "--dynamic-batch", "-o", str(out)]) == 2
    assert "no batch axis" in capsys.readouterr().err


def test_dump_with_bf16_products_shows_them_in_the_kernels(tmp_path, capsys):
    out = tmp_path / "bf16"
    args = ["dump", "mlp", "--batch", "3", "--matmul-precision", "bf16", "--stage", "kernels"]
    assert main([*args, "-o", str(out)]) == 0
    (path,) = capsys.readouterr().out.split()
    assert "bf16 products" in open(path).read()
