"""Whole files or nothing: a write that fails half-way leaves the old file and no temporary file behind."""

from __future__ import annotations

import os
import stat

import pytest

from medview.core import atomic


def test_a_failed_write_leaves_the_old_file_and_no_part(tmp_path, monkeypatch):
    target = tmp_path / "servers.toml"
    target.write_bytes(b"old")

    class DiskFull:
        def __init__(self, fd, *_args, **_kwargs):
            os.close(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, _data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fdopen", DiskFull)
    with pytest.raises(OSError, match="No space"):
        atomic.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["servers.toml"]


def test_the_mode_is_set_and_a_new_folder_made(tmp_path):
    secret = atomic.write_atomic(tmp_path / "secrets" / "pacs", b"token\n", mode=0o600)
    shared = atomic.write_atomic(tmp_path / "servers.toml", b"[servers]\n", mode=0o644)
    assert secret.read_bytes() == b"token\n" and stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
