"""The on-disk cache of compiled code shared by the backends (LLVM objects, CUDA cubins).

``NNCOMPILE_CACHE_DIR`` (default ``~/.cache/nncompile``; ``off`` disables it; a leading
``~`` is the home folder even when the shell left it unexpanded). Each file
holds a magic line, the SHA-256 of its payload and the payload; a corrupt or truncated
file is deleted and reported as a miss, never returned. Writes are atomic
(``fileio.atomic_write``), so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib

from . import config
from .fileio import atomic_write, remove_quietly

_MAGIC = b"NCOBJ1\n"


def cache_dir() -> str | None:
    return config.get_path(config.CACHE_DIR)  # "~/x" is the home folder's x, not ./~/x


def read_cached(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    head = len(_MAGIC) + 32
    if len(blob) < head or not blob.startswith(_MAGIC):
        _discard(path)
        return None
    digest, payload = blob[len(_MAGIC) : head], blob[head:]
    if hashlib.sha256(payload).digest() != digest:
        _discard(path)
        return None
    return payload


def write_cached(path: str, payload: bytes) -> None:
    atomic_write(path, _MAGIC + hashlib.sha256(payload).digest() + payload)


def _discard(path: str) -> None:
    remove_quietly(path)
