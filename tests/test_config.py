"""nncompile/config.py: one parsing rule per kind, and README's table of the variables."""

from pathlib import Path

import numpy as np
import pytest

import nncompile as nc
from nncompile import config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_table_lists_exactly_the_declared_variables():
    text = README.read_text()
    assert config.readme_table() in text
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    listed = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    assert listed == set(config.VARIABLES)


@pytest.mark.parametrize("raw", ["1", "true", "YES", " on "])
def test_bool_true_words(monkeypatch, raw):
    monkeypatch.setenv("NNCOMPILE_BOUNDS_CHECK", raw)
    assert config.get_bool(config.BOUNDS_CHECK) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_bool_false_words(monkeypatch, raw):
    monkeypatch.setenv("NNCOMPILE_CHECK", raw)
    assert config.get_bool(config.CHECK) is False


def test_bool_unset_is_the_default(monkeypatch):
    monkeypatch.delenv("NNCOMPILE_CUDA_EMULATOR", raising=False)
    assert config.get_bool(config.CUDA_EMULATOR) is False


def test_bad_bool_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CHECK", "maybe")
    with pytest.raises(nc.ConfigError, match="NNCOMPILE_CHECK='maybe'"):
        nc.compile(lambda x: x + 1)(np.ones(3, np.float32))


@pytest.mark.parametrize("raw", ["0", "-3", "x", "1.5"])
def test_bad_int_is_a_config_error(monkeypatch, raw):
    monkeypatch.setenv("NNCOMPILE_MEMORY_CACHE", raw)
    with pytest.raises(nc.ConfigError, match="NNCOMPILE_MEMORY_CACHE.*integer from 1"):
        config.get_int(config.MEMORY_CACHE)


def test_int_default_and_value(monkeypatch):
    monkeypatch.delenv("NNCOMPILE_MEMORY_CACHE", raising=False)
    assert config.get_int(config.MEMORY_CACHE) == 32
    monkeypatch.setenv("NNCOMPILE_MEMORY_CACHE", " 7 ")
    assert config.get_int(config.MEMORY_CACHE) == 7


def test_path_expands_home_and_off_words_disable(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NNCOMPILE_CACHE_DIR", raising=False)
    assert config.get_path(config.CACHE_DIR) == str(tmp_path / ".cache" / "nncompile")
    monkeypatch.setenv("NNCOMPILE_CACHE_DIR", "~/objects")
    assert config.get_path(config.CACHE_DIR) == str(tmp_path / "objects")
    for off in ("off", "0", "none", ""):
        monkeypatch.setenv("NNCOMPILE_CACHE_DIR", off)
        assert config.get_path(config.CACHE_DIR) is None
    monkeypatch.delenv("NNCOMPILE_DUMP", raising=False)
    assert config.get_path(config.DUMP) is None


def test_enum(monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CUDA_COMPILER", "NVCC")
    assert config.get_enum(config.CUDA_COMPILER) == "nvcc"
    monkeypatch.setenv("NNCOMPILE_CUDA_COMPILER", "clang")
    with pytest.raises(nc.ConfigError, match="NNCOMPILE_CUDA_COMPILER='clang'.*choose one of"):
        config.get_enum(config.CUDA_COMPILER)


def test_no_module_reads_the_environment_directly():
    root = Path(__file__).resolve().parents[1]
    allowed = {"nncompile/config.py", "nncompile/envvars.py"}
    offenders = []
    for folder in ("nncompile", "backends", "ir"):
        for path in (root / folder).rglob("*.py"):
            rel = path.relative_to(root).as_posix()
            if rel not in allowed and "os.environ.get(" in path.read_text():
                offenders.append(rel)
    assert offenders == []


def test_dump_writes_one_folder_per_graph(monkeypatch, tmp_path):
    """The pass pipeline and the backend's stages share the graph's one dump folder."""
    monkeypatch.setenv("NNCOMPILE_DUMP", str(tmp_path))

    def step(x):
        return nc.exp(x) * 2

    step.__name__ = step.__qualname__ = "step <v2>"
    nc.compile(step)(np.ones(3, np.float32))
    (folder,) = tmp_path.iterdir()
    names = {p.name for p in folder.iterdir()}
    assert {"00_input.txt", "kernels.txt", "llvm.ll"} <= names
