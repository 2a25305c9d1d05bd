"""`medview self-test` from source, as CI runs it on the frozen app: healthy exits 0; a broken model is one
clear line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _self_test(home: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEDVIEW_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "medview", "self-test", *extra], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=240)


def test_self_test_passes_from_source(medview_home):
    proc = _self_test(medview_home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout
    for check in ("decoder plugins", "JPEG sample", "JPEG 2000 sample", "model", "AI results as DICOM", "PACS",
                  "main window"):
        assert f"ok    {check}:" in proc.stdout
    assert proc.stderr.strip() == "" or "Traceback" not in proc.stderr
    # it writes only below MEDVIEW_HOME/temp, and cleans up after itself
    assert not any((medview_home / "temp").iterdir())


def test_broken_model_is_one_clear_line_and_nonzero_exit(medview_home, tmp_path):
    from medview.resources import bundled_model_path

    broken = tmp_path / "broken-model"
    shutil.copytree(bundled_model_path(), broken)
    weights = broken / "models" / "model.ts"
    weights.write_bytes(weights.read_bytes()[:-100] + b"\0" * 100)  # the checksum no longer matches
    proc = _self_test(medview_home, "--model", str(broken))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("medview self-test: model failed:")
    assert "Traceback" not in proc.stderr
    assert "ok    JPEG sample:" in proc.stdout  # the other checks still ran
    assert "skip  AI results as DICOM:" in proc.stdout  # it builds on the model's result: not a second failure


def test_missing_model_folder_is_one_clear_line(medview_home, tmp_path):
    proc = _self_test(medview_home, "--model", str(tmp_path / "no-such-model"))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model failed" in lines[0], proc.stderr


def test_the_platform_the_app_will_use_is_checked(monkeypatch):
    """On an X11 desktop the xcb plugin's libraries must load, or the app would abort at start while the
    offscreen checks pass; the check names the packages to install."""
    import ctypes

    from medview.commands import self_test

    assert "offscreen" in self_test.check_display("offscreen", ":0")
    assert "no display" in self_test.check_display(None, None)
    real = ctypes.CDLL

    def without_cursor(name, *args, **kwargs):
        if name == "libxcb-cursor.so.0":
            raise OSError(f"{name}: cannot open shared object file")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", without_cursor)
    with pytest.raises(self_test.CheckFailed, match="libxcb-cursor0"):
        self_test.check_display(None, ":0")
