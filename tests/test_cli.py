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
    for cmd in ("demo", "bench", "viz", "dump", "ops", "show"):
        assert cmd in out.stdout


def test_ops_lists_every_registered_op(capsys):
    assert main(["ops"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert listed == set(nc.ir.all_ops())


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
    ],
)
def test_examples_run_on_mnist_files(script, args, tmp_path, monkeypatch, capsys):
    write_tiny_mnist(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, "--data", str(tmp_path), *args])
    example = Path(__file__).resolve().parents[1] / "examples" / script
    runpy.run_path(str(example), run_name="__main__")
    assert "test" in capsys.readouterr().out
