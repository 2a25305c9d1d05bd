"""`medview demo-data` (SPEC section 5): valid Part-10 files, labels that live in the pixels, determinism."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from medview.cli import main
from medview.core.demo import (
    CTR_THRESHOLD,
    FINDING,
    MARKER,
    case_spec,
    generate_demo,
    make_chest_radiograph,
    prior_spec,
    radiograph_for_case,
    radiograph_for_prior,
    write_ct_series,
)
from medview.core.demo.writer import CR_STORAGE, CT_STORAGE, DX_PRESENTATION_STORAGE

CASES, CT_SLICES, SEED = 6, 8, 11


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    summary = generate_demo(out, cases=CASES, seed=SEED, ct_slices=CT_SLICES, priors=True)
    return out, summary


def _read(path: Path):
    """dcmread + pixel_array with every warning an error: the files must be clean for pydicom."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = pydicom.dcmread(path)
        return ds, ds.pixel_array


def _csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_file_is_clean_part10(demo):
    out, summary = demo
    files = sorted(out.rglob("*.dcm"))
    assert len(summary.priors) == 2  # PAT0001 and PAT0004
    assert len(files) == CASES + 2 + CT_SLICES + 1  # radiographs, priors, axial CT, topogram
    for path in files:
        raw = path.read_bytes()
        assert raw[128:132] == b"DICM", path
        ds, arr = _read(path)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert arr.shape == (ds.Rows, ds.Columns)
        assert ds.PatientID and ds.PatientName and ds.StudyDate and ds.AccessionNumber
        assert ds.PatientSex in ("F", "M") and re.fullmatch(r"\d{3}Y", ds.PatientAge)
        # folder layout OUT/<patient>/<study>/<series>/IMnnnn.dcm, names never in paths
        rel = path.relative_to(out).as_posix()
        assert re.fullmatch(r"PAT\d{4}/ST\d{2}/SE\d{2}/IM\d{4}\.dcm", rel), rel
        assert str(ds.PatientName).split("^")[0] not in rel


def test_radiographs_cr_monochrome1_dx_monochrome2(demo):
    out, summary = demo
    seen = set()
    for path in summary.radiographs:
        ds, arr = _read(path)
        assert ds.BitsAllocated == 16 and ds.BitsStored == 12 and int(arr.max()) <= 4095
        assert min(ds.Rows, ds.Columns) >= 1024 and max(ds.Rows, ds.Columns) <= 1536
        assert float(ds.PixelSpacing[0]) > 0 and float(ds.ImagerPixelSpacing[0]) > 0
        assert float(ds.WindowWidth) > 1
        if ds.Modality == "CR":
            assert ds.SOPClassUID == CR_STORAGE and ds.PhotometricInterpretation == "MONOCHROME1"
        else:
            assert ds.Modality == "DX" and ds.SOPClassUID == DX_PRESENTATION_STORAGE
            assert ds.PhotometricInterpretation == "MONOCHROME2"
        seen.add(ds.Modality)
        # MONOCHROME1 stores the phantom inverted (high = dark), so both display the same film
        phantom, _ = radiograph_for_case(SEED, int(ds.PatientID[3:]) - 1)
        expected = 4095 - phantom if ds.PhotometricInterpretation == "MONOCHROME1" else phantom
        assert np.array_equal(arr, expected)
    assert seen == {"CR", "DX"}, "the demo mixes CR (MONOCHROME1) and DX (MONOCHROME2)"


def test_ground_truth_matches_files_and_params(demo):
    out, summary = demo
    gt = _csv(out / "ground_truth.csv")
    params = _csv(out / "phantom_params.csv")
    assert list(gt[0]) == ["study_uid", "sop_instance_uid", "finding", "label", "ctr"]
    assert len(gt) == len(params) == CASES + len(summary.priors) == len(summary.radiographs) + 2
    by_sop = {r["sop_instance_uid"]: r for r in params}
    for row in gt:
        p = by_sop[row["sop_instance_uid"]]
        ds, _ = _read(out / p["file"])
        assert ds.StudyInstanceUID == row["study_uid"] and ds.SOPInstanceUID == row["sop_instance_uid"]
        assert row["finding"] == FINDING and float(row["ctr"]) == float(p["ctr"])
        assert int(row["label"]) == int(float(p["ctr"]) > CTR_THRESHOLD) == int(p["label"])


def test_priors_are_earlier_studies_of_the_same_patient_with_their_own_truth(demo):
    """Every third patient has a prior radiograph: same patient and modality, earlier date, own study, a slightly
    smaller heart, its own pixels; the current radiographs are the same as without priors."""
    out, summary = demo
    truth = {r["sop_instance_uid"]: r for r in _csv(out / "ground_truth.csv")}
    current = {ds.PatientID: ds for ds in (_read(p)[0] for p in summary.radiographs)}
    assert [p.relative_to(out).parts[:2] for p in summary.priors] == [("PAT0001", "ST02"), ("PAT0004", "ST02")]
    for path, label in zip(summary.priors, summary.prior_labels):
        ds, arr = _read(path)
        now = current[ds.PatientID]
        index = int(ds.PatientID[3:]) - 1
        assert (ds.PatientName, ds.PatientBirthDate, ds.Modality, ds.BodyPartExamined) == (
            now.PatientName, now.PatientBirthDate, now.Modality, now.BodyPartExamined)
        assert ds.StudyDate < now.StudyDate and ds.StudyInstanceUID != now.StudyInstanceUID
        assert ds.AccessionNumber != now.AccessionNumber
        assert prior_spec(SEED, index).target_ctr < case_spec(SEED, index).target_ctr
        row = truth[ds.SOPInstanceUID]
        assert row["study_uid"] == ds.StudyInstanceUID and int(row["label"]) == label
        assert float(row["ctr"]) < float(truth[now.SOPInstanceUID]["ctr"])
        phantom, params = radiograph_for_prior(SEED, index)
        assert params["label"] == label
        assert np.array_equal(arr, 4095 - phantom if ds.PhotometricInterpretation == "MONOCHROME1" else phantom)
        assert phantom.shape != radiograph_for_case(SEED, index)[0].shape or not np.array_equal(
            phantom, radiograph_for_case(SEED, index)[0])
    assert prior_spec(SEED, 1) is None and prior_spec(SEED, 2) is None


def test_no_tag_leaks_the_label(demo):
    """Descriptions are the same whatever the label, and no text tag names the finding."""
    out, summary = demo
    descriptions = set()
    for path in summary.radiographs:
        ds, _ = _read(path)
        descriptions.add((ds.StudyDescription, ds.SeriesDescription, ds.get("ImageComments", "")))
        for elem in ds.iterall():
            if elem.VR in ("LO", "SH", "ST", "LT", "UT", "CS", "PN") and elem.value:
                assert "cardio" not in str(elem.value).lower()
                assert "megal" not in str(elem.value).lower()
    assert len(descriptions) == 1
    assert 0 < summary.positives < CASES


def test_labels_balanced_and_borderline_on_both_sides():
    for seed in (0, 1, 7):
        labels = [case_spec(seed, i).label for i in range(20)]
        assert 6 <= sum(labels) <= 14
    specs = [case_spec(5, i) for i in range(80)]
    assert any(0.47 <= s.target_ctr < 0.5 for s in specs)
    assert any(0.5 < s.target_ctr <= 0.53 for s in specs)
    assert all((s.target_ctr > CTR_THRESHOLD) == bool(s.label) for s in specs)
    normals = [s.target_ctr for s in specs if not s.label]
    assert 0.37 <= min(normals) and max(normals) < 0.5


def test_same_seed_same_pixels_other_seed_other_pixels():
    a, pa = radiograph_for_case(3, 1)
    b, pb = radiograph_for_case(3, 1)
    c, _ = radiograph_for_case(4, 1)
    assert np.array_equal(a, b) and pa == pb
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_same_seed_same_files(tmp_path):
    s1 = generate_demo(tmp_path / "a", cases=2, seed=9, ct_slices=2)
    s2 = generate_demo(tmp_path / "b", cases=2, seed=9, ct_slices=2)
    s3 = generate_demo(tmp_path / "c", cases=2, seed=10, ct_slices=0)
    with_priors = generate_demo(tmp_path / "d", cases=2, seed=9, ct_slices=0, priors=True)
    assert len(with_priors.priors) == 1 and len(s1.priors) == 0
    assert [_read(p)[0].SOPInstanceUID for p in with_priors.radiographs] == [
        _read(p)[0].SOPInstanceUID for p in s1.radiographs]  # priors leave the current cases as they were
    for p1, p2 in zip(s1.radiographs + s1.ct_files, s2.radiographs + s2.ct_files):
        d1, a1 = _read(p1)
        d2, a2 = _read(p2)
        assert d1.SOPInstanceUID == d2.SOPInstanceUID and np.array_equal(a1, a2)
    assert _read(s1.radiographs[0])[0].SOPInstanceUID != _read(s3.radiographs[0])[0].SOPInstanceUID


@pytest.mark.parametrize("ctr", [0.42, 0.497, 0.503, 0.6])
def test_heart_in_pixels_matches_ctr(ctr):
    """The heart silhouette drawn in the image has the width the parameters report (within 1.5 grid px)."""
    rng = np.random.default_rng([21, int(ctr * 1000)])
    pixels, p = make_chest_radiograph(rng, ctr, return_masks=True)
    assert abs(p["ctr"] - ctr) < 0.002 and p["label"] == int(ctr > 0.5)
    heart, lung, u = p["heart_mask"] > 0.5, p["lung_mask"] > 0.5, p["grid_u"]
    width = u[heart].max() - u[heart].min()
    grid_mm = p["pixel_spacing"] * 2
    assert abs(width - p["heart_width_mm"]) < 1.5 * grid_mm
    assert abs(width / p["thoracic_width_mm"] - p["ctr"]) < 0.006
    # the heart is the bright (dense) silhouette between darker lungs in the stored MONOCHROME2 pixels
    small = pixels[::2, ::2][: heart.shape[0], : heart.shape[1]]
    assert small[heart].mean() > small[lung].mean() + 300


def test_ct_hounsfield_and_geometry(demo):
    out, summary = demo
    assert len(summary.ct_files) == CT_SLICES
    series = [_read(p) for p in summary.ct_files]
    zs = []
    for ds, arr in series:
        assert ds.SOPClassUID == CT_STORAGE and ds.Rows == ds.Columns == 512
        assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
        assert list(ds.ImageOrientationPatient) == [1, 0, 0, 0, 1, 0]
        assert float(ds.SliceLocation) == float(ds.ImagePositionPatient[2])
        assert len(ds.WindowCenter) == 2  # soft tissue and lung
        zs.append(float(ds.ImagePositionPatient[2]))
    spacing = float(series[0][0].SliceThickness)
    assert np.allclose(np.diff(zs), -spacing, atol=1e-3)
    assert len({d.SeriesInstanceUID for d, _ in series}) == 1
    # a mid-chest slice: air outside, lungs, a dense vertebra behind the centre, fat under the skin
    ds, arr = series[CT_SLICES // 2]
    hu = arr.astype(np.float32) - 1024
    ps = float(ds.PixelSpacing[0])
    c = 255.5

    def at(x_mm, y_mm, r=3):
        i, j = int(c + y_mm / ps), int(c + x_mm / ps)
        return float(np.median(hu[i - r: i + r + 1, j - r: j + r + 1]))

    assert at(0, -172) < -900  # air in front of the patient (the field is +-179 mm)
    for side in (-1, 1):  # both lungs: mostly aerated (-900..-700), a vessel here and there
        i, j = int(c + 25 / ps), int(c + side * 90 / ps)
        box = hu[i - 20: i + 21, j - 20: j + 21]
        assert (box < -500).mean() > 0.7 and -950 < np.median(box) < -650
    spine = hu[int(c + 20 / ps): int(c + 100 / ps), int(c - 20 / ps): int(c + 20 / ps)]
    assert spine.max() > 600 and np.percentile(spine, 75) > 150  # vertebral cortex and cancellous bone
    column = np.median(hu[:, int(c) - 30: int(c) - 10], axis=1)  # just right of the midline, front to back
    skin = int(np.argmax(column > -500))
    assert -160 < column[skin + int(5 / ps)] < -40  # subcutaneous fat under the skin
    assert hu.min() >= -1024 and hu.max() <= 3071


def test_ct_localizer_has_its_own_orientation(demo):
    out, summary = demo
    ds, arr = _read(summary.localizer)
    axial, _ = _read(summary.ct_files[0])
    assert "LOCALIZER" in ds.ImageType
    assert list(ds.ImageOrientationPatient) == [1, 0, 0, 0, 0, -1]
    assert ds.StudyInstanceUID == axial.StudyInstanceUID and ds.SeriesInstanceUID != axial.SeriesInstanceUID
    assert ds.FrameOfReferenceUID == axial.FrameOfReferenceUID
    assert arr.std() > 50  # a real projection, not a blank


def test_write_ct_series_positions(tmp_path):
    paths = write_ct_series(tmp_path / "bench", 5, rows=128, cols=96, seed=2)
    assert [p.name for p in paths] == [f"IM{i:04d}.dcm" for i in range(1, 6)]
    dss = [_read(p)[0] for p in paths]
    assert {(d.Rows, d.Columns) for d in dss} == {(128, 96)}
    z = [float(d.ImagePositionPatient[2]) for d in dss]
    assert np.allclose(np.diff(z), -float(dss[0].SpacingBetweenSlices))
    assert len({d.SOPInstanceUID for d in dss}) == 5


def test_command_exit_codes_and_overwrite_rules(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo-data", str(out), "--cases", "3", "--ct-slices", "2"]) == 0
    assert (out / "PAT0003").is_dir() and (out / "PAT0004" / "ST01" / "SE02").is_dir()
    assert (out / "PAT0001" / "ST02").is_dir() and not (out / "PAT0002" / "ST02").exists()  # priors
    # a previous demo output is replaced, leftovers included
    assert main(["demo-data", str(out), "--cases", "1", "--ct-slices", "0", "--seed", "4"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "PAT0001", "ground_truth.csv", MARKER, "phantom_params.csv"]
    # a run cut short (only the partial marker and some cases) is replaced as well
    (out / MARKER).unlink()
    (out / "medview-demo.partial.json").write_text('{"entries": ["PAT0001", "PAT0002"]}')
    (out / "PAT0002").mkdir()
    assert main(["demo-data", str(out), "--cases", "1", "--ct-slices", "0"]) == 0
    assert not (out / "PAT0002").exists() and (out / MARKER).is_file()
    assert not (out / "medview-demo.partial.json").exists()
    # a folder with someone else's files is never touched
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert main(["demo-data", str(foreign), "--cases", "1"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert main(["demo-data", str(tmp_path / "x"), "--cases", "-1"]) == 2
    assert main(["demo-data", str(foreign / "notes.txt"), "--cases", "1"]) == 2  # a file, not a folder


@pytest.mark.parametrize("where", ["below_a_file", "proc"])
def test_out_that_cannot_be_created_is_exit_2_one_line(tmp_path, capsys, where):
    if where == "proc":
        if not os.path.isdir("/proc"):
            pytest.skip("no /proc here")
        out = "/proc/x"
    else:
        (tmp_path / "a_file").write_text("not a folder")
        out = str(tmp_path / "a_file" / "demo")
    capsys.readouterr()
    assert main(["demo-data", out, "--cases", "1", "--ct-slices", "0"]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"medview demo-data: {out}: folder cannot be created (")
    assert "Traceback" not in err and not os.path.exists(out)


def test_demo_data_imports_neither_qt_nor_torch(tmp_path):
    code = (
        "import sys; from medview.cli import main; "
        f"rc = main(['demo-data', {str(tmp_path / 'o')!r}, '--cases', '1', '--ct-slices', '1']); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'PySide6', 'pyqtgraph')]; "
        "print(rc, bad); sys.exit(rc or bool(bad))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
