"""fileio.atomic_write: the one way nncompile writes files (temporary name, fsync, rename)."""

import errno
import os
import stat

import pytest

from nncompile import fileio
from nncompile.data import write_idx


def test_writes_text_bytes_and_writer_functions(tmp_path):
    fileio.atomic_write(str(tmp_path / "a.txt"), "héllo")
    fileio.atomic_write(str(tmp_path / "sub" / "b.bin"), b"\x00\x01")  # creates the folder
    fileio.atomic_write(str(tmp_path / "c.bin"), lambda f: f.write(b"abc"))
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.bin").read_bytes() == b"abc"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def writer(f):
        f.write(b"half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        fileio.atomic_write(str(target), writer)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_the_content_is_synced_before_the_rename(tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(fileio, "_fsync", lambda f: events.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(
        fileio.os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))
    )
    fileio.atomic_write(str(tmp_path / "f"), b"x")
    assert events == ["fsync", "rename"]


def test_modes_new_files_follow_the_umask_and_replaced_files_keep_theirs(tmp_path):
    old = os.umask(0o022)
    try:
        fileio.atomic_write(str(tmp_path / "new"), b"x")
        private = tmp_path / "private"
        private.write_bytes(b"old")
        private.chmod(0o600)
        fileio.atomic_write(str(private), b"new")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o644
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_temporary_names_say_what_they_were_for(tmp_path):
    tmp = fileio.temp_name(str(tmp_path / "model.json"))
    assert os.path.dirname(tmp) == str(tmp_path)
    assert fileio.temp_target(os.path.basename(tmp)) == "model.json"
    assert fileio.temp_target("model.json") is None


def test_idx_files_are_written_atomically(tmp_path, monkeypatch):
    import numpy as np

    path = tmp_path / "x.idx"
    write_idx(path, np.arange(4, dtype=np.uint8))
    before = path.read_bytes()
    monkeypatch.setattr(fileio, "_fsync", lambda f: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_idx(path, np.arange(8, dtype=np.uint8))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["x.idx"]
