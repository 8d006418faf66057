"""The package list in pyproject.toml covers every folder that holds Python code, so a
non-editable install is complete."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _expected_packages() -> set[str]:
    found = set()
    for top, prefix in (
        ("nncompile", "nncompile"),
        ("ir", "nncompile.ir"),
        ("backends", "nncompile.backends"),
    ):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([prefix, *rel.parts]) if rel.parts else prefix)
    return found


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert listed == _expected_packages()
