"""Atomic file writes, the one way nncompile writes a file.

A file is written under a temporary name in its own folder, flushed to the disk (fsync),
then renamed over its target; the folder is synced so the rename itself survives a crash.
Readers, and the next run after a kill or a full disk, see the old file or the new one,
never half of one. Temporary names are ``.<name>.<random>.tmp``.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Callable
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"

Content = bytes | str | Callable[[BinaryIO], object]


def temp_name(path: str) -> str:
    """A fresh temporary name beside ``path`` (same folder, so the rename is atomic)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def temp_target(name: str) -> str | None:
    """The file name a temporary file called ``name`` was to become (None when ``name`` is
    not one): what a writer killed before its rename leaves behind."""
    match = re.fullmatch(rf"\.(.+)\.[0-9a-f]{{12}}{re.escape(TEMP_SUFFIX)}", name)
    return match.group(1) if match else None


def _fsync(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


def sync_folder(folder: str) -> None:
    """Make renames and removals in ``folder`` durable (a no-op where folders cannot be
    opened, as on Windows)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename is still atomic
    finally:
        os.close(fd)


def atomic_write(path: str, content: Content, encoding: str = "utf-8") -> None:
    """Write ``content`` (bytes, text, or a function writing to a binary file) to ``path``
    atomically, creating the folder if needed. On any error the temporary file is removed
    and ``path`` is left as it was."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temp_name(path)
    # os.open with 0o666 lets the umask decide the mode, as for an ordinary new file
    # (mkstemp would make every written file private).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode(encoding) if isinstance(content, str) else content)
            _fsync(f)
        try:  # replacing a file keeps its permissions
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    sync_folder(folder)


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
