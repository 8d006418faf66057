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


def test_an_uninstalled_checkout_says_how_to_install():
    """From the repository's root without `pip install -e .` (python -S: no site-packages,
    so no installed nncompile), `import nncompile` says how to install instead of failing
    with "partially initialized module"."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-S", "-c", "import nncompile"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: nncompile is imported from the source folder")
    assert f"pip install -e {ROOT}" in last
    assert "partially initialized" not in run.stderr
