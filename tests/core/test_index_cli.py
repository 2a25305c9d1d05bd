"""`medview index`: the JSON of SPEC section 2, exit codes 0/1/2, one stderr line per bad file, no Qt/torch."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from pydicom.uid import generate_uid

from medview.cli import main
from tests.core.broken_copies import NO_DATA_ELEMENTS, garbage_after_preamble
from tests.factories import SAGITTAL, copy_testdata, truncate, write_image, write_junk, write_series

SERIES_KEYS = {"series_uid", "modality", "description", "number", "instances", "frames", "rows", "columns"}
STUDY_KEYS = {"study_uid", "patient_id", "patient_name", "study_date", "description", "modalities", "series"}


@pytest.fixture
def export(tmp_path):
    root = tmp_path / "export"
    study, series = generate_uid(), generate_uid()
    write_series(root / "ct", 4, rows=20, cols=24, study_uid=study, series_uid=series, modality="CT",
                 series_description="Chest")
    write_image(root / "ct" / "scout", study_uid=study, series_uid=series, orientation=SAGITTAL, rows=20, cols=24)
    write_image(root / "mr" / "mf", frames=3, modality="MR", patient_id="OTHER")
    write_junk(root / "junk")
    return root


def _run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_document(export, capsys):
    code, out, err = _run(["index", str(export), "--json"], capsys)
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert set(doc) == {"root", "files", "skipped_non_dicom", "studies", "errors", "duplicates"}
    assert doc["root"] == str(export) and doc["files"] == 10 and doc["skipped_non_dicom"] == 4
    assert doc["errors"] == []
    assert len(doc["studies"]) == 2
    for study in doc["studies"]:
        assert set(study) == STUDY_KEYS
        for series in study["series"]:
            assert set(series) == SERIES_KEYS
    ct = next(s for s in doc["studies"] if s["modalities"] == ["CT"])
    (series,) = ct["series"]  # the localizer is reported under its own series UID, with the axial images
    assert series["instances"] == 5 and series["frames"] == 5
    assert (series["rows"], series["columns"], series["description"], series["number"]) == (20, 24, "Chest", 1)
    mr = next(s for s in doc["studies"] if s["modalities"] == ["MR"])
    assert mr["patient_id"] == "OTHER" and mr["series"][0]["frames"] == 3 and mr["series"][0]["instances"] == 1


def test_bad_files_exit_1_one_line_each(export, capsys):
    truncate(write_image(export / "cut.dcm", rows=64, cols=64), 2000)
    (export / "noise.dcm").write_bytes(random.Random(500).randbytes(500))
    code, out, err = _run(["index", str(export), "--json"], capsys)
    assert code == 1
    doc = json.loads(out)
    files = sorted(os.path.basename(e["file"]) for e in doc["errors"])
    assert files == ["cut.dcm", "noise.dcm"]
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert any(line.startswith(str(export / "cut.dcm") + ": pixel data is") for line in lines)
    assert any(line == f"{export / 'noise.dcm'}: not a DICOM file" for line in lines)
    assert sum(len(s["series"]) for s in doc["studies"]) == 2  # the others are still reported


def test_readable_summary(export, capsys):
    code, out, _ = _run(["index", str(export)], capsys)
    assert code == 0
    assert "10 files, 2 studies, 6 images, 4 not DICOM, 0 errors" in out
    assert "CT Chest: 5 images, 20×24" in out


def test_missing_path_is_exit_2_and_partly_missing_is_1(tmp_path, export, capsys):
    code, out, err = _run(["index", str(tmp_path / "nope")], capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"medview index: {tmp_path / 'nope'}: no such file or folder"
    code, out, err = _run(["index", str(tmp_path / "nope"), str(export), "--json"], capsys)
    assert code == 1 and len(json.loads(out)["studies"]) == 2
    assert err.strip() == f"{tmp_path / 'nope'}: no such file or folder"


@pytest.mark.slow
def test_subprocess_no_traceback_no_qt_no_torch(export, tmp_path):
    """The real console entry: bad input never prints a traceback, and index stays free of Qt and torch."""
    (export / "zero.dcm").write_bytes(b"")
    truncate(write_image(export / "short.dcm", rows=128, cols=128), 1500)
    code = (
        "import sys, medview.cli as c; rc = c.main(sys.argv[1:]); "
        "heavy = sorted(m for m in ('torch', 'PySide6', 'pyqtgraph') if m in sys.modules); "
        "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc)"
    )
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", code, "index", str(export), "--json"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "HEAVY []" in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if not ln.startswith("HEAVY")]) == 2
    assert json.loads(proc.stdout)["files"] == 12
    # the cached run answers the same without importing pydicom at all
    code2 = code.replace("('torch', 'PySide6', 'pyqtgraph')", "('torch', 'PySide6', 'pyqtgraph', 'pydicom')")
    proc2 = subprocess.run([sys.executable, "-c", code2, "index", str(export), "--json"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert proc2.returncode == 1 and "HEAVY []" in proc2.stderr
    assert json.loads(proc2.stdout) == json.loads(proc.stdout)


@pytest.mark.slow
def test_broken_header_is_an_error_and_stderr_holds_only_medview_lines(tmp_path):
    """A fresh process (pydicom imported lazily, mid-scan): pydicom's own warnings never reach stderr."""
    broken = garbage_after_preamble(tmp_path / "d")  # pydicom: "End of file reached before delimiter"
    copy_testdata("MR_small_padded.dcm", tmp_path / "d" / "MR_small_padded.dcm")
    proc = subprocess.run([sys.executable, "-m", "medview", "index", str(tmp_path / "d"), "--json", "--no-cache"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["errors"] == [{"file": str(broken), "error": NO_DATA_ELEMENTS}]
    assert [(st["study_uid"] != "", se["instances"]) for st in doc["studies"] for se in st["series"]] == [(True, 1)]
    assert proc.stderr.splitlines() == [f"{broken}: {NO_DATA_ELEMENTS}"]


def test_summary_counts_objects_without_pixels_apart(tmp_path, capsys):
    """The plain summary does not call an RT Plan an image of 0x0 pixels (the JSON keeps SPEC's counts)."""
    for name in ("rtplan.dcm", "CT_small.dcm"):
        copy_testdata(name, tmp_path / name)
    assert main(["index", str(tmp_path), "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "1 images (and 1 objects without pixel data)" in out
    assert "RTPLAN (no description): 1 objects without pixel data" in out
    assert "0×0" not in out
