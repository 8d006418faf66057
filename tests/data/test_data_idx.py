"""The IDX / MNIST reader on files written in the test, good and broken, and the splits."""

import gzip

import numpy as np
import pytest

import nncompile as nc
from nncompile import data
from nncompile.errors import ConfigError, DataError


def write_mnist(folder, n_train=20, n_test=10, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    ext = ".gz" if compress else ""
    parts = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        data.write_idx(folder / f"{part}-images-idx3-ubyte{ext}", images)
        data.write_idx(folder / f"{part}-labels-idx1-ubyte{ext}", labels)
        parts[part] = (images, labels)
    return parts


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, compress):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        a = np.abs(a).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    data.write_idx(path, a)
    b = data.read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_header_is_the_canonical_big_endian_layout(tmp_path):
    path = tmp_path / "labels.idx"
    data.write_idx(path, np.array([7, 2, 1], np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])


def header(code, dims):
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, ">u4").tobytes()


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "not an IDX file"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an IDX file"),
        (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 5]), "unknown IDX dtype code 0x42"),
        (bytes([0, 0, 8, 3, 0, 0]), "incomplete"),
        (header(8, [2, 3]) + bytes(5), "truncated"),
        (header(8, [2, 3]) + bytes(7), "trailing bytes"),
        (header(0x0C, [2]) + bytes(7), "truncated"),
    ],
)
def test_broken_idx_files_are_rejected(tmp_path, raw, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=message):
        data.read_idx(path)


def test_truncated_gzip_is_rejected(tmp_path):
    packed = gzip.compress(header(8, [4]) + bytes(4))
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(packed[:-6])
    with pytest.raises(DataError, match="gzip"):
        data.read_idx(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        data.read_idx(tmp_path / "nope.idx")


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_reads_the_four_files(tmp_path, compress):
    parts = write_mnist(tmp_path, compress=compress)
    (xtr, ytr), (xte, yte) = nc.data.load_mnist(tmp_path)
    assert xtr.shape == (20, 28, 28, 1) and xtr.dtype == np.float32
    assert xte.shape == (10, 28, 28, 1) and yte.dtype == np.int64
    np.testing.assert_allclose(xtr[..., 0], parts["train"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ytr, parts["train"][1])
    (raw, _), _ = nc.data.load_mnist(tmp_path, normalize=False)
    assert raw.dtype == np.uint8


def test_load_mnist_checks_sizes_and_labels(tmp_path):
    write_mnist(tmp_path)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match="9 labels for 10 images"):
        nc.data.load_mnist(tmp_path)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8))
    with pytest.raises(DataError, match="not a digit"):
        nc.data.load_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="not found"):
        nc.data.load_mnist(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        nc.data.load_mnist(tmp_path / "missing")


def test_train_test_split_is_stratified_and_disjoint():
    x = np.arange(100)[:, None]
    y = np.repeat(np.arange(4), 25)
    (xa, ya), (xb, yb) = data.train_test_split(x, y, 0.2, seed=1)
    assert len(xa) == 80 and len(xb) == 20
    assert sorted(np.concatenate([xa, xb])[:, 0]) == list(range(100))
    assert np.bincount(yb).tolist() == [5, 5, 5, 5]
    np.testing.assert_array_equal(y[xa[:, 0]], ya)


def test_split_tail_takes_the_last_samples():
    x, y = np.arange(10), np.arange(10) * 2
    (xa, ya), (xb, yb) = data.split_tail(x, y, 0.3)
    assert xa.tolist() == list(range(7)) and xb.tolist() == [7, 8, 9]
    assert yb.tolist() == [14, 16, 18]
    with pytest.raises(nc.ConfigError):
        data.split_tail(x, y, 1.5)


def test_batch_slices_cover_every_sample_once():
    batches = list(data.batch_slices(70, 32, shuffle=True, rng=np.random.default_rng(0)))
    assert [len(b) for b in batches] == [32, 32, 6]
    assert sorted(np.concatenate(batches)) == list(range(70))
    assert list(data.batch_slices(5, 2))[-1].tolist() == [4]


def test_load_digits_offline():
    pytest.importorskip("sklearn")
    (xtr, ytr), (xte, yte) = nc.data.load_digits()
    assert xtr.shape == (1438, 8, 8, 1) and xte.shape == (359, 8, 8, 1)
    assert 0.0 <= xtr.min() and xtr.max() == 1.0
    assert set(np.unique(yte)) == set(range(10))


def test_load_digits_without_scikit_learn_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(nc.MissingDependencyError, match=r"nncompile\[examples\]"):
        nc.data.load_digits()


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_load_images_rejects_a_limit_that_is_not_a_positive_count(limit):
    """limit=0 used to mean "no limit": every image."""
    with pytest.raises(ConfigError, match="limit must be a positive integer"):
        nc.data.load_images(None, limit)
