"""PNG files from NumPy arrays with the standard library (zlib), for examples that show
images (inputs beside reconstructions) without an imaging dependency."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .errors import ShapeError
from .fileio import atomic_write

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {2: 0, 3: 2}  # rank -> PNG colour type: grayscale, RGB


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(image: np.ndarray) -> bytes:
    """An 8-bit PNG of ``image``: (H, W) grayscale or (H, W, 3) RGB. Floats are taken as
    0..1 and clipped; integers must lie in 0..255."""
    a = np.asarray(image)
    if a.ndim not in _COLOR_TYPE or (a.ndim == 3 and a.shape[2] != 3) or 0 in a.shape:
        raise ShapeError(f"encode_png: expects (H, W) or (H, W, 3) pixels, got shape {a.shape}")
    if a.dtype.kind == "f":
        a = np.round(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0)
    elif a.dtype.kind in "iub" and (a.min() < 0 or a.max() > 255):
        raise ShapeError(f"encode_png: integer pixels must lie in 0..255, got {a.min()}..{a.max()}")
    pixels = np.ascontiguousarray(a, dtype=np.uint8)
    height, width = pixels.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE[pixels.ndim], 0, 0, 0)
    rows = pixels.reshape(height, -1)
    # each scanline starts with its filter type (0: none)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str, image: np.ndarray) -> None:
    """Write ``image`` (see ``encode_png``) to ``path`` atomically."""
    atomic_write(path, encode_png(image))


def image_grid(images: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """Tile (n, H, W) images into one picture, ``columns`` per row, ``gap`` pixels apart
    (filled with the images' maximum so the tiles stand out)."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[0] == 0 or columns < 1:
        raise ShapeError(f"image_grid: expects (n, H, W) images, got shape {images.shape}")
    n, h, w = images.shape
    rows = -(-n // columns)
    fill = images.max()
    grid = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), fill, images.dtype)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[i]
    return grid
