"""AI objects that arrive with a study: a SEG's masks on the right pixels of the right source image, a TID 1500
SR's findings with their measurements, coordinates and origin; objects of other kinds or broken ones named in
words while the rest still reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.sr.codedict import codes

from medview.core.dicom.incoming import read_incoming
from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.review.export import collect_cases, export_cases
from medview.core.review.store import ReviewStore
from tests.factories import write_image
from tests.review_data import (
    CORRECTED_HEART,
    CTR_HEART,
    CTR_THORAX,
    MODEL,
    add_corrected_ctr,
    ctr_prediction,
    make_reviewed_source,
)

ALGORITHM = f"{MODEL['model_name']} {MODEL['model_version']}"


def exported_objects(root: Path, out: Path) -> tuple[dict, list[Path]]:
    """Case A of the review data, with medview's own SR and SEG of it written into `out`."""
    src = make_reviewed_source(root)
    add_corrected_ctr(src)
    studies = build_studies(scan([str(src.root)], use_cache=False).instances)
    with ReviewStore() as store:
        record = next(r for r in collect_cases(studies, store) if r.study_uid == src.case_a["study"])
    written = export_cases([record], out, ["sr", "seg"], predictions=lambda _r: {(src.case_a["sop"], 0): ctr_prediction()})
    return src.case_a, [p for p in written if p.name.endswith(("_SR.dcm", "_SEG.dcm"))]


def study_of(folder: Path):
    [study] = build_studies(scan([str(folder)], use_cache=False).instances)
    return study


@pytest.fixture
def case_with_objects(tmp_path):
    """A folder with case A's radiograph and its exported SR and SEG beside it, as another system sends them."""
    case, objects = exported_objects(tmp_path / "src", tmp_path / "out")
    folder = tmp_path / "received"
    folder.mkdir()
    shutil.copy(tmp_path / "src" / "PAT-4711" / "cxr.dcm", folder / "cxr.dcm")
    for path in objects:
        shutil.copy(path, folder / path.name.rsplit("_", 1)[1])  # SR.dcm, SEG.dcm
    return case, folder


def test_a_segmentation_is_an_object_of_its_study_not_an_image_series(case_with_objects):
    case, folder = case_with_objects
    study = study_of(folder)
    assert [s.instances[0].sop_instance_uid for s in study.stacks] == [case["sop"]]  # the radiograph only
    assert sorted(o.modality for o in study.objects) == ["SEG", "SR"]


def test_seg_masks_land_on_their_source_image(case_with_objects):
    case, folder = case_with_objects
    found = read_incoming(study_of(folder).objects)
    assert not found.problems
    masks = found.masks_on(case["sop"], 0)
    assert [m.label for m in masks] == ["heart", "lungs", "thorax"]
    heart = masks[0].mask
    assert heart.dtype == np.uint8 and heart.shape == (64, 64)
    assert heart[24:48, 20:44].all() and heart.sum() == 24 * 24  # the model's 16x16 grid cell 6:12, 5:11
    origin = masks[0].origin
    assert origin.kind == "SEG" and origin.algorithm == ALGORITHM and origin.manufacturer == "medview"
    assert ALGORITHM in origin.text() and "medview" in origin.text()
    assert found.masks_on("1.2.3.4", 0) == []


def test_sr_findings_with_measurements_and_coordinates(case_with_objects):
    case, folder = case_with_objects
    found = read_incoming(study_of(folder).objects)
    on_image = found.findings_on(case["sop"], 0)
    cardiomegaly = next(f for f in on_image if f.finding == "Cardiomegaly")
    assert cardiomegaly.origin.kind == "SR" and cardiomegaly.algorithm == ALGORITHM
    assert ALGORITHM in cardiomegaly.origin.text()
    ratios = [m for m in cardiomegaly.measurements if m.name == "Cardiothoracic ratio"]
    assert [m.value for m in ratios] == pytest.approx([20 / 48, 24 / 48])
    assert [m.method for m in ratios] == ["Automated", "Manual"]
    model, corrected = ratios
    assert model.text() == "Cardiothoracic ratio 0.417"
    # DICOM image coordinates back to pixel indices: exactly the model's lines
    assert [g.kind for g in model.graphics] == ["POLYLINE", "POLYLINE"]
    assert np.allclose(model.graphics[0].points, CTR_HEART) and np.allclose(model.graphics[1].points, CTR_THORAX)
    assert np.allclose(corrected.graphics[0].points, CORRECTED_HEART)
    assert model.algorithm == ALGORITHM and corrected.algorithm == "" and cardiomegaly.origin.person == "Demo Ines"
    assert {(g.sop_instance_uid, g.frame) for g in model.graphics} == {(case["sop"], 0)}
    probability = next(m for m in cardiomegaly.measurements if m.name == "Probability")
    assert probability.value == pytest.approx(0.81) and not probability.graphics
    nodule = next(f for f in found.findings if f.finding == "nodule")
    assert nodule.images == [(case["sop"], 0)] and nodule.is_on(case["sop"], 0)
    assert ("Reviewer verdict", "Reviewer agrees with AI finding") in nodule.evaluations


def _highdicom_seg(source: pydicom.Dataset) -> pydicom.Dataset:
    """A FRACTIONAL SEG of two segments made by highdicom directly, as another vendor's tool would."""
    planes = np.zeros((1, source.Rows, source.Columns, 2), np.float32)
    planes[0, 2:5, 3:9, 0] = 1.0      # "Nodule": rows 2-4, columns 3-8
    planes[0, 10:12, 0:2, 1] = 0.75   # "Effusion": a small corner
    planes[0, 12, 0, 1] = 0.25        # below half: outside
    algorithm = hd.AlgorithmIdentificationSequence(name="LungNet", family=codes.DCM.ArtificialIntelligence,
                                                   version="3.1")
    segments = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=label, segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=code, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm) for n, label, code in ((1, "Nodule", codes.SCT.Nodule),
                                                                    (2, "Effusion", codes.SCT.PleuralEffusion))]
    return hd.seg.Segmentation(
        source_images=[source], pixel_array=planes, segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        segment_descriptions=segments, series_instance_uid=hd.UID(), series_number=40, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="Acme AI", manufacturer_model_name="LungNet", software_versions="3.1",
        device_serial_number="42", omit_empty_frames=False)


def test_highdicom_fractional_seg_of_another_vendor(tmp_path):
    image = write_image(tmp_path / "in" / "cxr.dcm", modality="CR", rows=16, cols=16, position=None,
                        orientation=None, slice_thickness=None,
                        extra={"PatientBirthDate": "19500101", "PatientSex": "M", "ReferringPhysicianName": ""})
    source = pydicom.dcmread(image)
    seg = _highdicom_seg(source)
    seg.save_as(tmp_path / "in" / "seg.dcm", enforce_file_format=True)
    found = read_incoming(study_of(tmp_path / "in").objects)
    assert not found.problems
    nodule, effusion = found.masks_on(source.SOPInstanceUID, 0)
    assert (nodule.label, effusion.label) == ("Nodule", "Effusion")
    assert nodule.mask[2:5, 3:9].all() and nodule.mask.sum() == 18
    assert effusion.mask.sum() == 4 and not effusion.mask[12, 0]
    assert nodule.origin.algorithm == "LungNet 3.1" and nodule.origin.manufacturer == "Acme AI"
    assert found.segments(nodule.origin) == [(1, "Nodule"), (2, "Effusion")]


def test_other_reports_and_broken_objects_are_named_and_the_rest_still_reads(case_with_objects, tmp_path):
    case, folder = case_with_objects
    shutil.copy(get_testdata_file("test-SR.dcm"), folder / "diagnosis_sr.dcm")  # a Comprehensive SR, not TID 1500
    broken = folder / "bad_seg.dcm"
    ds = pydicom.dcmread(folder / "SEG.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    del ds.SegmentSequence[0].SegmentNumber  # a segment without its number: unusable
    ds.save_as(broken, enforce_file_format=True)
    objects = [o for study in build_studies(scan([str(folder)], use_cache=False).instances) for o in study.objects]
    found = read_incoming(objects)
    problems = {Path(p.file).name: p.error for p in found.problems}
    assert set(problems) == {"diagnosis_sr.dcm", "bad_seg.dcm"}
    assert "not a measurement report" in problems["diagnosis_sr.dcm"] and "Diagnosis" in problems["diagnosis_sr.dcm"]
    assert problems["bad_seg.dcm"].startswith("segmentation cannot be read")
    assert all("\n" not in p for p in problems.values())
    # the good SEG and the SR are still there
    assert [m.label for m in found.masks_on(case["sop"], 0)] == ["heart", "lungs", "thorax"]
    assert any(f.finding == "Cardiomegaly" for f in found.findings)
