"""nc.optimize as a pipeline: levels, purity, idempotence (of the pipeline and of each
pass), the fixed point, and the NNCOMPILE_DUMP files."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

import nncompile as nc
from nncompile import functional as F
from nncompile import optim, passes

from ..conftest import graph_sizes
from . import nc_passes_support as S

MODELS = graph_sizes()
PASSES = [
    ("fold", passes.fold_constants),
    ("simplify", passes.simplify),
    ("cse", passes.eliminate_common_subexpressions),
    ("dce", passes.eliminate_dead_code),
    ("layout", passes.sink_transposes),
]
RNG = np.random.default_rng(0)


def arr(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def training_step(build):
    params, loss, x = build()
    y = np.random.default_rng(1).integers(0, 10, MODELS.BATCH)
    opt = optim.Adam(1e-3)
    return nc.trace(nc.train_step(loss, opt), params, opt.init(params), x, y, np.float32(1e-3))


def naive_softmax_xent(z, y):
    e = nc.exp(z * 1.0)
    return -nc.sum(y * nc.log(e / nc.sum(e, axis=1, keepdims=True)))


def misc(x):
    """A bit of everything: unit constants, duplicates, dead code, transposes."""
    a = nc.tanh(x) * 1.0 + 0.0
    b = nc.tanh(x)
    nc.exp(b)  # dead
    t = nc.transpose(nc.transpose(a, (1, 0)), (1, 0))
    return nc.sum(t + b, axis=1, keepdims=True) + nc.where(x > 0, b, b), nc.negative(nc.negative(t))


def small_graphs():
    x, w, b = arr(2, 8, 8, 3), arr(4, 3, 3, 3), arr(4)
    z, y = arr(4, 5), np.eye(5, dtype=np.float32)[:4]
    return {
        "conv_block": nc.trace(
            lambda x, w, b: F.max_pool(F.conv2d_layer(x, w, b, act="relu"), 2), x, w, b
        ),
        "naive_xent": nc.trace(naive_softmax_xent, z, y),
        "misc": nc.trace(misc, arr(3, 4)),
        "softmax": nc.trace(lambda z: nc.softmax(z) * nc.log_softmax(z), z),
    }


@pytest.fixture(scope="module")
def graphs():
    out = small_graphs()
    out["mlp_step"] = training_step(MODELS.mlp)
    out["cnn_step"] = training_step(MODELS.cnn)
    return out


GRAPH_NAMES = ["conv_block", "naive_xent", "misc", "softmax", "mlp_step", "cnn_step"]


# ---- levels and purity ----------------------------------------------------------------------


def test_levels():
    assert passes.passes_for(0) == []
    assert [n for n, _ in passes.passes_for(1)] == ["fold", "simplify", "cse", "dce"]
    level2 = ["fold", "simplify", "cse", "dce", "channels_last", "layout", "flatten_weights"]
    assert [n for n, _ in passes.passes_for(2)] == level2
    g = nc.trace(misc, arr(3, 4))
    for bad in (-1, 3, "2"):
        with pytest.raises(ValueError, match="level"):
            nc.optimize(g, bad)


def test_default_level_is_two():
    g = nc.trace(misc, arr(3, 4))
    assert nc.optimize(g).fusion_groups is not None
    assert str(nc.optimize(g)) == str(nc.optimize(g, 2))


@pytest.mark.parametrize("name", GRAPH_NAMES)
def test_optimize_does_not_modify_its_input(graphs, name):
    g = graphs[name]
    text, n = str(g), len(g.nodes)
    for level in (0, 1, 2):
        nc.optimize(g, level)
        assert str(g) == text and len(g.nodes) == n and g.fusion_groups is None


def test_level_zero_changes_nothing_and_level_one_does_not_fuse():
    g = nc.trace(misc, arr(3, 4))
    assert str(nc.optimize(g, 0)) == str(g)
    assert nc.optimize(g, 0).fusion_groups is None
    assert nc.optimize(g, 1).fusion_groups is None
    assert len(nc.optimize(g, 1).nodes) < len(g.nodes)


def test_misc_graph_shrinks_to_what_it_needs():
    x = arr(3, 4)
    g = nc.trace(misc, x)
    o = nc.optimize(g, 1)
    # `+ 0.0` stays: it turns -0.0 into +0.0, so removing it would not be exact.
    assert o.op_counts() == {"tanh": 1, "add": 3, "constant": 1, "reduce_sum": 1}

    S.assert_same_results(nc.run(g, x), nc.run(o, x))


# ---- idempotence and the fixed point ----------------------------------------------------------


@pytest.mark.parametrize("name", GRAPH_NAMES)
@pytest.mark.parametrize("level", [1, 2])
def test_optimizing_twice_is_optimizing_once(graphs, name, level):
    once = nc.optimize(graphs[name], level)
    twice = nc.optimize(once, level)
    assert str(twice) == str(once)
    if level == 2:
        assert [g.node_names for g in twice.fusion_groups] == [
            g.node_names for g in once.fusion_groups
        ]


@pytest.mark.parametrize("name", GRAPH_NAMES)
def test_every_pass_is_a_no_op_on_an_optimized_graph(graphs, name):
    opt = nc.optimize(graphs[name], 2)
    for pass_name, fn in PASSES:
        assert str(fn(opt)) == str(opt), pass_name


@pytest.mark.parametrize("name", GRAPH_NAMES)
@pytest.mark.parametrize("pass_name", [n for n, _ in PASSES])
def test_each_pass_applied_twice_is_applied_once(graphs, name, pass_name):
    fn = dict(PASSES)[pass_name]
    once = fn(graphs[name])
    assert str(fn(once)) == str(once)


def test_regression_simplify_is_not_idempotent_after_a_size_one_reduction():
    """sum(reshape(x, (3, 1)), axis=1): the size-1 reduction becomes reshape(reshape(x)),
    which only the next simplify run composes (to x). Fix: build the replacement reshape
    through the reshape rule (compose with a reshape producer, drop it if the shape is
    x's own)."""
    g = nc.trace(lambda x: nc.sum(nc.reshape(x, (3, 1)), axis=1), arr(3))
    once = passes.simplify(g)
    assert str(passes.simplify(once)) == str(once)


def test_regression_optimize_stops_before_the_fixed_point_on_long_chains():
    """The layout pass moves a transpose one op per pipeline round and optimize stops
    after MAX_ROUNDS (10) rounds, so a transpose followed by 12 elementwise ops is still
    mid-chain after optimize, and optimize(optimize(g)) differs from optimize(g). Fix:
    let sink_transposes move a transpose through a whole chain in one run (look at the
    rewritten operand, rw.value(v), which may be a transpose this run emitted), or
    iterate until the fixed point."""
    x = arr(2, 3)

    def chain(x):
        y = nc.transpose(x)
        for i in range(12):
            y = nc.tanh(y) if i % 2 else nc.abs(y)
        return nc.transpose(y)

    g = nc.trace(chain, x)
    once = nc.optimize(g, 2)
    S.assert_same_results(nc.run(g, x), nc.run(once, x))
    assert "transpose" not in once.op_counts()
    assert str(nc.optimize(once, 2)) == str(once)


# ---- results on training steps ----------------------------------------------------------------


@pytest.mark.parametrize("build", [MODELS.mlp, MODELS.cnn], ids=["mlp", "cnn"])
def test_training_step_results_are_bit_exact_at_level_one(build):
    params, loss, x = build()
    y = np.random.default_rng(1).integers(0, 10, MODELS.BATCH)
    opt = optim.Adam(1e-3)
    args = (params, opt.init(params), x, y, np.float32(1e-3))
    g = nc.trace(nc.train_step(loss, opt), *args)
    o = nc.optimize(g, 1)
    assert len(o.nodes) < len(g.nodes)
    S.assert_same_results(nc.run(g, *args), nc.run(o, *args))


# ---- NNCOMPILE_DUMP ---------------------------------------------------------------------------

HEADER = re.compile(r"# pass (\w+) \(round (\d+)\): nodes (\d+) -> (\d+), (\d+\.\d\d) ms$")


def dump_files(root: pathlib.Path, graph_name: str) -> list[pathlib.Path]:
    d = root / graph_name
    assert d.is_dir(), list(root.iterdir())
    return sorted(d.iterdir())


def test_dump_writes_one_file_per_pass_with_counts_and_timing(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_DUMP", str(tmp_path))
    x = arr(3, 4)

    def my_model(x):
        return misc(x)

    g = nc.trace(my_model, x)
    assert g.name == "my_model"
    opt = nc.optimize(g, 2)
    files = dump_files(tmp_path, "my_model")
    names = [f.name for f in files]
    assert names[0] == "00_input.txt"
    assert names[-1].endswith("fusion.txt")
    assert all(re.fullmatch(r"\d\d_\w+\.txt", n) for n in names)
    assert [int(n[:2]) for n in names] == list(range(len(names)))

    first = files[0].read_text().splitlines()
    assert first[0] == f"# input: {len(g.nodes)} nodes"
    assert "\n".join(first[1:]) == str(g)

    per_pass = files[1:-1]
    level2 = [name for name, _ in passes.passes_for(2)]
    assert per_pass and len(per_pass) % len(level2) == 0  # whole rounds of level 2's passes
    rounds = len(per_pass) // len(level2)
    expected = []
    count = len(g.nodes)
    for k, f in enumerate(per_pass):
        lines = f.read_text().splitlines()
        m = HEADER.match(lines[0])
        assert m, lines[0]
        name, round_, before, after, _ms = m.groups()
        assert f.name == f"{k + 1:02d}_{name}.txt"
        expected.append(name)
        assert int(round_) == k // len(level2)
        assert int(before) == count, "each pass starts where the previous one ended"
        count = int(after)
        assert lines[1].startswith("graph my_model(")
    assert expected == level2 * rounds
    assert count == len(opt.nodes)
    assert "\n".join(per_pass[-1].read_text().splitlines()[1:]) == str(opt)

    fusion = files[-1].read_text()
    assert fusion.startswith(f"# pass fusion: {len(opt.fusion_groups)} groups, ")
    assert "why not fused:" in fusion
    assert passes.format_fusion(opt) in fusion


def test_dump_of_a_training_step_lists_why_not_fused_reasons(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_DUMP", str(tmp_path))
    g = training_step(MODELS.mlp)
    opt = nc.optimize(g, 2)
    (fusion,) = [f for f in dump_files(tmp_path, g.name) if f.name.endswith("fusion.txt")]
    text = fusion.read_text()
    assert "why not fused:" in text
    assert "contractions start their own kernel" in text
    assert len(opt.fusion_rejections) > 0
    for grp in opt.fusion_groups:
        assert grp.name in text


def test_dump_at_level_one_has_no_fusion_file_and_sanitizes_the_name(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_DUMP", str(tmp_path))
    g = nc.trace(lambda x: nc.exp(x) * 1.0, arr(3))
    g.name = "my model/v1 <x>"
    nc.optimize(g, 1)
    (d,) = list(tmp_path.iterdir())
    assert d.name == "my_model_v1__x_"
    names = [f.name for f in sorted(d.iterdir())]
    assert names[0] == "00_input.txt" and not any("fusion" in n for n in names)
    assert len(names) - 1 >= 4 and (len(names) - 1) % 4 == 0


def test_no_dump_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NNCOMPILE_DUMP", raising=False)
    monkeypatch.chdir(tmp_path)
    nc.optimize(nc.trace(misc, arr(3, 4)), 2)
    assert list(tmp_path.iterdir()) == []


def test_dump_to_a_file_is_a_config_error_naming_the_variable(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    g = nc.trace(misc, arr(3, 4))
    monkeypatch.setenv("NNCOMPILE_DUMP", str(blocker))
    with pytest.raises(nc.ConfigError, match=r"NNCOMPILE_DUMP='.*a-file' names a file"):
        nc.optimize(g, 2)
    monkeypatch.setenv("NNCOMPILE_DUMP", str(blocker / "below"))
    with pytest.raises(nc.ConfigError, match=r"NNCOMPILE_DUMP=.*cannot create the folder"):
        nc.optimize(g, 2)
    assert blocker.read_text() == "not a folder"


def test_dump_expands_a_leading_tilde(tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("NNCOMPILE_DUMP", "~/dumps")  # as a quoted "~/dumps" reaches us
    nc.optimize(nc.trace(misc, arr(3, 4)), 2)
    assert (home / "dumps" / "misc" / "00_input.txt").is_file()
    assert list(cwd.iterdir()) == []
