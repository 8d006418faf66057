"""nc.viz / model.plot: the DOT text for small graphs, rendering with `dot` when it is
installed, and the missing-`dot` path."""

import pickle
import re
import shutil

import numpy as np
import pytest

import nncompile as nc
from nncompile import nn, optim, picture
from nncompile import visualize as viz
from nncompile.errors import ConfigError

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="graphviz `dot` is not installed")

# DOT as the graphviz package writes it: `id [k=v k="v v"]` statements, one a line.
_ID = r'"(?:[^"\\]|\\.)*"|[^\s\[\]"]+'
_ATTR = re.compile(rf"(\w+)=({_ID})")


def _unquote(text):
    return text[1:-1].replace('\\"', '"') if text.startswith('"') else text


def dot_nodes(text):
    """{node id: {attribute: value}} of the node statements in DOT ``text``."""
    found = {}
    for name, attrs in re.findall(rf"^\s*({_ID}) \[(.*)\]$", text, re.M):
        if name not in ("graph", "node", "edge"):
            found[_unquote(name)] = {k: _unquote(v) for k, v in _ATTR.findall(attrs)}
    return found


def dot_clusters(text):
    """The attributes of each cluster subgraph, in order."""
    heads = re.findall(r"^\s*subgraph (cluster\w*) \{\n\s*(.*)$", text, re.M)
    return [{k: _unquote(v) for k, v in _ATTR.findall(attrs)} for _, attrs in heads]


def dot_edges(text):
    return [
        (_unquote(a), _unquote(b)) for a, b in re.findall(rf"^\s*({_ID}) -> ({_ID})$", text, re.M)
    ]


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
    nodes = dot_nodes(text)
    matmul = next(n for n in g.nodes if n.op == "matmul")
    assert nodes[matmul.name]["label"] == "matmul\\n(2, 3) f32"  # op, shape and dtype
    assert "dense_1" in nodes[matmul.name]["tooltip"]
    assert {"label": "dense_1"}.items() <= dot_clusters(text)[0].items()  # a scope is a cluster
    # parameters (dict leaves) are boxes in khaki, data arguments blue ellipses
    params_w = {"label": "params_w\\n(4, 3) f32", "shape": "box", "fillcolor": "khaki"}
    assert params_w.items() <= nodes["in/params_w"].items()
    x = {"label": "x\\n(2, 4) f32", "shape": "ellipse", "fillcolor": "lightblue"}
    assert x.items() <= nodes["in/x"].items()
    assert nodes["out/0"]["peripheries"] == "2"  # the output
    edges = dot_edges(text)
    assert len(edges) >= len(g.nodes) and ("in/x", matmul.name) in edges


def test_fused_stage_draws_kernels_as_clusters():
    g = viz.graph_at_stage(loss_fn, example(), "fused")
    labels = [c["label"] for c in dot_clusters(viz.to_dot(g))]
    assert sorted(labels) == sorted(f"{group.name} [{group.kind}]" for group in g.fusion_groups)
    assert any(group.name.startswith("k0_matmul") for group in g.fusion_groups)


def test_grad_stage_marks_the_backward_part():
    g = viz.graph_at_stage(loss_fn, example(), "grad")
    scopes = {n.scope for n in g.nodes}
    assert "dense_1" in scopes and "backward/dense_1" in scopes
    assert "mistyrose" in {a.get("fillcolor") for a in dot_nodes(viz.to_dot(g)).values()}
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
    colours = {a.get("fillcolor") for a in dot_nodes(text).values()}
    assert {"white", "lavender", "mistyrose", "honeydew"} <= colours
    clusters = {c["label"] for c in dot_clusters(text)}
    assert {"conv2d", "dense_1", "backward/conv2d", "backward/dense_1", "optimizer"} <= clusters


def test_large_graphs_collapse_clusters():
    model = compiled_cnn()
    args = (model.params(), np.ones((2, 6, 6, 1), np.float32))
    g = viz.graph_at_stage(lambda p, x: model.apply(p, {}, x)[0], args, "traced")
    full = viz.to_dot(g, collapse_above=None)
    small = viz.to_dot(g, collapse_above=3)
    assert "ops: conv2d" in dot_nodes(small)["cluster/conv2d"]["label"]
    assert not dot_clusters(small) and dot_clusters(full)
    assert small.count("\n") < full.count("\n")


def test_layer_diagram(tmp_path):
    model = compiled_cnn()
    path = model.plot(str(tmp_path / "layers.dot"))
    text = open(path).read()
    assert "conv2d: Conv2D (relu)" in text and "out (None, 4, 4, 4)" in text
    assert "40 params" in text and "136 params" in text  # conv 4*9+4, dense 16*8+8
    assert len(dot_edges(text)) == len(model.layers)


@needs_dot
@pytest.mark.parametrize("ext", ["svg", "png", "pdf"])
def test_renders_with_dot(tmp_path, ext):
    path = str(tmp_path / f"g.{ext}")
    assert nc.viz(loss_fn, *example(), path=path, stage="fused") == path
    data = open(path, "rb").read()
    assert {"svg": b"<svg", "png": b"\x89PNG", "pdf": b"%PDF"}[ext] in data[:400]
    if ext == "svg":
        assert b"matmul" in data


def test_without_dot_writes_the_dot_file_and_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` to run: graphviz.ExecutableNotFound
    written = nc.viz(loss_fn, *example(), path=str(tmp_path / "g.svg"))
    assert written == str(tmp_path / "g.dot")
    assert open(written).read().startswith("digraph")
    assert "apt-get install graphviz" in capsys.readouterr().err
    assert not (tmp_path / "g.svg").exists()
    assert written._repr_svg_() is None and written._repr_mimebundle_() is None
    assert [p.name for p in tmp_path.iterdir()] == ["g.dot"]  # no temporary files left


@needs_dot
def test_viz_result_is_the_path_and_displays_inline(tmp_path):
    path = str(tmp_path / "g.png")
    written = nc.viz(loss_fn, *example(), path=path)
    assert written == path and isinstance(written, str) and open(written, "rb").read(4)
    bundle = written._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))
    assert "matmul" in written._repr_svg_()
    assert pickle.loads(pickle.dumps(written)) == path
    layers = compiled_cnn().plot(str(tmp_path / "layers.svg"))
    assert "Conv2D" in layers._repr_svg_()


@needs_dot
def test_text_is_drawn_literally(tmp_path):
    """Quotes, backslashes, colons and angle brackets in names and scopes are text to dot."""
    odd = 'a "b" c:\\d <e>'

    def f(x):
        with nc.name_scope(odd):
            return nc.relu(x) * 2

    g = viz.graph_at_stage(f, (np.ones(3, np.float32),), "traced")
    text = viz.to_dot(g)
    assert any(c["label"] == 'a "b" c:\\\\d <e>' for c in dot_clusters(text))
    svg = picture.draw(text, "svg").decode()
    assert "a &quot;b&quot; c:\\d &lt;e&gt;" in svg


@needs_dot
def test_dot_failure_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="dot failed"):
        viz.render("digraph { a -> }", str(tmp_path / "bad.svg"))
    assert not list(tmp_path.iterdir())


def test_unknown_extension():
    with pytest.raises(ConfigError, match="svg, png, pdf, dot"):
        nc.viz(loss_fn, *example(), path="g.jpeg")
