"""The `nncompile` console script and the runnable examples."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nncompile as nc
from nncompile.cli import main


def test_console_script_help():
    out = subprocess.run(["nncompile", "--help"], capture_output=True, text=True, check=True)
    assert "usage: nncompile" in out.stdout
    for cmd in ("demo", "bench", "viz", "dump", "ops", "show", "tune"):
        assert cmd in out.stdout


def test_ops_lists_every_registered_op(capsys):
    assert main(["ops"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert listed == set(nc.ir.all_ops())


def test_tune_prints_the_machine_and_its_gemm_blocking(tmp_path, monkeypatch, capsys):
    """`nncompile tune --model`: the analytical blocking, nothing timed or stored; plain
    `nncompile tune` times the candidates and stores the winner in the cache folder."""
    from nncompile.backends.llvm import gemm_tune

    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", str(tmp_path))
    assert main(["tune", "--model"]) == 0
    out = capsys.readouterr().out
    assert "L1d" in out and "GEMM blocking (model" in out and "FMA peak" in out
    assert "matmul_precision='bf16' computes with" in out  # the bf16 form chosen here
    assert not list(tmp_path.glob("gemm-tuning-*"))
    monkeypatch.setattr(gemm_tune, "TUNING_SHAPES", ((64, 64, 64),))
    assert main(["tune"]) == 0
    out = capsys.readouterr().out
    assert "GEMM blocking (tuned" in out and "stored in the cache folder" in out
    assert len(list(tmp_path.glob("gemm-tuning-*.json"))) == 1


def test_show_prints_a_saved_graph(tmp_path, capsys):
    g = nc.trace(lambda x: nc.tanh(x) * 2, np.ones((2, 3), np.float32))
    path = tmp_path / "g.json"
    path.write_text(g.to_json())
    assert main(["show", str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(g)


def test_show_rejects_a_corrupt_graph(tmp_path, capsys):
    g = nc.trace(lambda x: nc.exp(x), np.ones(3, np.float32))
    doc = json.loads(g.to_json())
    doc["nodes"][0]["op"] = "no_such_op"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    assert main(["show", str(path)]) == 2
    assert "no_such_op" in capsys.readouterr().err


def one_line_error(capsys_or_run, code, expected, want_code=2):
    err = capsys_or_run.readouterr().err if hasattr(capsys_or_run, "readouterr") else capsys_or_run
    assert code == want_code
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert expected in err, err


def test_show_of_a_missing_or_unreadable_file_is_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.json"
    one_line_error(capsys, main(["show", str(missing)]), f"{missing}: No such file")
    one_line_error(capsys, main(["show", str(tmp_path)]), "Is a directory")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    one_line_error(capsys, main(["show", str(binary)]), f"nncompile: {binary}: ")


def test_bad_option_values_are_one_line_errors_not_defaults(capsys):
    """--limit 0 and --size 0 used to mean "the default"; --steps 0 was an IndexError."""
    for argv, option in [
        (["demo", "--limit", "0"], "--limit: must be a positive integer, got '0'"),
        (["demo", "--epochs", "-1"], "--epochs: must be a positive integer"),
        (["demo", "--validation-split", "1"], "--validation-split: must be in [0, 1)"),
        (["demo", "--lr", "nan"], "--lr: must be finite"),
        (["bench", "mlp", "--steps", "0"], "--steps: must be a positive integer"),
        (["bench", "--size", "0"], "--size: must be a positive integer"),
        (["bench", "--batch", "two"], "--batch: must be an integer, got 'two'"),
        (["viz", "mlp", "--size", "0"], "--size: must be a positive integer"),
        (["dump", "mlp", "--batch", "0"], "--batch: must be a positive integer"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(argv)
        one_line_error(capsys, info.value.code, option)


def test_output_into_a_closed_pipe_ends_quietly():
    """`nncompile ops | head` closed the pipe under a BrokenPipeError traceback."""
    p = subprocess.Popen(["nncompile", "ops"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before anything is written
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 1  # Python's documented exit status on EPIPE
    assert err == ""


@pytest.mark.parametrize(
    "script",
    [
        "conv_autoencoder.py",
        "custom_function.py",
        "mnist_cnn.py",
        "resnet_digits.py",
        "rnn_sequence.py",
        "transformer_text.py",
    ],
)
def test_example_help_shows_the_whole_description(script):
    example = Path(__file__).resolve().parents[1] / "examples" / script
    out = subprocess.run(
        [sys.executable, str(example), "--help"], capture_output=True, text=True, check=True
    ).stdout
    first_paragraph = runpy.run_path(str(example))["__doc__"].split("\n\n")[0]
    assert " ".join(first_paragraph.split()) in " ".join(out.split())


def test_quickstart_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["quickstart.py", "--out", str(tmp_path)])
    example = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "traced == eager == reloaded: True" in out
    g = nc.ir.Graph.from_json((tmp_path / "cnn_loss.json").read_text())
    assert g.op_counts()["conv2d"] == 1


def write_tiny_mnist(folder, n_train=160, n_test=40):
    """MNIST-format IDX files whose digits are learnable: a bright bar at a row per class."""
    rng = np.random.default_rng(0)
    for part, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 + 2 * k : 4 + 2 * k, 4:24] = 255
        nc.data.write_idx(folder / f"{part}-images-idx3-ubyte.gz", images)
        nc.data.write_idx(folder / f"{part}-labels-idx1-ubyte.gz", labels)


def test_demo_on_mnist_files(tmp_path, capsys, monkeypatch):
    write_tiny_mnist(tmp_path)
    monkeypatch.chdir(tmp_path)
    graph = tmp_path / "step.dot"
    code = main(
        ["demo", "--data", str(tmp_path), "--epochs", "2", "--quiet", "--graph", str(graph)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "data: mnist, 160 training and 40 test images of (28, 28, 1)" in out
    assert "Total params: 347,146" in out
    assert "test (40 images): loss" in out and "f1" in out
    assert "confusion matrix" in out
    assert "faster compiled" in out and "samples/s" in out
    assert graph.read_text().startswith("digraph")


def test_demo_on_the_offline_digits(capsys):
    pytest.importorskip("sklearn")
    assert main(["demo", "--epochs", "1", "--limit", "300", "--no-graph", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "data: digits, 300 training and 300 test images of (8, 8, 1)" in out
    assert "training: 1 epochs" in out


def test_demo_reports_bad_data_clearly(tmp_path):
    out = subprocess.run(
        ["nncompile", "demo", "--data", str(tmp_path / "none")], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "MNIST folder" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "script, args",
    [
        ("mnist_cnn.py", ["--epochs", "1", "--limit", "120"]),
        ("rnn_sequence.py", ["--epochs", "1", "--limit", "120", "--cell", "gru"]),
        ("custom_function.py", ["--steps", "5"]),
        ("conv_autoencoder.py", ["--epochs", "2", "--limit", "120"]),
        ("resnet_digits.py", ["--epochs", "1", "--limit", "120"]),
    ],
)
def test_examples_run_on_mnist_files(script, args, tmp_path, monkeypatch, capsys):
    write_tiny_mnist(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, "--data", str(tmp_path), *args])
    example = Path(__file__).resolve().parents[1] / "examples" / script
    runpy.run_path(str(example), run_name="__main__")
    assert "test" in capsys.readouterr().out


def test_conv_autoencoder_writes_its_picture(tmp_path, monkeypatch, capsys):
    write_tiny_mnist(tmp_path)
    png = tmp_path / "rec.png"
    argv = ["conv_autoencoder.py", "--data", str(tmp_path), "--epochs", "1", "--png", str(png)]
    monkeypatch.setattr(sys, "argv", [*argv, "--limit", "64"])
    example = Path(__file__).resolve().parents[1] / "examples" / "conv_autoencoder.py"
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "test reconstruction: binary cross-entropy" in out and "1 epochs; the first" in out
    assert png.read_bytes().startswith(b"\x89PNG")


def test_transformer_example_runs(monkeypatch, capsys):
    argv = ["transformer_text.py", "--train", "256", "--epochs", "2", "--length", "6"]
    monkeypatch.setattr(sys, "argv", argv)
    example = Path(__file__).resolve().parents[1] / "examples" / "transformer_text.py"
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "2 epochs; the first (compiling)" in out and "test: {'loss'" in out
