"""Where ``NNCOMPILE_DUMP=<dir>`` writes a graph's compilation stages: one folder per
graph, ``<dir>/<graph name>`` (characters other than letters, digits, ``.``, ``-`` and
``_`` become ``_``), each file written atomically."""

from __future__ import annotations

import os
import re

from . import config
from .fileio import atomic_write
from .ir.errors import ConfigError

VARIABLE = config.DUMP.name


def dump_root() -> str | None:
    """The folder ``NNCOMPILE_DUMP`` names (``~`` expanded), or None when it is unset."""
    return config.get_path(config.DUMP)


def dump_folder(graph_name: str) -> str | None:
    """The (created) folder for ``graph_name``'s stages, or None when not dumping."""
    root = dump_root()
    if root is None:
        return None
    setting = config.setting(config.DUMP)
    if os.path.exists(root) and not os.path.isdir(root):
        raise ConfigError(
            f"{setting} names a file; it must name a folder (created if missing) for the "
            "compilation stages"
        )
    folder = os.path.join(root, re.sub(r"[^\w.-]", "_", graph_name) or "graph")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{setting}: cannot create the folder {folder!r}: {e.strerror}") from None
    return folder


def write_dump(graph_name: str, file_name: str, text: str) -> None:
    """Write one stage's text when ``NNCOMPILE_DUMP`` is set."""
    folder = dump_folder(graph_name)
    if folder is not None:
        atomic_write(os.path.join(folder, file_name), text)
