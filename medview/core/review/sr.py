"""A DICOM Structured Report per case, in the style of the IHE AI Results (AIR) profile.

Comprehensive 3D SR (highdicom) with the TID 1500 Measurement Report: per AI finding one TID 1501 group with
the finding (model label), the model (TID 4019 Algorithm Identification: name, version, sha256 and
threshold as parameters), the score as a "Probability" measurement, whether the model flagged it (Present /
Absent), the reviewer's verdict, and the evaluated image as source (SOP Class + Instance UID, frame).
The SR is VERIFIED (with the reviewer in the Verifying Observer Sequence and the sign-off time) only when
the case was signed off; otherwise UNVERIFIED and PARTIAL. A case without AI findings gets no SR (TID 1500
needs at least one measurement group); its review is in the CSV, JSON and PDF.

Labels and verdicts have no standard codes, so they use the private coding scheme "99MEDVIEW" (PS3.16
8.2: "99" prefix); the observer of the verdicts is the reviewer (person observer context), the device
observer is the model.

Anonymised (PS3.15 Basic Application Confidentiality Profile with the Retain Longitudinal Temporal
Information Modified Dates option): patient name and ID become the stable pseudonym, birth date, referring
physician and study ID are emptied, Study/Series/SOP Instance UIDs of the referenced images are replaced by
stable derived UIDs, every date is moved back by the patient's offset, and the SR's own UIDs are fresh.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from medview.core.review.anonymize import Pseudonymizer
from medview.core.review.store import CaseStatus, Finding, Verdict

SCHEME = "99MEDVIEW"
FLAGGED = hd.sr.CodedConcept("flagged", SCHEME, "AI flagged at operating point")
VERDICT = hd.sr.CodedConcept("verdict", SCHEME, "Reviewer verdict")
VERDICT_CODES = {
    Verdict.AGREE: hd.sr.CodedConcept("agree", SCHEME, "Reviewer agrees with AI finding"),
    Verdict.DISAGREE: hd.sr.CodedConcept("disagree", SCHEME, "Reviewer disagrees with AI finding"),
}
SR_SERIES_NUMBER = 9901
ORGANIZATION = "medview"

# the patient/study attributes copied into the SR from the images (read from one file of the case)
_MODULE_TAGS = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID"]


class NothingToReport(ValueError):
    """A case without AI findings: TID 1500 needs at least one measurement group, so no SR is made."""


def finding_code(label: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(label[:16], SCHEME, label)


def _module_from_file(record) -> Dataset:
    """Patient and study attributes from the first readable image of the case (else from the index)."""
    from medview.core.dicom.pixels import read_dataset
    from medview.core.errors import DicomReadError

    for info in record.instances.values():
        try:
            ds = read_dataset(info.ref, stop_before_pixels=True)
        except DicomReadError:  # an unreadable file: try the next one
            continue
        module = Dataset()
        for tag in _MODULE_TAGS:
            if tag in ds:
                setattr(module, tag, ds[tag].value)
        return module
    ds = Dataset()
    ds.PatientName, ds.PatientID = record.patient_name, record.patient_id
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = record.study_uid, record.study_date, record.study_time
    ds.AccessionNumber = record.accession_number
    return ds


def _evidence(record, anon: Pseudonymizer | None) -> tuple[list[Dataset], dict[tuple[str, int], tuple[str, str]]]:
    """One small header dataset per referenced image (evaluated or key image), and (sop, frame) -> (class, uid)."""
    module = _module_from_file(record)
    for tag in _MODULE_TAGS:
        if tag not in module:
            setattr(module, tag, "")
    if anon is not None:
        pseudonym = anon.patient(record.patient_id, record.patient_name)
        module.PatientName = pseudonym + "^"  # one family-name component (PS3.5 6.2.1)
        module.PatientID = pseudonym
        module.PatientBirthDate = ""
        module.ReferringPhysicianName = ""
        module.StudyID = ""
        module.AccessionNumber = anon.accession(record.accession_number)
        module.StudyInstanceUID = anon.uid(record.study_uid)
    wanted = [(f.sop_instance_uid, f.series_uid) for f in record.findings]
    wanted += [(k.sop_instance_uid, k.series_uid) for k in record.case.key_images]
    evidence, refs = [], {}
    seen = set()
    for sop, series in wanted:
        if sop in seen:
            continue
        seen.add(sop)
        info = record.instances.get(sop)
        if info is None:
            raise ValueError(f"image {sop} of the review is not in the scanned folder")
        ds = Dataset()
        for tag in _MODULE_TAGS:
            setattr(ds, tag, module.get(tag, ""))
        ds.SOPClassUID = info.sop_class_uid
        ds.SOPInstanceUID = sop if anon is None else anon.uid(sop)
        ds.SeriesInstanceUID = (info.series_uid or series) if anon is None else anon.uid(info.series_uid or series)
        ds.Modality = info.modality
        evidence.append(ds)
        refs[sop] = (ds.SOPClassUID, ds.SOPInstanceUID, info.frames)
    return evidence, refs


def _person_name(name: str) -> str:
    """A login like "jdoe" as a DICOM PN: one family-name component, the trailing "^" says so (PS3.5 6.2.1)."""
    name = (name or "unknown").replace("\\", " ")[:60]
    return name if "^" in name else name + "^"


def build_sr(record, *, anon: Pseudonymizer | None = None) -> Dataset:
    """The SR dataset of one case (see the module docstring)."""
    case = record.case
    if not record.findings:
        raise NothingToReport("the case has no AI findings: an AI results SR has nothing to report")
    evidence, refs = _evidence(record, anon)
    reviewer = case.signed_off_by or case.reviewer or "unknown"
    if anon is not None:
        reviewer = "READER-" + anon.patient(f"reader:{reviewer}")[5:]
    person = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=_person_name(reviewer)),
    )
    first = record.findings[0] if record.findings else None
    device = None
    if first is not None:
        device = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=_model_uid(first), name=first.model_name, model_name=first.model),
        )
    groups = [_finding_group(f, refs) for f in record.findings]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups or None,
    )
    signed = case.status is CaseStatus.REVIEWED and bool(case.signed_off_by)
    # Fresh UIDs are "2.25." UIDs (we have no registered root); under a shared root a random suffix could
    # start with a source study's UID and leak it into an anonymised export.
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=generate_uid(prefix=None),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(prefix=None),
        instance_number=1,
        manufacturer=ORGANIZATION,
        is_complete=signed,
        is_final=signed,
        is_verified=signed,
        verifying_observer_name=_person_name(reviewer) if signed else None,
        verifying_organization=ORGANIZATION if signed else None,
    )
    sr.SeriesDescription = "AI results and review (research use only, not for diagnosis)"
    if signed and case.signed_off_at:
        sr.VerifyingObserverSequence[0].VerificationDateTime = _dicom_dt(case.signed_off_at)
    if anon is not None:
        _deidentify(sr, anon, record.patient_key)
    return sr


def _model_uid(f: Finding) -> str:
    """A UID naming the model weights: derived from the checksum, so the same weights give the same UID."""
    key = f"{f.model_name}@{f.model_version}#{f.model_checksum}"
    return generate_uid(prefix=None, entropy_srcs=[key])


def _finding_group(f: Finding, refs) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    params = [f"sha256={f.model_checksum}"] if f.model_checksum else []
    if f.threshold is not None:
        params.append(f"threshold={f.threshold:g}")
    algorithm = hd.sr.AlgorithmIdentification(name=f.model_name, version=f.model_version or "unknown",
                                              parameters=params or None)
    sop_class, sop_uid, frames = refs[f.sop_instance_uid]
    source = hd.sr.SourceImageForMeasurementGroup(
        referenced_sop_class_uid=sop_class, referenced_sop_instance_uid=sop_uid,
        referenced_frame_numbers=[f.frame + 1] if frames and frames > 1 else None)
    evaluations = [hd.sr.QualitativeEvaluation(FLAGGED, codes.SCT.Present if f.flagged else codes.SCT.Absent)]
    if f.verdict is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(VERDICT, VERDICT_CODES[f.verdict]))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(prefix=None), identifier=f"{f.label} #{f.id}"),
        finding_type=finding_code(f.label),
        algorithm_id=algorithm,
        measurements=[hd.sr.Measurement(name=codes.DCM.Probability, value=float(f.score),
                                        unit=codes.UCUM.NoUnits, algorithm_id=algorithm)],
        qualitative_evaluations=evaluations,
        source_images=[source],
    )


def _dicom_dt(iso: str) -> str:
    """"2026-11-24T15:54:37.123Z" -> DICOM DT "20261124155437.123000+0000"."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.strftime("%Y%m%d%H%M%S.%f") + "+0000"


def _deidentify(sr: Dataset, anon: Pseudonymizer, patient_key: str) -> None:
    """Shift every DA/DT of the SR by the patient's offset and record the de-identification (PS3.15 E.1)."""
    days = anon.day_shift(patient_key)

    def shift(ds: Dataset) -> None:
        for elem in ds:
            if elem.VR == "SQ":
                for item in elem.value:
                    shift(item)
            elif elem.VR in ("DA", "DT") and elem.value:
                text = str(elem.value)
                try:
                    moment = datetime.strptime(text[:8], "%Y%m%d") - timedelta(days=days)
                except ValueError:
                    elem.value = ""
                    continue
                elem.value = moment.strftime("%Y%m%d") + text[8:]

    shift(sr)
    if "PatientBirthDate" in sr:
        sr.PatientBirthDate = ""
    sr.PatientIdentityRemoved = "YES"
    sr.LongitudinalTemporalInformationModified = "MODIFIED"
    sr.DeidentificationMethod = "PS3.15 Basic Profile; Modified Dates"
    methods = []
    for value, meaning in (("113100", "Basic Application Confidentiality Profile"),
                           ("113107", "Retain Longitudinal Temporal Information Modified Dates Option")):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        methods.append(item)
    sr.DeidentificationMethodCodeSequence = methods


def sr_bytes(sr: Dataset) -> bytes:
    """The SR as a Part-10 file."""
    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


