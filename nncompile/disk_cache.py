"""The on-disk cache of compiled code shared by the backends (LLVM objects, CUDA cubins).

``NNCOMPILE_CACHE_DIR`` (default ``~/.cache/nncompile``; ``off`` disables it; a leading
``~`` is the home folder even when the shell left it unexpanded). Each file
holds a magic line, the SHA-256 of its payload and the payload; a corrupt or truncated
file is deleted and reported as a miss, never returned. Writes are atomic
(``fileio.atomic_write``), so a reader never sees half a file.

The folder is bounded (``NNCOMPILE_CACHE_MAX_MB``, default 1 GiB): a hit marks its file as
used (its modification time), and after a process has written an eighth of the bound (and
at its first write) the least recently used entries are deleted down to three quarters of
it. Every compiled variant of every program would otherwise stay on disk for good.
"""

from __future__ import annotations

import hashlib
import os
import time

from . import config
from .fileio import atomic_write, remove_quietly, temp_target

_MAGIC = b"NCOBJ1\n"
ENTRY_SUFFIXES = (".o", ".cubin", ".so")  # what the backends store (gemm-tuning-*.json stays)
# A temporary file this old belongs to a writer that was killed: a write takes milliseconds.
STALE_TEMP_SECONDS = 600


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
    try:
        os.utime(path)  # used now: the last entry to go when the folder is pruned
    except OSError:
        pass
    return payload


def write_cached(path: str, payload: bytes) -> None:
    blob = _MAGIC + hashlib.sha256(payload).digest() + payload
    atomic_write(path, blob)
    _written[0] += len(blob)
    if _written[0] >= _written[1]:
        limit = int(config.get_int(config.CACHE_MAX_MB)) << 20
        _written[:] = [0, limit // 8]
        prune(os.path.dirname(os.path.abspath(path)), limit)


# bytes this process has written since it last pruned, and how many trigger the next
_written = [0, 0]


def prune(folder: str, limit: int) -> int:
    """Delete the least recently used cache entries (compiled objects: .o, .cubin, .so;
    nothing else in the folder) until they take at most 3/4 of ``limit`` bytes, and the
    temporary files of writers killed before their rename. Returns the bytes freed.
    Other processes may read, write or delete entries meanwhile: a vanished file is
    skipped, and a reader that loses one recompiles. (About 15 ms for 6,000 entries, so
    the first write of a process can afford it.)"""
    entries, freed = [], 0
    stale = time.time() - STALE_TEMP_SECONDS
    try:
        with os.scandir(folder) as found:
            for entry in found:
                target = temp_target(entry.name)
                if not (entry.name.endswith(ENTRY_SUFFIXES) or target):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # deleted meanwhile
                if target is None:
                    entries.append((st.st_mtime, st.st_size, entry.path))
                elif target.endswith(ENTRY_SUFFIXES) and st.st_mtime < stale:
                    remove_quietly(entry.path)
                    freed += st.st_size
    except OSError:
        return freed
    total = sum(size for _, size, _ in entries)
    if total > limit:
        for _, size, path in sorted(entries):
            if total <= limit * 3 // 4:
                break
            remove_quietly(path)
            total -= size
            freed += size
    return freed


def _discard(path: str) -> None:
    remove_quietly(path)
