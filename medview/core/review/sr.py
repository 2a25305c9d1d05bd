"""A DICOM Structured Report per case, in the style of the IHE AI Results (AIR) profile.

Comprehensive 3D SR (highdicom) with the TID 1500 Measurement Report: per AI finding one TID 1501 group with
the finding (model label), the model (TID 4019 Algorithm Identification: name, version, sha256 and
threshold as parameters), the score as a "Probability" measurement, whether the model flagged it (Present /
Absent), the reviewer's verdict, and the evaluated image as source (SOP Class + Instance UID, frame).

A measuring model's measurement joins the group of the finding it quantifies on that image (the CTR joins
Cardiomegaly; an image without that finding gets a group of its own): the model's value as a NUM (TID 300)
with the model as its algorithm and method "Automated" (SCT 8359006), and the reader's corrected value, where
there is one, as a second NUM of the same concept with method "Manual" (SCT 87982008) and no algorithm. Each
NUM carries the lines it was computed from as SCOORD POLYLINEs on the source image (TID 320, "Source of
Measurement"; for the CTR first the heart's, then the thorax's line). Image coordinates are DICOM's: column
then row, (0, 0) the top left corner of the top left pixel; the model and the viewer give points as pixel
indices (0 the centre of the first pixel), so half a pixel is added here.

Codes: Cardiomegaly is SCT 8186001. The CTR on a radiograph (a ratio of transverse diameters) has no code in
DICOM PS3.16 (its LOINC 59074-5 and 59076-0 are fetal ultrasound ratios of circumferences and areas, another
quantity), so it uses the private code below until a verified SNOMED CT or LOINC code replaces it in
MEASUREMENT_CODES; the unit is UCUM "{ratio}".
The SR is VERIFIED (with the reviewer in the Verifying Observer Sequence and the sign-off time) only when
the case was signed off; otherwise UNVERIFIED and PARTIAL. A case without AI findings gets no SR (TID 1500
needs at least one measurement group); its review is in the CSV, JSON and PDF.

Other labels and the verdicts have no standard codes, so they use the private coding scheme "99MEDVIEW"
(PS3.16 8.2: "99" prefix); the observer of the verdicts is the reviewer (person observer context), the device
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
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from medview.core.review.anonymize import Pseudonymizer
from medview.core.review.measurements import CTR, LINES, ImageMeasurement
from medview.core.review.store import CaseStatus, Finding, Verdict
from medview.core.viewing.measure import PIXEL_CENTRE

SCHEME = "99MEDVIEW"
FLAGGED = hd.sr.CodedConcept("flagged", SCHEME, "AI flagged at operating point")
VERDICT = hd.sr.CodedConcept("verdict", SCHEME, "Reviewer verdict")
VERDICT_CODES = {
    Verdict.AGREE: hd.sr.CodedConcept("agree", SCHEME, "Reviewer agrees with AI finding"),
    Verdict.DISAGREE: hd.sr.CodedConcept("disagree", SCHEME, "Reviewer disagrees with AI finding"),
}
# model labels with a standard code; the others use the private scheme (`finding_code`)
STANDARD_FINDINGS = {"cardiomegaly": hd.sr.CodedConcept("8186001", "SCT", "Cardiomegaly")}
MEASUREMENT_CODES = {CTR: hd.sr.CodedConcept("CTR", SCHEME, "Cardiothoracic ratio")}
SR_SERIES_NUMBER = 9901
ORGANIZATION = "medview"

# the patient/study attributes copied into the SR from the images (read from one file of the case)
_MODULE_TAGS = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID"]


class NothingToReport(ValueError):
    """A case without AI findings: TID 1500 needs at least one measurement group, so no SR is made."""


def finding_code(label: str) -> hd.sr.CodedConcept:
    return STANDARD_FINDINGS.get(label) or hd.sr.CodedConcept(label[:16], SCHEME, label)


def measurement_code(name: str) -> hd.sr.CodedConcept:
    return MEASUREMENT_CODES.get(name) or hd.sr.CodedConcept(name[:16], SCHEME, name.replace("_", " "))


def _module_from_file(record) -> Dataset:
    """Patient and study attributes from the first readable image of the case (else from the index)."""
    from medview.core.dicom import decoded
    from medview.core.errors import DicomReadError

    for info in record.instances.values():
        try:
            ds = decoded.header(info.ref)
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


def case_module(record, anon: Pseudonymizer | None) -> Dataset:
    """The case's patient and study attributes as an output may carry them (pseudonymised when anonymising)."""
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
    return module


def image_references(record, sops, anon: Pseudonymizer | None
                     ) -> tuple[list[Dataset], dict[str, tuple[str, str, int]]]:
    """One small header dataset per referenced image, and sop -> (SOP class, SOP instance UID as written,
    frames); an image of the review that is not in the scanned folder is an error for the case."""
    module = case_module(record, anon)
    evidence, refs = [], {}
    for sop, series in sops:
        if sop in refs:
            continue
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
        if info.rows and info.columns:  # an image, not just any object
            ds.Rows, ds.Columns = info.rows, info.columns
        evidence.append(ds)
        refs[sop] = (ds.SOPClassUID, ds.SOPInstanceUID, info.frames)
    return evidence, refs


def _evidence(record, anon: Pseudonymizer | None) -> tuple[list[Dataset], dict[str, tuple[str, str, int]]]:
    """The images the SR refers to: evaluated, measured and key images."""
    wanted = [(f.sop_instance_uid, f.series_uid) for f in record.findings]
    wanted += [(m.sop_instance_uid, "") for m in record.measurements]
    wanted += [(k.sop_instance_uid, k.series_uid) for k in record.case.key_images]
    return image_references(record, wanted, anon)


def person_name(name: str) -> str:
    """A login like "jdoe" as a DICOM PN: one family-name component, the trailing "^" says so (PS3.5 6.2.1)."""
    name = (name or "unknown").replace("\\", " ")[:60]
    return name if "^" in name else name + "^"


def reader_name(record, anon: Pseudonymizer | None) -> str:
    """Who read the case, as a DICOM PN (a stable pseudonym when anonymising)."""
    reviewer = record.case.signed_off_by or record.case.reviewer or "unknown"
    if anon is not None:
        reviewer = "READER-" + anon.patient(f"reader:{reviewer}")[5:]
    return person_name(reviewer)


def reader_observer(name: str) -> hd.sr.ObserverContext:
    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=name))


def build_sr(record, *, anon: Pseudonymizer | None = None) -> Dataset:
    """The SR dataset of one case (see the module docstring)."""
    case = record.case
    measurements = record.measurements
    if not record.findings and not measurements:
        raise NothingToReport("the case has no AI findings: an AI results SR has nothing to report")
    evidence, refs = _evidence(record, anon)
    reviewer = reader_name(record, anon)
    person = reader_observer(reviewer)
    first = record.findings[0] if record.findings else None
    device = None  # a case with only the reader's corrections has no model to name
    if first is not None:
        device = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=_model_uid(first), name=first.model_name, model_name=first.model),
        )
    groups = _groups(record.findings, measurements, refs)
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups or None,
    )
    signed = case.status is CaseStatus.REVIEWED and bool(case.signed_off_by)
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        **new_object(SR_SERIES_NUMBER),
        is_complete=signed,
        is_final=signed,
        is_verified=signed,
        verifying_observer_name=reviewer if signed else None,
        verifying_organization=ORGANIZATION if signed else None,
    )
    sr.SeriesDescription = "AI results and review (research use only, not for diagnosis)"
    if signed and case.signed_off_at:
        sr.VerifyingObserverSequence[0].VerificationDateTime = _dicom_dt(case.signed_off_at)
    if anon is not None:
        deidentify(sr, anon, record.patient_key)
    return sr


def new_object(series_number: int) -> dict:
    """Series and instance of a new DICOM object of the export, and its maker. Fresh UIDs are "2.25." UIDs
    (we have no registered root); under a shared root a random suffix could start with a source study's UID
    and leak it into an anonymised export."""
    return {"series_instance_uid": generate_uid(prefix=None), "series_number": series_number,
            "sop_instance_uid": generate_uid(prefix=None), "instance_number": 1, "manufacturer": ORGANIZATION}


def _model_uid(f: Finding) -> str:
    """A UID naming the model weights: derived from the checksum, so the same weights give the same UID."""
    key = f"{f.model_name}@{f.model_version}#{f.model_checksum}"
    return generate_uid(prefix=None, entropy_srcs=[key])


def _algorithm(f: Finding) -> hd.sr.AlgorithmIdentification:
    params = [f"sha256={f.model_checksum}"] if f.model_checksum else []
    if f.threshold is not None:
        params.append(f"threshold={f.threshold:g}")
    return hd.sr.AlgorithmIdentification(name=f.model_name, version=f.model_version or "unknown",
                                         parameters=params or None)


def _source_image(refs, sop: str, frame: int, kind=hd.sr.SourceImageForMeasurementGroup):
    sop_class, sop_uid, frames = refs[sop]
    return kind(referenced_sop_class_uid=sop_class, referenced_sop_instance_uid=sop_uid,
                referenced_frame_numbers=[frame + 1] if frames and frames > 1 else None)


def _groups(findings, measurements: list[ImageMeasurement], refs) -> list:
    """One TID 1501 group per finding, the measurements of its image in it; one more per measurement whose
    image has no such finding."""
    by_image = {}
    for m in measurements:
        by_image.setdefault((m.sop_instance_uid, m.frame, m.finding or m.name), []).append(m)
    groups = []
    for f in findings:
        measured = by_image.pop((f.sop_instance_uid, f.frame, f.label), [])
        groups.append(_finding_group(f, refs, measured))
    model = findings[0] if findings else None
    for (sop, frame, label), measured in by_image.items():
        algorithm = _algorithm(model) if model is not None else None
        items = [item for m in measured for item in _measurement_items(m, refs, algorithm)]
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(prefix=None), identifier=label),
            finding_type=finding_code(label), algorithm_id=algorithm, measurements=items,
            source_images=[_source_image(refs, sop, frame)]))
    return groups


def _finding_group(f: Finding, refs, measured=()) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    algorithm = _algorithm(f)
    evaluations = [hd.sr.QualitativeEvaluation(FLAGGED, codes.SCT.Present if f.flagged else codes.SCT.Absent)]
    if f.verdict is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(VERDICT, VERDICT_CODES[f.verdict]))
    items = [hd.sr.Measurement(name=codes.DCM.Probability, value=float(f.score), unit=codes.UCUM.NoUnits,
                               algorithm_id=algorithm)]
    items += [item for m in measured for item in _measurement_items(m, refs, algorithm)]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(prefix=None), identifier=f"{f.label} #{f.id}"),
        finding_type=finding_code(f.label),
        algorithm_id=algorithm,
        measurements=items,
        qualitative_evaluations=evaluations,
        source_images=[_source_image(refs, f.sop_instance_uid, f.frame)],
    )


def _measurement_items(m: ImageMeasurement, refs, algorithm) -> list[hd.sr.Measurement]:
    """The model's value (method Automated, with the model) and the reader's (method Manual), each with the
    lines it was computed from."""
    items = []
    for measured, method, algorithm_id in ((m.model, codes.SCT.Automated, algorithm),
                                           (m.corrected, codes.SCT.Manual, None)):
        if not measured or measured.get("value") is None:
            continue
        lines = [hd.sr.CoordinatesForMeasurement(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=np.asarray(measured[name], dtype=np.float64).reshape(-1, 2) + PIXEL_CENTRE,
            source_image=_source_image(refs, m.sop_instance_uid, m.frame, hd.sr.SourceImageForRegion),
            purpose=codes.DCM.SourceOfMeasurement,
        ) for name in LINES if measured.get(name)]
        items.append(hd.sr.Measurement(
            name=measurement_code(m.name), value=float(measured["value"]), unit=codes.UCUM.Ratio, method=method,
            algorithm_id=algorithm_id, referenced_coordinates=lines or None))
    return items


def _dicom_dt(iso: str) -> str:
    """"2026-11-24T15:54:37.123Z" -> DICOM DT "20261124155437.123000+0000"."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.strftime("%Y%m%d%H%M%S.%f") + "+0000"


def deidentify(sr: Dataset, anon: Pseudonymizer, patient_key: str) -> None:
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


def dicom_bytes(dataset: Dataset) -> bytes:
    """A DICOM object (SR, KOS, SEG) as a Part-10 file."""
    buf = io.BytesIO()
    dataset.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


