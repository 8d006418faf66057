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


def test_show_rejects_a_corrupt_graph(tmp_path):
    g = nc.trace(lambda x: nc.exp(x), np.ones(3, np.float32))
    doc = json.loads(g.to_json())
    doc["nodes"][0]["op"] = "no_such_op"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(nc.SerializationError, match="no_such_op"):
        main(["show", str(path)])


@pytest.mark.parametrize("cmd", ["demo", "bench", "viz", "dump"])
def test_unbuilt_commands_say_so(cmd, capsys):
    assert main([cmd]) == 2
    assert "not implemented yet" in capsys.readouterr().err


def test_quickstart_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["quickstart.py", "--out", str(tmp_path)])
    example = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "traced == eager == reloaded: True" in out
    g = nc.ir.Graph.from_json((tmp_path / "cnn_loss.json").read_text())
    assert g.op_counts()["conv2d"] == 1
