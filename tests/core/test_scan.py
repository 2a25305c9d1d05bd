"""Scanning: real files from pydicom and pydicom-data, and tricky folders built with tests/factories.py."""

from __future__ import annotations

import dataclasses
import glob
import os
import random
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from medview.core.dicom import scan as scan_mod
from medview.core.dicom.header import Fallback, read_raw_header
from medview.core.dicom.scan import looks_like_dicom, scan
from medview.core.dicom.source import SourceRef
from tests.core.broken_copies import NO_DATA_ELEMENTS, garbage_after_preamble
from tests.factories import (
    SAGITTAL,
    make_zip,
    truncate,
    write_dicomdir,
    write_image,
    write_junk,
    write_series,
)

PYDICOM_DIR = os.path.dirname(get_testdata_file("CT_small.dcm"))


def _data_store_dir() -> str:
    import data_store

    return os.path.dirname(data_store.__file__)


def _real_files() -> list[str]:
    files = [p for p in get_testdata_files() if os.path.isfile(p)]
    files += [p for p in glob.glob(_data_store_dir() + "/**/*", recursive=True) if os.path.isfile(p)]
    return files


def _by_name(result):
    return {os.path.basename(i.ref.path): i for i in result.instances}, {
        os.path.basename(e.file): e.error for e in result.errors
    }


# ------------------------------------------------------------------------------------------- real files


@pytest.mark.parametrize("root", [PYDICOM_DIR, "data_store"])
def test_every_real_file_is_an_instance_an_error_or_skipped(root):
    root = _data_store_dir() if root == "data_store" else root
    result = scan([root], use_cache=False)
    assert result.files == len(result.instances) + len(result.errors) + result.skipped_non_dicom
    assert result.instances, "the test files hold images"
    for err in result.errors:
        assert os.path.exists(err.file) and err.error and "Traceback" not in err.error


def test_known_broken_pydicom_files_are_errors_with_reasons():
    result = scan([PYDICOM_DIR], use_cache=False)
    instances, errors = _by_name(result)
    assert errors["MR_truncated.dcm"] == "pixel data is 8130 bytes, 8192 declared (64×64×1×16 bits)"
    assert errors["rtplan_truncated.dcm"].startswith("file is cut short")
    assert "MR_small.dcm" in instances and "CT_small.dcm" in instances
    ct = instances["CT_small.dcm"]
    ds = pydicom.dcmread(ct.ref.path)
    assert (ct.rows, ct.columns, ct.bits_allocated, ct.pixel_representation) == (128, 128, 16, 1)
    assert ct.image_position == tuple(float(v) for v in ds.ImagePositionPatient)
    # the recorded offset is where the pixel bytes are
    with open(ct.ref.path, "rb") as fp:
        fp.seek(ct.pixel_offset)
        assert fp.read(ct.pixel_length) == ds.PixelData
    # JPEG 2000 with its fragments cut short: found at index time without decoding
    ds_result = scan([_data_store_dir()], use_cache=False)
    _, ds_errors = _by_name(ds_result)
    assert "cut short" in ds_errors["emri_small_jpeg_2k_lossless_too_short.dcm"]


def test_lean_header_reader_agrees_with_pydicom_on_every_real_file():
    """The fast walker gives exactly what the pydicom path gives, wherever both accept the file."""
    compared = handled = 0
    for path in _real_files():
        size = os.path.getsize(path)
        with open(path, "rb") as fp:
            if not looks_like_dicom(fp.read(132)):
                continue
            try:
                read_raw_header(fp, size, scan_mod._WANTED)
                handled += 1
            except Fallback:
                pass
            except Exception:
                handled += 1  # cut short etc.: an answer, not a fallback
        ref = SourceRef(path)
        with open(path, "rb") as fp:
            try:
                fast = scan_mod.read_header(ref, fp, size)
            except (scan_mod.Unusable, scan_mod.NotDicom):
                continue
        with open(path, "rb") as fp, scan_mod.quiet_pydicom():
            try:
                slow = scan_mod.read_header_pydicom(ref, fp, size)
            except (scan_mod.Unusable, scan_mod.NotDicom):
                continue
        if fast is None or slow is None:
            assert fast is slow
            continue
        compared += 1
        assert dataclasses.asdict(fast) == dataclasses.asdict(slow), path
    assert compared > 150
    assert handled > 0.9 * compared  # the walker, not the fallback, reads nearly every file


def test_dicomdir_from_pydicom_uses_its_referenced_files():
    dicomdir = get_testdata_file("DICOMDIR")
    result = scan([dicomdir], use_cache=False)
    assert not result.errors
    assert len(result.instances) == result.files == 31
    base = os.path.dirname(dicomdir)
    assert all(i.ref.path.startswith(base + os.sep) for i in result.instances)
    assert {i.patient_id for i in result.instances} == {"77654033", "98890234"}


def test_dicomdir_written_for_a_synthetic_series(tmp_path):
    series = write_series(tmp_path / "src", 5)
    write_image(tmp_path / "src" / "unlisted.dcm")
    dicomdir = write_dicomdir(tmp_path / "cd", series)
    result = scan([str(dicomdir)], use_cache=False)
    assert len(result.instances) == result.files == 5 and not result.errors
    assert all(i.ref.path.startswith(str(tmp_path / "cd")) for i in result.instances)
    # the folder of a DICOMDIR scanned as a folder: the DICOMDIR itself is no image
    folder = scan([str(tmp_path / "cd")], use_cache=False)
    assert len(folder.instances) == 5 and folder.skipped_non_dicom == 1


def test_dicomdir_with_a_missing_file_and_a_broken_dicomdir(tmp_path):
    src = os.path.dirname(get_testdata_file("DICOMDIR"))
    shutil.copytree(src, tmp_path / "media", ignore=shutil.ignore_patterns("TINY_ALPHA"))
    os.remove(tmp_path / "media" / "77654033" / "CR1" / "6154")
    result = scan([str(tmp_path / "media" / "DICOMDIR")], use_cache=False)
    assert len(result.instances) == 30
    assert [(os.path.basename(e.file), e.error) for e in result.errors] == [
        ("6154", "listed in the DICOMDIR but missing")
    ]
    # a DICOMDIR that cannot be read: its folder is scanned instead
    (tmp_path / "media" / "DICOMDIR").write_bytes(b"\x00" * 128 + b"DICM" + random.Random(50).randbytes(50))
    result = scan([str(tmp_path / "media" / "DICOMDIR")], use_cache=False)
    assert len(result.instances) == 30


# ------------------------------------------------------------------------------------------- synthetic


def test_tricky_folder(tmp_path):
    """Nested folders, shuffled names without suffix, two patients, a localizer, a multi-frame file, junk."""
    root = tmp_path / "export"
    study_a, series_a = generate_uid(), generate_uid()
    names = [f"{n:08X}" for n in random.Random(3).sample(range(1 << 30), 12)]
    write_series(root / "a" / "deep" / "er", 12, names=names, study_uid=study_a, series_uid=series_a,
                 patient_id="PA")
    write_image(root / "a" / "loc", study_uid=study_a, series_uid=series_a, orientation=SAGITTAL,
                instance_number=99, patient_id="PA")
    write_image(root / "b" / "IMG1", patient_id="PB", frames=5, modality="MR")
    write_junk(root / "junk")
    result = scan([str(root)], use_cache=False)
    assert result.files == 12 + 1 + 1 + 4
    assert len(result.instances) == 14
    assert result.skipped_non_dicom == 4 and not result.errors
    assert {i.patient_id for i in result.instances} == {"PA", "PB"}
    multi = [i for i in result.instances if i.frames > 1]
    assert len(multi) == 1 and multi[0].frames == 5 and multi[0].pixel_length == 5 * 16 * 16 * 2


def test_broken_files_each_get_a_reason_and_the_rest_is_read(tmp_path):
    good = write_image(tmp_path / "good.dcm")
    big = write_image(tmp_path / "short_pixels.dcm", rows=512, cols=512)
    offset = scan([str(big)], use_cache=False).instances[0].pixel_offset
    truncate(big, offset + 1000)
    truncate(write_image(tmp_path / "cut_header.dcm"), 300)
    (tmp_path / "random.dcm").write_bytes(random.Random(3000).randbytes(3000))
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "random_no_suffix").write_bytes(random.Random(3000).randbytes(3000))
    (tmp_path / "empty_no_suffix").write_bytes(b"")
    rle = write_image(tmp_path / "rle.dcm", transfer_syntax=RLELossless, frames=3)
    truncate(rle, os.path.getsize(rle) - 40)
    result = scan([str(tmp_path)], use_cache=False)
    instances, errors = _by_name(result)
    assert set(instances) == {"good.dcm"} and instances["good.dcm"].ref.path == str(good)
    assert errors["short_pixels.dcm"] == "pixel data is 1000 bytes, 524288 declared (512×512×1×16 bits)"
    assert "cut short" in errors["cut_header.dcm"]
    assert errors["random.dcm"] == "not a DICOM file"
    assert errors["empty.dcm"] == "empty file"
    assert errors["rle.dcm"].startswith("compressed pixel data is cut short")
    assert result.skipped_non_dicom == 2  # the files that do not claim to be DICOM


def test_garbage_in_the_header_is_an_error_not_an_instance(tmp_path):
    """pydicom reads CT_small.dcm with garbage over its file meta without complaint; nothing can place it."""
    broken = garbage_after_preamble(tmp_path / "d")
    result = scan([str(tmp_path / "d")], use_cache=False)
    assert result.instances == [] and result.skipped_non_dicom == 0
    assert [(e.file, e.error) for e in result.errors] == [(str(broken), NO_DATA_ELEMENTS)]


def test_a_header_that_identifies_nothing_is_an_error_and_odd_valid_files_are_kept():
    result = scan([PYDICOM_DIR], use_cache=False)
    instances, errors = _by_name(result)
    # a data set of a character set and an image type only: no SOP Class, no SOP Instance, no image
    assert errors["empty_charset_LEI.dcm"] == "broken DICOM header (no SOP Class UID, no SOP Instance UID, no image)"
    # valid but odd: no Study Instance UID (JPEG-LS samples), no Part-10 preamble or file meta
    assert instances["JPEGLSNearLossless_08.dcm"].study_uid == ""
    for name in ("rtstruct.dcm", "ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm"):
        assert instances[name].sop_instance_uid, name


def test_an_element_written_twice_is_read_and_one_over_and_over_is_refused(tmp_path):
    """pydicom's palette winter.dcm holds its SOP Instance UID twice in a row (a writer's slip pydicom reads):
    it is a Color Palette like its seven siblings, not "not a DICOM file". The same element copied on and
    on is a pattern, not a data set, and is still refused from its first copies."""
    from pydicom.data import get_palette_files

    palettes = sorted(get_palette_files("*.dcm"))
    result = scan([os.path.dirname(palettes[0])], use_cache=False)
    assert result.errors == []
    assert sorted(os.path.basename(i.ref.path) for i in result.instances) == [os.path.basename(p) for p in palettes]
    winter = next(i for i in result.instances if i.ref.path.endswith("winter.dcm"))
    assert (winter.sop_class_uid, winter.sop_instance_uid) == (
        "1.2.840.10008.5.1.4.39.1", str(pydicom.dcmread(winter.ref.path).SOPInstanceUID))

    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    meta_end = 144 + int.from_bytes(ct[140:144], "little")  # after (0002,0000) File Meta Group Length
    uid = b"1.2.3.4"
    element = b"\x08\x00\x18\x00UI" + len(uid + b"\0").to_bytes(2, "little") + uid + b"\0"
    (tmp_path / "pattern.dcm").write_bytes(ct[:meta_end] + element * 100_000)
    result = scan([str(tmp_path / "pattern.dcm")], use_cache=False)
    reason = f"not a DICOM file (the same element over and over from byte {meta_end})"
    assert [e.error for e in result.errors] == [reason]


def test_absurd_dimensions_never_allocate(tmp_path):
    path = write_image(tmp_path / "huge.dcm")
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
    ds.save_as(path)
    tracemalloc.start()
    result = scan([str(path)], use_cache=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 1024 * 1024
    assert [e.error for e in result.errors] == ["declared image size 65535 x 65535 x 1 samples x 16 bits is too large"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(preamble=False),
        dict(preamble=False, transfer_syntax=ExplicitVRBigEndian),
        dict(transfer_syntax=ImplicitVRLittleEndian),
        dict(transfer_syntax=ExplicitVRBigEndian, bits_allocated=32),
        dict(samples_per_pixel=3, bits_allocated=8, planar_configuration=1),
    ],
    ids=["no-preamble", "no-preamble-big-endian", "implicit", "big-endian-32", "rgb-planar"],
)
def test_native_encodings_locate_the_pixel_bytes(tmp_path, kwargs):
    path = write_image(tmp_path / "x", instance_number=7, **kwargs)
    (inst,) = scan([str(path)], use_cache=False).instances
    assert inst.instance_number == 7 and inst.study_uid and inst.pixel_offset
    ds = pydicom.dcmread(path, force=True)
    with open(path, "rb") as fp:
        fp.seek(inst.pixel_offset)
        assert fp.read(inst.pixel_length) == ds.PixelData[: inst.pixel_length]


def test_compressed_and_deflated_files_have_no_fast_path(tmp_path):
    rle = write_image(tmp_path / "rle.dcm", transfer_syntax=RLELossless, frames=2)
    dfl = write_image(tmp_path / "dfl.dcm", transfer_syntax=DeflatedExplicitVRLittleEndian)
    result = scan([str(tmp_path)], use_cache=False)
    instances, errors = _by_name(result)
    assert not errors
    assert instances["rle.dcm"].encapsulated and instances["rle.dcm"].pixel_offset is None
    assert instances["rle.dcm"].frames == 2
    assert instances["dfl.dcm"].pixel_offset is None and instances["dfl.dcm"].rows == 16
    assert {rle, dfl}


def test_zip_is_read_in_place(tmp_path):
    src = tmp_path / "src"
    paths = write_series(src / "CT", 4)
    write_junk(src / "other")
    zip_path = make_zip(tmp_path / "in" / "export.zip", list(src.rglob("*.*")) + [src / "other" / "empty"], src)
    before = sorted(os.listdir(zip_path.parent))
    result = scan([str(zip_path)], use_cache=True)
    assert sorted(os.listdir(zip_path.parent)) == before  # nothing written or extracted next to it
    assert len(result.instances) == 4 and not result.errors and result.skipped_non_dicom == 4
    inst = sorted(result.instances, key=lambda i: i.instance_number)[0]
    assert inst.ref.path == str(zip_path) and inst.ref.member == "CT/IM0001.dcm"
    assert inst.ref.display() == f"{zip_path}!CT/IM0001.dcm"
    with inst.ref.open() as fp:
        assert fp.read() == paths[0].read_bytes()


def test_missing_paths_are_errors_and_the_others_are_read(tmp_path):
    write_image(tmp_path / "a.dcm")
    missing = tmp_path / "nope"
    result = scan([str(missing), str(tmp_path)], use_cache=False)
    assert len(result.instances) == 1
    assert [(e.file, e.error) for e in result.errors] == [(str(missing), "no such file or folder")]


def test_progress_and_cancel(tmp_path):
    write_series(tmp_path, 200)
    seen = []
    result = scan([str(tmp_path)], use_cache=False, progress=lambda d, t: seen.append((d, t)),
                  cancel=lambda: len(seen) >= 2)
    assert result.cancelled
    assert 0 < len(result.instances) < 200
    assert seen[0] == (0, 200) and all(t == 200 for _, t in seen)


def test_scan_writes_only_into_medview_home(tmp_path, medview_home):
    write_series(tmp_path / "study", 3)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    scan([str(tmp_path / "study")])
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (Path(medview_home) / "index.sqlite").exists()


def test_symlink_loop_is_walked_once(tmp_path):
    write_series(tmp_path / "a", 2)
    os.symlink(tmp_path, tmp_path / "a" / "up")
    result = scan([str(tmp_path)], use_cache=False)
    assert len(result.instances) == 2 and not result.errors


def test_looks_like_dicom():
    assert looks_like_dicom(bytes(128) + b"DICM")
    assert looks_like_dicom(b"\x08\x00\x05\x00CS\x0a\x00")  # explicit VR, no preamble
    assert looks_like_dicom(b"\x08\x00\x00\x00\x04\x00\x00\x00")  # implicit VR group length
    assert looks_like_dicom(b"\x00\x08\x00\x05CS\x00\x0a")  # big endian
    assert not looks_like_dicom(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert not looks_like_dicom(b"hello")
    assert not looks_like_dicom(np.arange(66, dtype=np.uint16).tobytes() + b"XXXX")


def _same_elements(lean, slow, where: str) -> None:
    """Every element of two data sets alike: tag, VR and value (sequences item by item), or both raising."""
    assert list(lean.keys()) == list(slow.keys()), where
    for tag in slow.keys():
        got, want = _element_or_error(lean, tag), _element_or_error(slow, tag)
        if isinstance(want, str) or isinstance(got, str):
            assert got == want, f"{where} {tag}"
            continue
        assert got.VR == want.VR, f"{where} {tag}"
        if want.VR == "SQ":
            assert len(got.value) == len(want.value), f"{where} {tag}"
            for i, (a, b) in enumerate(zip(got.value, want.value)):
                _same_elements(a, b, f"{where} {tag}[{i}]")
        else:
            assert repr(got.value) == repr(want.value), f"{where} {tag}"


def _element_or_error(ds, tag):
    try:
        return ds[tag]
    except Exception as exc:  # noqa: BLE001 - a value pydicom cannot convert must fail alike in both
        return type(exc).__name__


def test_header_datasets_from_the_lean_walk_are_what_pydicom_reads_on_every_real_file():
    """`header_dataset` (what `read_dataset(stop_before_pixels=True)` returns where the walker reads the
    file) gives pydicom's own header dataset: the same elements with the same VRs and values, sequences
    included, the same file meta, encoding, preamble and character set."""
    from medview.core.dicom.header import header_dataset

    compared = 0
    for path in _real_files():
        with open(path, "rb") as fp:
            head = fp.read(132)
            if not looks_like_dicom(head):
                continue
            lean = header_dataset(fp, os.path.getsize(path))
        if lean is None:
            continue
        with scan_mod.quiet_pydicom():
            slow = pydicom.dcmread(path, stop_before_pixels=True, force=head[128:132] != b"DICM")
            _same_elements(lean, slow, path)
            _same_elements(lean.file_meta, slow.file_meta, path)
        assert lean.original_encoding == slow.original_encoding, path
        assert lean.preamble == slow.preamble, path
        assert lean._character_set == slow._character_set, path
        compared += 1
    assert compared > 150


def test_a_header_the_lean_walk_reads_from_damaged_bytes_is_one_pydicom_reads_alike():
    """Real files with a few random bytes changed in their headers: where `header_dataset` gives a dataset,
    pydicom reads the file too and every element's value (or conversion error) is the same; it never raises."""
    import io

    from medview.core.dicom.header import header_dataset

    rng = random.Random(7)
    files = [p for p in _real_files() if 400 < os.path.getsize(p) < 3_000_000]
    lean_read = 0
    for _ in range(400):
        data = bytearray(Path(rng.choice(files)).read_bytes())
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(128, min(len(data), 2000))] = rng.randrange(256)
        if not looks_like_dicom(bytes(data[:132])):
            continue
        lean = header_dataset(io.BytesIO(bytes(data)), len(data))
        if lean is None:
            continue
        lean_read += 1
        with scan_mod.quiet_pydicom():
            slow = pydicom.dcmread(io.BytesIO(bytes(data)), stop_before_pixels=True, force=data[128:132] != b"DICM")
            assert list(lean.keys()) == list(slow.keys())
            for tag in slow.keys():
                got, want = _element_or_error(lean, tag), _element_or_error(slow, tag)
                assert (got if isinstance(got, str) else repr(got.value)) == \
                    (want if isinstance(want, str) else repr(want.value))
    assert lean_read > 50
