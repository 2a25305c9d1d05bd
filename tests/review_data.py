"""A small source folder with review decisions in the store, for the export tests (core, CLI and PDF).

Two chest radiographs of two patients and one CT: case A is signed off (agree on a flagged finding, a key
image, a note), case B is in progress (disagree on one finding, one flagged finding without a verdict), the
CT has no review data and must not be exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medview.core.review.store import FindingInput, ReviewStore
from tests.factories import write_image

MODEL = dict(model_name="demo-cxr", model_version="1.2.0", model_checksum="ab" * 32)


@dataclass
class ReviewedSource:
    root: Path
    case_a: dict
    case_b: dict
    ct_study: str


def _radiograph(path: Path, study: str, sop: str, patient_id: str, patient_name: str, date: str) -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    pixels = (((xx + yy) * 16) % 4096).astype(np.uint16)  # a gradient: rendered images are not blank
    write_image(path, modality="CR", study_uid=study, series_uid=study + ".1", sop_uid=sop, rows=64, cols=64,
                patient_id=patient_id, patient_name=patient_name, study_date=date, pixels=pixels,
                bits_allocated=16, bits_stored=12, window=(2048, 4096), position=None, orientation=None,
                slice_thickness=None, extra={"AccessionNumber": f"ACC-{patient_id}", "PatientBirthDate": "19600203",
                                             "PatientSex": "F"})


def make_reviewed_source(root: Path, reviewer: str = "Dr Ada") -> ReviewedSource:
    a = {"study": "1.2.826.0.1.3680043.8.498.100", "sop": "1.2.826.0.1.3680043.8.498.100.1.1",
         "patient_id": "PAT-4711", "patient_name": "Doe^Jane", "date": "20240310",
         "files": "Doe_Jane_2024-03-10_ACC-PAT-4711"}  # what its exported files are named by
    b = {"study": "1.2.826.0.1.3680043.8.498.200", "sop": "1.2.826.0.1.3680043.8.498.200.1.1",
         "patient_id": "PAT-0815", "patient_name": "Roe^Richard", "date": "20240311",
         "files": "Roe_Richard_2024-03-11_ACC-PAT-0815"}
    for c in (a, b):
        _radiograph(root / c["patient_id"] / "cxr.dcm", c["study"], c["sop"], c["patient_id"], c["patient_name"],
                    c["date"])
    ct = "1.2.826.0.1.3680043.8.498.300"
    for i in range(3):
        write_image(root / "PAT-4711" / "ct" / f"{i}.dcm", modality="CT", study_uid=ct, series_uid=ct + ".1",
                    patient_id="PAT-4711", patient_name="Doe^Jane", instance_number=i + 1, position=(0, 0, i))

    with ReviewStore(reviewer=reviewer) as store:
        store.open_case(a["study"])
        fa = store.record_findings(a["study"], [
            FindingInput(a["sop"], "nodule", 0.87, True, threshold=0.5, series_uid=a["study"] + ".1", **MODEL),
            FindingInput(a["sop"], "effusion", 0.12, False, threshold=0.6, series_uid=a["study"] + ".1", **MODEL),
        ])
        store.set_verdict(fa[0].id, "agree")
        store.toggle_key_image(a["study"], a["sop"], 0, a["study"] + ".1")
        store.set_note(a["study"], "Nodule right upper zone, CT advised.")
        store.sign_off(a["study"])

        store.open_case(b["study"])
        fb = store.record_findings(b["study"], [
            FindingInput(b["sop"], "nodule", 0.64, True, threshold=0.5, series_uid=b["study"] + ".1", **MODEL),
            FindingInput(b["sop"], "effusion", 0.71, True, threshold=0.6, series_uid=b["study"] + ".1", **MODEL),
        ])
        store.set_verdict(next(f.id for f in fb if f.label == "nodule"), "disagree")
        # AI results for the CT are recorded but nobody opened it: not review data
    a["findings"] = {f.label: f.id for f in fa}
    b["findings"] = {f.label: f.id for f in fb}
    return ReviewedSource(root, a, b, ct)


CTR_HEART, CTR_THORAX = [[20.0, 40.0], [40.0, 40.0]], [[8.0, 44.0], [56.0, 44.0]]
CORRECTED_HEART = [[18.0, 40.0], [42.0, 40.0]]


def ctr_prediction(masks: bool = True):
    """The measuring model's result on case A's radiograph: CTR 20/48, and heart, lungs, thorax masks."""
    from medview.core.inference.results import Prediction
    from medview.core.review.measurements import CTR

    grid = np.zeros((3, 16, 16), np.uint8)
    grid[0, 6:12, 5:11] = 1   # heart
    grid[1, 2:14, 1:7] = 1    # lungs (one side is enough here)
    grid[2, 1:15, 1:15] = 1   # thorax
    return Prediction(scores={"cardiomegaly": 0.81}, flagged=["cardiomegaly"], heatmap=None,
                      model=f"{MODEL['model_name']}@{MODEL['model_version']}",
                      measurements={CTR: {"value": 20 / 48, "unit": "1", "threshold": 0.5,
                                          "heart": CTR_HEART, "thorax": CTR_THORAX}},
                      masks=grid if masks else None, mask_labels=("heart", "lungs", "thorax") if masks else ())


def add_corrected_ctr(src: ReviewedSource, reviewer: str = "Demo^Ines") -> None:
    """Case A gains a cardiomegaly finding the reader agrees with and whose CTR the reader corrects to 24/48."""
    from medview.core.review.measurements import CTR
    from medview.core.review.session import ReviewSession

    a = src.case_a
    with ReviewStore(reviewer=reviewer) as store:
        session = ReviewSession(store)
        session.open_case(a["study"], [FindingInput(a["sop"], "cardiomegaly", 0.81, True, threshold=0.5,
                                                    series_uid=a["study"] + ".1", **MODEL)])
        session.select_finding(next(f.id for f in session.findings if f.label == "cardiomegaly"))
        session.agree()
        session.correct_measurement(a["study"], a["sop"], 0, CTR, CORRECTED_HEART, CTR_THORAX)


# the dates an export makes itself, at export time (shifted like every date of an anonymized export): they can
# land on a source date by chance (the shift is one of 3285 days), so a search for a source date leaves them out
MADE_AT_EXPORT = {"InstanceCreationDate", "ContentDate", "ContributionDateTime", "VerificationDateTime",
                  "InstanceCreationTime", "ContentTime", "SeriesDate", "SeriesTime"}


def source_date_left(ds, date: str) -> list[str]:
    """Keywords of the date elements of `ds` (sequences included) still holding the source date `date`,
    leaving out the dates the export made itself."""
    found = []

    def walk(items):
        for el in items:
            if el.VR == "SQ":
                for item in el.value:
                    walk(item)
            elif el.VR in ("DA", "DT") and date in str(el.value) and el.keyword not in MADE_AT_EXPORT:
                found.append(el.keyword)

    walk(ds)
    return found
