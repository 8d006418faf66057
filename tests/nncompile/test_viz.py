"""nc.viz / model.plot: the DOT text for small graphs, rendering with `dot` when it is
installed, and the missing-`dot` path."""

import shutil

import numpy as np
import pytest

import nncompile as nc
from nncompile import nn, optim
from nncompile import visualize as viz
from nncompile.errors import ConfigError

HAS_DOT = shutil.which("dot") is not None


def loss_fn(params, x, y):
    with nc.name_scope("dense_1"):
        h = nc.relu(x @ params["w"] + params["b"])
    return nc.cross_entropy(h, y)


def example():
    params = {"w": np.ones((4, 3), np.float32), "b": np.zeros(3, np.float32)}
    return params, np.ones((2, 4), np.float32), np.array([0, 2])


def test_traced_dot_has_labelled_nodes_inputs_and_scope_clusters():
    g = viz.graph_at_stage(loss_fn, example(), "traced")
    text = viz.to_dot(g)
    assert text.startswith("digraph")
    assert '"matmul\\n(2, 3) f32"' in text  # op, shape and dtype
    assert 'label="dense_1"' in text  # the name scope is a cluster
    # parameters (dict leaves) are boxes in khaki, data arguments blue ellipses
    assert '"in:params_w" [label="params_w\\n(4, 3) f32", shape=box, fillcolor=khaki' in text
    assert '"in:x" [label="x\\n(2, 4) f32", shape=ellipse, fillcolor=lightblue' in text
    assert "peripheries=2" in text  # the output
    assert text.count("->") >= len(g.nodes)


def test_fused_stage_draws_kernels_as_clusters():
    g = viz.graph_at_stage(loss_fn, example(), "fused")
    text = viz.to_dot(g)
    for group in g.fusion_groups:
        assert f'label="{group.name} [{group.kind}]"' in text
    assert any(group.name.startswith("k0_matmul") for group in g.fusion_groups)


def test_grad_stage_marks_the_backward_part():
    g = viz.graph_at_stage(loss_fn, example(), "grad")
    scopes = {n.scope for n in g.nodes}
    assert "dense_1" in scopes and "backward/dense_1" in scopes
    assert "fillcolor=mistyrose" in viz.to_dot(g)
    with pytest.raises(ConfigError, match="one scalar"):
        viz.graph_at_stage(lambda x: x * 2, (np.ones(3, np.float32),), "grad")
    with pytest.raises(ConfigError, match="stage"):
        viz.graph_at_stage(loss_fn, example(), "lowered")


def compiled_cnn():
    model = nn.Sequential(
        [
            nn.Conv2D(4, (3, 3), activation="relu", input_shape=(6, 6, 1)),
            nn.MaxPooling2D((2, 2)),
            nn.Flatten(),
            nn.Dense(8, activation="relu"),
            nn.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optim.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def test_training_graph_has_forward_loss_backward_and_optimizer_parts(tmp_path):
    model = compiled_cnn()
    model.plot(str(tmp_path / "step.dot"), stage="traced")
    text = (tmp_path / "step.dot").read_text()
    for colour in ("white", "lavender", "mistyrose", "honeydew"):
        assert f"fillcolor={colour}" in text
    for layer in ("conv2d", "dense_1"):
        assert f'label="{layer}"' in text
        assert f'label="backward/{layer}"' in text
    assert 'label="optimizer"' in text


def test_large_graphs_collapse_clusters():
    model = compiled_cnn()
    args = (model.params(), np.ones((2, 6, 6, 1), np.float32))
    g = viz.graph_at_stage(lambda p, x: model.apply(p, {}, x)[0], args, "traced")
    full = viz.to_dot(g, collapse_above=None)
    small = viz.to_dot(g, collapse_above=3)
    assert '"cluster:conv2d"' in small and "ops: conv2d" in small
    assert small.count("\n") < full.count("\n")


def test_layer_diagram(tmp_path):
    model = compiled_cnn()
    path = model.plot(str(tmp_path / "layers.dot"))
    text = open(path).read()
    assert "conv2d: Conv2D (relu)" in text and "out (None, 4, 4, 4)" in text
    assert "40 params" in text and "136 params" in text  # conv 4*9+4, dense 16*8+8
    assert text.count("->") == len(model.layers)


@pytest.mark.skipif(not HAS_DOT, reason="graphviz `dot` is not installed")
@pytest.mark.parametrize("ext", ["svg", "png", "pdf"])
def test_renders_with_dot(tmp_path, ext):
    path = str(tmp_path / f"g.{ext}")
    assert nc.viz(loss_fn, *example(), path=path, stage="fused") == path
    data = open(path, "rb").read()
    assert {"svg": b"<svg", "png": b"\x89PNG", "pdf": b"%PDF"}[ext] in data[:400]
    if ext == "svg":
        assert b"matmul" in data


def test_without_dot_writes_the_dot_file_and_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    written = nc.viz(loss_fn, *example(), path=str(tmp_path / "g.svg"))
    assert written == str(tmp_path / "g.dot")
    assert open(written).read().startswith("digraph")
    assert "apt-get install graphviz" in capsys.readouterr().err
    assert not (tmp_path / "g.svg").exists()


def test_unknown_extension():
    with pytest.raises(ConfigError, match="svg, png, pdf, dot"):
        nc.viz(loss_fn, *example(), path="g.jpeg")
