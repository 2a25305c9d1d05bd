"""Export of review results: CSV and JSON rows, the DICOM SR read back, and --anonymize on each."""

from __future__ import annotations

import csv
import json
import stat

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import Comprehensive3DSRStorage

from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.errors import UsageError
from medview.core.review.anonymize import Pseudonymizer
from medview.core.review.export import (
    COLUMNS,
    ExportCancelled,
    case_file_stems,
    collect_cases,
    export_cases,
    parse_formats,
    safe_file_stem,
)
from medview.core.review.sr import FLAGGED, VERDICT, NothingToReport, build_sr, finding_code
from medview.core.review.store import ReviewStore
from tests.review_data import MODEL, make_reviewed_source, source_date_left

CR_CLASS = "1.2.840.10008.5.1.4.1.1.1"


@pytest.fixture
def reviewed(tmp_path):
    src = make_reviewed_source(tmp_path / "src")
    studies = build_studies(scan([str(src.root)], use_cache=False).instances)
    with ReviewStore() as store:
        records = collect_cases(studies, store)
        signed_at = store.case(src.case_a["study"]).signed_off_at
    return src, records, signed_at


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_parse_formats():
    assert parse_formats("csv, JSON,csv") == ["csv", "json"]
    with pytest.raises(UsageError, match="xls"):
        parse_formats("csv,xls")


def test_case_files_are_named_for_a_person_and_safe_on_every_file_system(reviewed):
    from dataclasses import replace

    src, records, _ = reviewed
    a = next(r for r in records if r.study_uid == src.case_a["study"])
    assert case_file_stems([a], None) == {a.study_uid: "Doe_Jane_2024-03-10_ACC-PAT-4711"}
    anon = Pseudonymizer()
    [pseudonymous] = case_file_stems([a], anon).values()
    assert pseudonymous.startswith(anon.patient("PAT-4711") + "_") and "Doe" not in pseudonymous
    assert "2024-03-10" not in pseudonymous and a.study_uid not in pseudonymous
    odd = replace(a, patient_name="O'Brien/Müller^Anne Marie", accession_number="A:1?*")
    assert case_file_stems([odd], None)[a.study_uid] == "O_Brien_Müller_Anne_Marie_2024-03-10_A_1"
    assert safe_file_stem("con") == "_con" and safe_file_stem("..", "/") == ""  # Windows device names, nothing
    assert len(safe_file_stem("x" * 500)) <= 80
    # two studies of the patient on one day without accession numbers: two names
    twin = replace(a, study_uid=a.study_uid + ".2", accession_number="")
    stems = case_file_stems([replace(a, accession_number=""), twin], None)
    assert len(set(stems.values())) == 2 and all(v.startswith("Doe_Jane_2024-03-10_") for v in stems.values())


def test_progress_counts_to_the_end_and_a_cancelled_export_leaves_nothing(reviewed, tmp_path):
    src, records, _ = reviewed
    seen = []
    written = export_cases(records, tmp_path / "all", ["csv", "json", "sr"], progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == list(range(1, len(seen) + 1))
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == sorted(p.name for p in written)  # no staging left

    out = tmp_path / "cancelled"
    steps = []
    with pytest.raises(ExportCancelled):
        export_cases(records, out, ["csv", "json", "sr"], progress=lambda d, t: steps.append(d),
                     cancelled=lambda: len(steps) >= 4)  # after the CSV, the JSON and an SR were made
    assert list(out.iterdir()) == []  # not the files made before the cancel, no hidden folder either


def test_only_cases_with_review_data_are_exported(reviewed):
    src, records, _ = reviewed
    assert {r.study_uid for r in records} == {src.case_a["study"], src.case_b["study"]}


def test_csv_and_json_one_row_per_finding(reviewed, tmp_path):
    src, records, signed_at = reviewed
    out = tmp_path / "out"
    written = export_cases(records, out, ["csv", "json"])
    assert sorted(p.name for p in written) == ["review_findings.csv", "review_findings.json"]
    rows = _read_csv(out / "review_findings.csv")
    assert list(rows[0]) == COLUMNS and len(rows) == 4
    by = {(r["patient_id"], r["finding"]): r for r in rows}
    a = by[("PAT-4711", "nodule")]
    assert a["study_uid"] == src.case_a["study"] and a["patient_name"] == "Doe^Jane"
    assert a["accession_number"] == "ACC-PAT-4711" and a["study_date"] == "20240310"
    assert (a["model"], a["model_version"], a["model_checksum"]) == (
        MODEL["model_name"], MODEL["model_version"], MODEL["model_checksum"])
    assert float(a["score"]) == pytest.approx(0.87) and float(a["threshold"]) == 0.5 and a["flagged"] == "true"
    assert (a["verdict"], a["verdict_by"], a["reviewer"]) == ("agree", "Dr Ada", "Dr Ada")
    assert a["case_status"] == "reviewed" and a["signed_off_at"] == signed_at and a["key_image"] == "true"
    b_eff = by[("PAT-0815", "effusion")]
    assert b_eff["verdict"] == "" and b_eff["flagged"] == "true" and b_eff["case_status"] == "in progress"
    assert by[("PAT-0815", "nodule")]["verdict"] == "disagree"

    doc = json.loads((out / "review_findings.json").read_text(encoding="utf-8"))
    assert doc["anonymized"] is False and "Research use only" in doc["notice"]
    assert len(doc["findings"]) == 4
    j = next(r for r in doc["findings"] if r["patient_id"] == "PAT-4711" and r["finding"] == "nodule")
    assert j["score"] == pytest.approx(0.87) and j["flagged"] is True and j["verdict"] == "agree"
    case_a = next(c for c in doc["cases"] if c["study_uid"] == src.case_a["study"])
    assert case_a["note"] == "Nodule right upper zone, CT advised."
    assert case_a["key_images"] == [{"series_uid": src.case_a["study"] + ".1",
                                     "sop_instance_uid": src.case_a["sop"], "frame": 0}]


def test_anonymized_csv_json_use_stable_pseudonyms(reviewed, tmp_path, medview_home):
    src, records, _ = reviewed
    export_cases(records, tmp_path / "x1", ["csv", "json"], anonymize=True)
    export_cases(records, tmp_path / "x2", ["csv", "json"], anonymize=True)
    secret = medview_home / "anonymize.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_bytes()) == 32

    for name in ("review_findings.csv", "review_findings.json"):
        data = (tmp_path / "x1" / name).read_bytes()
        for identity in (b"Doe", b"Jane", b"Roe", b"PAT-4711", b"PAT-0815", b"ACC-PAT", src.case_a["study"].encode(),
                         src.case_a["sop"].encode(), b"20240310", b"CT advised"):
            assert identity not in data, (name, identity)
    rows1 = _read_csv(tmp_path / "x1" / "review_findings.csv")
    rows2 = _read_csv(tmp_path / "x2" / "review_findings.csv")
    pseudonyms = {r["patient_id"] for r in rows1}
    assert pseudonyms == {r["patient_id"] for r in rows2} and len(pseudonyms) == 2
    anon = Pseudonymizer()
    expected = anon.patient("PAT-4711")
    a = next(r for r in rows1 if r["patient_id"] == expected and r["finding"] == "nodule")
    assert a["patient_name"] == expected and a["study_uid"] == anon.uid(src.case_a["study"])
    assert a["verdict"] == "agree" and a["study_date"] == anon.date("20240310", "PAT-4711") != "20240310"
    doc = json.loads((tmp_path / "x1" / "review_findings.json").read_text())
    assert doc["anonymized"] is True and all("note" not in c for c in doc["cases"])


def test_pseudonyms_depend_on_the_install_secret():
    a, b = Pseudonymizer(b"1" * 32), Pseudonymizer(b"2" * 32)
    assert a.patient("PAT-1") == Pseudonymizer(b"1" * 32).patient("PAT-1") != b.patient("PAT-1")
    assert a.patient("PAT-1") != a.patient("PAT-2")
    # the same patient's studies keep their interval; the date itself moves
    assert a.date("20240110", "PAT-1") < a.date("20240115", "PAT-1")
    assert a.day_shift("PAT-1") == a.day_shift("PAT-1") >= 365
    assert a.uid("1.2.3").startswith("2.25.") and len(a.uid("1.2.3")) <= 64


def _groups(ds):
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    return {g.finding_type.meaning: g for g in sr.content.get_image_measurement_groups()}


def test_sr_read_back(reviewed, tmp_path):
    src, records, signed_at = reviewed
    export_cases(records, tmp_path / "sr", ["sr"])
    a = pydicom.dcmread(tmp_path / "sr" / f"{src.case_a['files']}_SR.dcm")
    b = pydicom.dcmread(tmp_path / "sr" / f"{src.case_b['files']}_SR.dcm")

    assert a.SOPClassUID == Comprehensive3DSRStorage
    assert a.StudyInstanceUID == src.case_a["study"] and a.PatientID == "PAT-4711" and a.PatientName == "Doe^Jane"
    assert a.PatientBirthDate == "19600203" and a.AccessionNumber == "ACC-PAT-4711"
    # references the evaluated image
    [evidence_series] = a.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    [ref] = evidence_series.ReferencedSOPSequence
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (CR_CLASS, src.case_a["sop"])
    # signed off: VERIFIED by the reviewer at the sign-off time; B is not
    assert (a.VerificationFlag, a.CompletionFlag, a.PreliminaryFlag) == ("VERIFIED", "COMPLETE", "FINAL")
    observer = a.VerifyingObserverSequence[0]
    assert str(observer.VerifyingObserverName) == "Dr Ada^"
    assert observer.VerificationDateTime.startswith(signed_at[:10].replace("-", ""))
    assert b.VerificationFlag == "UNVERIFIED" and "VerifyingObserverSequence" not in b

    groups = _groups(a)
    nodule = groups["nodule"]
    assert nodule.finding_type == finding_code("nodule")
    [prob] = nodule.get_measurements(name=codes.DCM.Probability)
    assert prob.value == pytest.approx(0.87)
    evaluations = {e.name.value: e.value for e in nodule.get_qualitative_evaluations()}
    assert evaluations[FLAGGED.value] == codes.SCT.Present and evaluations[VERDICT.value].value == "agree"
    assert [s.referenced_sop_instance_uid for s in nodule.source_images] == [src.case_a["sop"]]
    effusion = {e.name.value: e.value for e in groups["effusion"].get_qualitative_evaluations()}
    assert effusion[FLAGGED.value] == codes.SCT.Absent and VERDICT.value not in effusion
    b_nodule = {e.name.value: e.value for e in _groups(b)["nodule"].get_qualitative_evaluations()}
    assert b_nodule[VERDICT.value].value == "disagree"
    # the model (TID 4019 Algorithm Identification): name, version, and its checksum and threshold as parameters
    algo = _text_items(a)
    assert algo["111001"] == {MODEL["model_name"]} and algo["111003"] == {MODEL["model_version"]}
    assert {f"sha256={MODEL['model_checksum']}", "threshold=0.5", "threshold=0.6"} <= algo["111002"]


def _text_items(ds, found=None):
    """Concept code value -> TEXT values of every content item in the SR tree."""
    found = {} if found is None else found
    for item in ds.get("ContentSequence", []):
        if item.ValueType == "TEXT":
            found.setdefault(item.ConceptNameCodeSequence[0].CodeValue, set()).add(item.TextValue)
        _text_items(item, found)
    return found


def test_sr_anonymized_basic_profile(reviewed, tmp_path):
    src, records, _ = reviewed
    export_cases(records, tmp_path / "s1", ["sr"], anonymize=True)
    export_cases(records, tmp_path / "s2", ["sr"], anonymize=True)
    anon = Pseudonymizer()
    shifted = anon.date("20240310", "PAT-4711")
    name = f"{anon.patient('PAT-4711')}_{shifted[:4]}-{shifted[4:6]}-{shifted[6:]}_{anon.accession('ACC-PAT-4711')}_SR.dcm"
    raw = (tmp_path / "s1" / name).read_bytes()
    for identity in (b"Doe", b"PAT-4711", b"ACC-PAT", b"19600203", b"Dr Ada", src.case_a["study"].encode(),
                     src.case_a["sop"].encode()):
        assert identity not in raw, identity
    a1 = pydicom.dcmread(tmp_path / "s1" / name)
    assert a1.StudyDate == shifted and source_date_left(a1, "20240310") == []
    a2 = pydicom.dcmread(tmp_path / "s2" / name)
    assert a1.PatientName.family_name == a1.PatientID == anon.patient("PAT-4711")
    assert a1.PatientIdentityRemoved == "YES" and a1.PatientBirthDate == ""
    assert {i.CodeValue for i in a1.DeidentificationMethodCodeSequence} == {"113100", "113107"}
    assert a1.StudyDate == anon.date("20240310", "PAT-4711")
    assert a1.StudyInstanceUID == a2.StudyInstanceUID == anon.uid(src.case_a["study"])
    assert a1.SOPInstanceUID != a2.SOPInstanceUID and a1.SeriesInstanceUID != a2.SeriesInstanceUID  # fresh
    # New UIDs are "2.25." UIDs: under a shared root (pydicom's) a random suffix could begin with a source UID.
    assert a1.SOPInstanceUID.startswith("2.25.") and a1.SeriesInstanceUID.startswith("2.25.")
    ref = a1.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == anon.uid(src.case_a["sop"])
    assert a1.VerificationFlag == "VERIFIED"
    assert str(a1.VerifyingObserverSequence[0].VerifyingObserverName).startswith("READER-")
    assert _groups(a1)["nodule"].source_images[0].referenced_sop_instance_uid == anon.uid(src.case_a["sop"])


def test_opened_only_case_is_not_exported_and_no_sr_without_findings(tmp_path):
    src = make_reviewed_source(tmp_path / "src")
    studies = build_studies(scan([str(src.root)], use_cache=False).instances)
    with ReviewStore() as store:
        store.open_case(src.ct_study)  # opened, nothing decided: not a review
        assert src.ct_study not in {r.study_uid for r in collect_cases(studies, store)}
        store.sign_off(src.ct_study)
        [ct] = [r for r in collect_cases(studies, store) if r.study_uid == src.ct_study]
    written = export_cases([ct], tmp_path / "o", ["csv", "sr"])
    assert [p.name for p in written] == ["review_findings.csv"]  # TID 1500 needs at least one finding
    [row] = _read_csv(tmp_path / "o" / "review_findings.csv")
    assert row["study_uid"] == src.ct_study and row["case_status"] == "reviewed" and row["finding"] == ""
    with pytest.raises(NothingToReport):
        build_sr(ct)
