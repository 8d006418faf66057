"""The on-disk cache stays under NNCOMPILE_CACHE_MAX_MB: least recently used entries go."""

from __future__ import annotations

import os
import time

from nncompile import disk_cache


def _entry(folder, name: str, size: int, age: float) -> str:
    path = os.path.join(folder, name)
    disk_cache.write_cached(path, b"x" * size)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_prune_deletes_the_least_recently_used_down_to_three_quarters(tmp_path):
    folder = str(tmp_path)
    paths = [_entry(folder, f"{k:02d}.o", 100_000, age=100 - k) for k in range(10)]
    tuning = tmp_path / "gemm-tuning-abc.json"
    tuning.write_text("{}")
    assert disk_cache.read_cached(paths[0]) is not None  # a hit makes the oldest the newest
    freed = disk_cache.prune(folder, limit=600_000)
    kept = sorted(p.name for p in tmp_path.iterdir())
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in kept if n.endswith(".o"))
    assert size <= 450_000 and freed > 0
    assert "00.o" in kept and "09.o" in kept and "01.o" not in kept
    assert "gemm-tuning-abc.json" in kept  # not an entry: never pruned


def test_under_the_bound_nothing_goes(tmp_path):
    for k in range(3):
        _entry(str(tmp_path), f"{k}.o", 1000, age=k)
    assert disk_cache.prune(str(tmp_path), limit=1 << 20) == 0
    assert len(list(tmp_path.iterdir())) == 3


def test_writes_prune_the_folder_past_the_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_CACHE_MAX_MB", "1")
    monkeypatch.setattr(disk_cache, "_written", [0, 0])  # as in a fresh process
    for k in range(8):
        _entry(str(tmp_path), f"old{k}.o", 200_000, age=1000 + k)
    for k in range(2):  # written 200 KB = more than 1/8 of the bound each: pruned after
        disk_cache.write_cached(str(tmp_path / f"new{k}.o"), b"y" * 200_000)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"new0.o", "new1.o"} <= names
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= 1 << 20


def test_prune_deletes_what_killed_writers_left_and_spares_writes_in_progress(tmp_path):
    from nncompile.fileio import temp_name

    folder = str(tmp_path)
    killed = temp_name(os.path.join(folder, "abc.o"))
    writing = temp_name(os.path.join(folder, "def.o"))
    other = temp_name(os.path.join(folder, "model.json"))  # not the cache's: left alone
    for path in (killed, writing, other):
        with open(path, "wb") as f:
            f.write(b"x" * 1000)
    old = time.time() - 3600
    os.utime(killed, (old, old))
    os.utime(other, (old, old))
    assert disk_cache.prune(folder, limit=1 << 20) == 1000  # under the bound: only that
    assert not os.path.exists(killed)
    assert os.path.exists(writing) and os.path.exists(other)
