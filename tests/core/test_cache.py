"""The index cache: a re-scan opens no file, a changed file is read again, a broken cache is survived."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

from medview.core.dicom import scan as scan_mod
from medview.core.dicom.cache import info_from_json, info_to_json
from medview.core.dicom.scan import scan
from medview.core.dicom.source import SourceRef
from tests.factories import make_zip, truncate, write_image, write_junk, write_series


@pytest.fixture
def export(tmp_path):
    root = tmp_path / "export"
    write_series(root / "ct", 5, rows=32, cols=32)
    write_image(root / "bad.dcm")
    truncate(root / "bad.dcm", 400)
    write_junk(root / "junk")
    make_zip(root / "more.zip", write_series(tmp_path / "z", 2), tmp_path / "z")
    return root


def _summary(result):
    return (
        result.files,
        result.skipped_non_dicom,
        sorted((dataclasses.astuple(i) for i in result.instances), key=str),
        sorted((e.file, e.error) for e in result.errors),
    )


def test_second_scan_opens_no_file(export, monkeypatch):
    first = scan([str(export)])
    assert first.cached == 0 and len(first.instances) == 7 and len(first.errors) == 1

    def no_open(*args, **kwargs):
        raise AssertionError("a cached scan opened a file")

    monkeypatch.setattr(SourceRef, "open", no_open)
    monkeypatch.setattr(scan_mod, "read_header", no_open)
    second = scan([str(export)])
    assert second.cached == second.files == first.files
    assert _summary(second) == _summary(first)


def test_changed_file_is_read_again(export):
    scan([str(export)])
    target = export / "ct" / "IM0003.dcm"
    st = os.stat(target)
    truncate(target, 600)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    result = scan([str(export)])
    assert result.cached == result.files - 1
    assert [e.file for e in result.errors if "IM0003" in e.file] == [str(target)]
    # same size, new mtime: read again too (a file rewritten in place)
    good = export / "ct" / "IM0001.dcm"
    os.utime(good, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
    assert scan([str(export)]).cached == result.files - 1


def test_no_cache_reads_and_writes_nothing(export, medview_home):
    scan([str(export)], use_cache=False)
    assert not (medview_home / "index.sqlite").exists()


def test_corrupt_cache_is_survived(export, medview_home):
    (medview_home / "index.sqlite").write_bytes(b"this is not sqlite" * 100)
    result = scan([str(export)])
    assert len(result.instances) == 7
    assert scan([str(export)]).cached == result.files  # rebuilt, and in use again


def test_instance_json_round_trip(export):
    for inst in scan([str(export)], use_cache=False).instances:
        assert info_from_json(inst.ref, info_to_json(inst)) == inst


def test_deleted_files_are_forgotten(export, medview_home):
    import sqlite3

    scan([str(export)])
    (export / "ct" / "IM0002.dcm").unlink()
    scan([str(export)])
    with sqlite3.connect(medview_home / "index.sqlite") as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM files")]
    assert len(keys) == 11 and str(export / "ct" / "IM0002.dcm") not in keys


def test_a_new_results_cache_opened_by_several_threads_at_once_is_created_once(tmp_path):
    """The AI worker and the listener's scoring may open a fresh cache together: the schema is made by one
    of them, and none fails ("table results already exists")."""
    import threading

    from medview.core.inference.cache import ResultCache

    errors = []
    for trial in range(20):
        path = tmp_path / f"results{trial}.sqlite"
        start = threading.Barrier(4)

        def open_cache():
            start.wait()
            try:
                ResultCache(path)
            except Exception as exc:  # noqa: BLE001 - what the test looks for
                errors.append(exc)

        threads = [threading.Thread(target=open_cache) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_a_file_that_is_not_dicom_is_an_error_when_named_and_skipped_in_a_folder_whatever_the_cache_holds(tmp_path):
    """pydicom's palettes folder holds a README.md beside the palettes: named on its own it is an error, met
    in its folder it is skipped (SPEC section 2), whichever of the two scans came first and filled the cache."""
    from pydicom.data import get_palette_files

    folder = tmp_path / "palettes"
    shutil.copytree(os.path.dirname(get_palette_files("*.dcm")[0]), folder)
    readme = str(folder / "README.md")
    named, walked = scan([readme], use_cache=False), scan([str(folder)], use_cache=False)
    assert [(e.file, e.error) for e in named.errors] == [(readme, "not a DICOM file")]
    assert walked.errors == [] and walked.skipped_non_dicom == 1 and len(walked.instances) == 8

    for path in (readme, str(folder), readme, str(folder)):  # each scan reads the cache the one before filled
        result = scan([path])
        assert _summary(result) == _summary(named if path == readme else walked), path
    assert result.cached == result.files
