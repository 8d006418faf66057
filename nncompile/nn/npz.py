"""Reading a saved ``.npz`` file one array at a time, headers first.

Each member's header (shape, dtype) is read and checked against the bytes the member
really holds before any array is read, so a loader can compare shapes with the model
before allocating anything, and a crafted header cannot make it allocate more than the
file holds. Arrays of Python objects are refused: nothing is ever unpickled.
"""

from __future__ import annotations

import math
import zipfile
from typing import Any

import numpy as np

from ..ir.errors import SerializationError

Header = tuple[tuple[int, ...], np.dtype]


def _read_header(f: Any) -> Header:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unknown .npy format version {version}")
    return tuple(shape), dtype


class NpzArrays:
    """``headers`` maps each array's name to (shape, dtype); ``read(name)`` loads one."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as e:
            raise SerializationError(f"cannot read {path}: {e}") from None
        try:
            self.headers = {self._name(info): self._check(info) for info in self._zip.infolist()}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            self._zip.close()
            raise SerializationError(f"cannot read {path}: {e}") from None

    def _name(self, info: zipfile.ZipInfo) -> str:
        if not info.filename.endswith(".npy"):
            raise ValueError(f"{info.filename!r} is not a .npy array")
        return info.filename[: -len(".npy")]

    def _check(self, info: zipfile.ZipInfo) -> Header:
        with self._zip.open(info) as f:
            shape, dtype = _read_header(f)
            data_bytes = info.file_size - f.tell()
        name = self._name(info)
        if dtype.hasobject:
            raise ValueError(f"{name} holds Python objects, which are never unpickled")
        declared = math.prod(shape) * dtype.itemsize
        if declared != data_bytes:
            raise ValueError(
                f"{name} declares {dtype}{list(shape)} ({declared:,} bytes) but holds "
                f"{data_bytes:,} bytes"
            )
        return shape, dtype

    def read(self, name: str) -> np.ndarray:
        try:
            with self._zip.open(name + ".npy") as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise SerializationError(f"cannot read {self.path}: {name}: {e}") from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> NpzArrays:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
