"""PNG writer: files decode back (by hand, with zlib) to the pixels written."""

import struct
import zlib

import numpy as np
import pytest

import nncompile as nc
from nncompile.png import encode_png, image_grid, write_png


def decode(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    w, h, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8
    channels = {0: 1, 2: 3}[color]
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, -1)
    assert (raw[:, 0] == 0).all()
    pixels = raw[:, 1:].reshape(h, w, channels)
    return pixels[..., 0] if channels == 1 else pixels


def test_grayscale_and_rgb_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 7)).astype(np.uint8)
    rgb = rng.integers(0, 256, (4, 3, 3)).astype(np.uint8)
    np.testing.assert_array_equal(decode(encode_png(gray)), gray)
    np.testing.assert_array_equal(decode(encode_png(rgb)), rgb)
    write_png(str(tmp_path / "g.png"), gray)
    np.testing.assert_array_equal(decode((tmp_path / "g.png").read_bytes()), gray)


def test_floats_are_scaled_and_clipped():
    img = np.array([[0.0, 0.5, 1.0, 2.0, -1.0, np.nan]])
    np.testing.assert_array_equal(decode(encode_png(img)), [[0, 128, 255, 255, 0, 0]])


def test_grid_tiles_images_in_order():
    imgs = np.arange(3 * 2 * 2).reshape(3, 2, 2)
    grid = image_grid(imgs, columns=2, gap=1)
    assert grid.shape == (5, 5)
    np.testing.assert_array_equal(grid[:2, :2], imgs[0])
    np.testing.assert_array_equal(grid[:2, 3:], imgs[1])
    np.testing.assert_array_equal(grid[3:, :2], imgs[2])


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 4)), np.zeros((0, 3)), np.full((2, 2), 300)])
def test_bad_images_are_clear_errors(bad):
    with pytest.raises(nc.ShapeError, match="encode_png"):
        encode_png(bad)
