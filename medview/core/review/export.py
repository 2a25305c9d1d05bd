"""Review results out of medview: CSV and JSON (one row per AI finding); per case a DICOM SR, a Key Object
Selection of the key images (KOS), a Segmentation of the model's masks (SEG) and a PDF.

The AI results beyond the review database (measurements, masks, heatmaps) come from the AI results cache, or
from the caller (`predictions`), per image: {(SOP Instance UID, frame): Prediction}. The reader's corrected
measurements come from the review database.

Plain Python: the PDF writer needs Qt, so it is imported only when "pdf" is asked for. Everything is
written into the chosen output folder only, first under a hidden staging folder there and renamed into place
when all is done, so an interrupted or cancelled export never leaves a half file or a half export.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from medview.core.atomic import write_atomic
from medview.core.dicom.model import InstanceInfo, Study
from medview.core.dicom.readable import readable_date
from medview.core.errors import UsageError
from medview.core.inference.bundle import RESEARCH_USE_ONLY
from medview.core.review.anonymize import Pseudonymizer
from medview.core.review.measurements import ImageMeasurement, image_measurements
from medview.core.review.store import Case, CorrectedMeasurement, Finding, ReviewStore, now_iso

log = logging.getLogger(__name__)

# The formats offered (the dialog's boxes): "sr" stands for the case's DICOM results, the SR together with the
# KOS of its key images and the SEG of the model's masks where there are any; "kos" and "seg" alone are
# accepted too, for a tool that wants only those.
FORMATS = ("csv", "json", "pdf", "sr")
DICOM_PARTS = ("kos", "seg")
RESEARCH_USE_LINE = RESEARCH_USE_ONLY + "."

COLUMNS = [
    "study_uid", "patient_id", "patient_name", "accession_number", "study_date", "case_status", "reviewer",
    "opened_at", "signed_off_at", "signed_off_by", "series_uid", "sop_instance_uid", "frame", "finding",
    "model", "model_version", "model_checksum", "score", "threshold", "flagged", "verdict", "verdict_by",
    "verdict_at", "key_image",
]


@dataclass
class CaseRecord:
    """Everything the outputs of one case need, as plain values: the study, its review and its images."""

    study_uid: str
    patient_id: str
    patient_name: str
    accession_number: str
    study_date: str
    study_time: str
    study_description: str
    case: Case
    findings: list[Finding]
    instances: dict[str, InstanceInfo] = field(default_factory=dict)  # by SOP Instance UID
    corrections: list[CorrectedMeasurement] = field(default_factory=list)
    ai: dict = field(default_factory=dict)  # {(sop, frame): Prediction}: measurements, masks, heatmaps

    @property
    def measurements(self) -> list[ImageMeasurement]:
        """The model's measurements with the reader's corrections beside them."""
        return image_measurements(self.ai, self.corrections)

    @property
    def patient_key(self) -> str:
        """What keys the patient's pseudonym and date shift."""
        return self.patient_id or f"name:{self.patient_name}"

    def is_key_image(self, sop_instance_uid: str, frame: int) -> bool:
        return any(k.sop_instance_uid == sop_instance_uid and k.frame == frame for k in self.case.key_images)


def parse_formats(text: str) -> list[str]:
    """"csv,json" -> ["csv", "json"]; an unknown format is a usage error (exit code 2)."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    known = FORMATS + DICOM_PARTS
    unknown = [f for f in formats if f not in known]
    if unknown or not formats:
        raise UsageError(f"unknown export format {', '.join(unknown) or repr(text)}; choose from {','.join(known)}")
    return list(dict.fromkeys(formats))


def has_review_data(case: Case, findings: Sequence[Finding], corrections: Sequence = ()) -> bool:
    """A case someone worked on: signed off, a note, key images, a verdict or a corrected measurement (opening
    it or AI results alone are not a review)."""
    return case.has_review_data or any(f.verdict is not None for f in findings) or bool(corrections)


def collect_cases(studies: Iterable[Study], store: ReviewStore) -> list[CaseRecord]:
    """The studies that have review data, with their review, findings and instances."""
    records = []
    for study in studies:
        case = store.case(study.study_uid)
        findings = store.findings(study.study_uid)
        corrections = store.corrected_measurements(study.study_uid)
        if not has_review_data(case, findings, corrections):
            continue
        instances = {inst.sop_instance_uid: inst for s in study.series for inst in s.instances}
        first = next(iter(instances.values()), None)
        records.append(CaseRecord(
            study_uid=study.study_uid, patient_id=study.patient_id, patient_name=study.patient_name,
            accession_number=first.accession_number if first else "", study_date=study.study_date,
            study_time=first.study_time if first else "", study_description=study.description,
            case=case, findings=findings, instances=instances, corrections=corrections,
        ))
    return records


# ---------------------------------------------------------------------------------------- rows


def case_identity(record: CaseRecord, anon: Pseudonymizer | None) -> dict[str, str]:
    """Study UID, patient, accession and date as they may appear in an output (pseudonymised if asked)."""
    if anon is None:
        return {"study_uid": record.study_uid, "patient_id": record.patient_id, "patient_name": record.patient_name,
                "accession_number": record.accession_number, "study_date": record.study_date}
    pseudonym = anon.patient(record.patient_id, record.patient_name)
    return {"study_uid": anon.uid(record.study_uid), "patient_id": pseudonym, "patient_name": pseudonym,
            "accession_number": anon.accession(record.accession_number),
            "study_date": anon.date(record.study_date, record.patient_key)}


def finding_rows(records: Iterable[CaseRecord], anon: Pseudonymizer | None = None) -> list[dict]:
    """One row per finding (a reviewed case without findings still gets one row, finding columns empty)."""
    rows = []
    for record in records:
        case = record.case
        base = {**case_identity(record, anon), "case_status": case.status.label, "reviewer": case.reviewer or "",
                "opened_at": case.opened_at or "", "signed_off_at": case.signed_off_at or "",
                "signed_off_by": case.signed_off_by or ""}
        if not record.findings:
            rows.append({c: base.get(c, "") for c in COLUMNS})
            continue
        uid = (lambda u: u) if anon is None else anon.uid
        for f in record.findings:
            rows.append({
                **base, "series_uid": uid(f.series_uid), "sop_instance_uid": uid(f.sop_instance_uid),
                "frame": f.frame, "finding": f.label, "model": f.model_name, "model_version": f.model_version,
                "model_checksum": f.model_checksum, "score": round(f.score, 6),
                "threshold": "" if f.threshold is None else f.threshold, "flagged": f.flagged,
                "verdict": f.verdict.value if f.verdict else "", "verdict_by": f.verdict_by or "",
                "verdict_at": f.verdict_at or "", "key_image": record.is_key_image(f.sop_instance_uid, f.frame),
            })
    return rows


def csv_text(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("true" if v is True else "false" if v is False else v) for k, v in row.items()})
    return buf.getvalue()


def json_document(records: Sequence[CaseRecord], anon: Pseudonymizer | None = None) -> dict:
    """The findings rows plus one entry per case (note, key images); free-text notes are left out when
    anonymising, as PS3.15 does with comments: they may name the patient."""
    uid = (lambda u: u) if anon is None else anon.uid
    cases = []
    for record in records:
        c = record.case
        entry = {**case_identity(record, anon), "status": c.status.label, "reviewer": c.reviewer,
                 "opened_at": c.opened_at, "signed_off_at": c.signed_off_at, "signed_off_by": c.signed_off_by,
                 "key_images": [{"series_uid": uid(k.series_uid), "sop_instance_uid": uid(k.sop_instance_uid),
                                 "frame": k.frame} for k in c.key_images]}
        if anon is None:
            entry["note"] = c.note
        cases.append(entry)
    from medview import __version__

    return {"format": "medview-review-export", "format_version": 1, "medview": __version__,
            "exported_at": now_iso(), "anonymized": anon is not None,
            "notice": RESEARCH_USE_LINE, "findings": finding_rows(records, anon), "cases": cases}


# --------------------------------------------------------------------------------------- files


# anything but letters (of any script), digits and "-" becomes "_": no path separators, no characters Windows
# refuses (<>:"/\\|?*), no spaces or dots a shell or a mail client trips over
_NOT_IN_FILE_NAMES = re.compile(r"[^\w-]+")
_WINDOWS_DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
FILE_STEM_MAX = 80  # characters: the whole path stays well inside Windows' 260


def safe_file_stem(*parts: str) -> str:
    """The parts joined by "_" in characters every file system takes ("" when none has any)."""
    words = [_NOT_IN_FILE_NAMES.sub("_", unicodedata.normalize("NFC", p)).strip("_") for p in parts if p]
    stem = re.sub("_{2,}", "_", "_".join(w for w in words if w))[:FILE_STEM_MAX].strip("_-")
    return f"_{stem}" if stem.upper() in _WINDOWS_DEVICE_NAMES else stem


def case_file_stem(record: CaseRecord, anon: Pseudonymizer | None) -> str:
    """Per-case files are named so that a person finds them: "Doe_Jane_2024-03-10_ACC-123" (family and given
    name, study date, accession), or the pseudonym, shifted date and accession pseudonym when anonymised."""
    identity = case_identity(record, anon)
    stem = safe_file_stem(*identity["patient_name"].split("^"), readable_date(identity["study_date"]),
                          identity["accession_number"])
    return stem or safe_file_stem("case", identity["study_uid"])


def case_file_stems(records: Sequence[CaseRecord], anon: Pseudonymizer | None) -> dict[str, str]:
    """{Study UID: file stem}, one stem per case: two studies of a patient on one day without accession numbers
    are told apart by a short digest of their (possibly pseudonymised) Study UID."""
    stems = {r.study_uid: case_file_stem(r, anon) for r in records}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    for record in records:
        if counts[stems[record.study_uid]] > 1:
            uid = case_identity(record, anon)["study_uid"]
            stems[record.study_uid] += "_" + hashlib.sha256(uid.encode()).hexdigest()[:6]
    return stems


class ExportCancelled(Exception):
    """The export was cancelled: nothing of it was left in the output folder."""


def export_cases(
    records: Sequence[CaseRecord],
    out_dir: str | Path,
    formats: Sequence[str] = ("csv", "json"),
    *,
    anonymize: bool = False,
    on_error: Callable[[CaseRecord, str, str], None] | None = None,
    heatmaps: Callable[[CaseRecord], dict] | None = None,
    pdf_writer: Callable[..., None] | None = None,
    predictions: Callable[[CaseRecord], dict] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[Path]:
    """Write the chosen formats into `out_dir`; returns the files written.

    The PDF is drawn with Qt, which the core may not import: the caller passes `pdf_writer`
    (`medview.qt.review.report_pdf.write_case_pdf`) when "pdf" is among the formats.

    A case whose SR, KOS, SEG or PDF cannot be made is reported through `on_error(record, format, reason)` and
    the others are still written. `heatmaps(record)` gives {(sop, frame): (label, float array 0..1)} for the
    PDF; `predictions(record)` the model's results per image ({(sop, frame): Prediction}, default: the AI
    results cache) for the measurements and masks.

    Every file is first written into a hidden folder inside `out_dir` and moved to its name only when all are
    done: an export cancelled (`cancelled()` true: `ExportCancelled`) or failed on the way leaves nothing.
    `progress(done, total)` counts the steps (a file, or one case's files of a kind).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    anon = Pseudonymizer() if anonymize else None
    wanted = set(formats)
    if "sr" in wanted:
        wanted |= set(DICOM_PARTS)
    if "pdf" in wanted and pdf_writer is None:
        raise ValueError("PDF export needs a pdf_writer (medview.qt.review.report_pdf.write_case_pdf)")
    per_case = [f for f in ("sr", "kos", "seg", "pdf") if f in wanted]
    needs_ai = bool(wanted & {"sr", "seg", "pdf"})
    steps = _Steps(len(records) * (len(per_case) + needs_ai) + len(wanted & {"csv", "json"}), progress, cancelled)
    staging = Path(tempfile.mkdtemp(prefix=".medview-export-", dir=out))
    try:
        if needs_ai:
            records = [steps.after(replace(r, ai=_predictions_of(r, predictions or cached_predictions)))
                       for r in records]
        stems = case_file_stems(records, anon)
        staged: list[Path] = []
        if "csv" in wanted:
            text = csv_text(finding_rows(records, anon))
            staged.append(steps.after(write_atomic(staging / "review_findings.csv", text.encode("utf-8"))))
        if "json" in wanted:
            text = json.dumps(json_document(records, anon), indent=2, ensure_ascii=False)
            staged.append(steps.after(write_atomic(staging / "review_findings.json", text.encode("utf-8"))))
        for fmt in per_case:
            for record in records:
                try:
                    staged += _write_case_files(record, fmt, staging / stems[record.study_uid], anon, pdf_writer,
                                                heatmaps)
                except Exception as exc:  # one bad case must not stop the others (exit code 1 in the CLI)
                    log.debug("%s failed", fmt.upper(), exc_info=True)
                    if on_error is None:
                        raise
                    on_error(record, fmt, str(exc))
                steps.after(None)
        written = []
        for path in staged:  # all made: each to its name (a rename within one folder)
            written.append(out / path.name)
            os.replace(path, written[-1])
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _Steps:
    """Counts the export's steps for `progress` and stops it where `cancelled` says so."""

    def __init__(self, total: int, progress, cancelled):
        self.done, self.total, self.progress, self.cancelled = 0, max(total, 1), progress, cancelled

    def after(self, value):
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)
        if self.cancelled is not None and self.cancelled():
            raise ExportCancelled("export cancelled")
        return value


def _write_case_files(record: CaseRecord, fmt: str, stem: Path, anon, pdf_writer, heatmaps) -> list[Path]:
    """One case's files of one kind ("sr", "kos", "seg" or "pdf"), named `stem` + kind; [] when it has none."""
    if fmt == "pdf":
        path = stem.with_name(f"{stem.name}.pdf")
        pdf_writer(record, path, anon=anon, heatmaps=heatmaps(record) if heatmaps else None)
        return [path]
    from medview.core.review.kos import build_kos
    from medview.core.review.seg import build_seg
    from medview.core.review.sr import NothingToReport, build_sr, dicom_bytes

    build = {"sr": build_sr, "kos": build_kos, "seg": build_seg}[fmt]
    try:
        built = build(record, anon=anon)  # None: nothing of this kind (no key images, no masks)
    except NothingToReport as exc:
        log.info("no %s: %s", fmt.upper(), exc)
        return []
    datasets = [] if built is None else built if isinstance(built, list) else [built]
    files = []
    for n, dataset in enumerate(datasets, 1):
        number = f"_{n}" if len(datasets) > 1 else ""  # a SEG per masked image
        files.append(write_atomic(stem.with_name(f"{stem.name}_{fmt.upper()}{number}.dcm"), dicom_bytes(dataset)))
    return files


def _predictions_of(record: CaseRecord, predictions: Callable[[CaseRecord], dict]) -> dict:
    """The case's AI results; a cache that cannot be read costs the measurements, not the export."""
    try:
        return dict(predictions(record) or {})
    except Exception:  # noqa: BLE001 - the review itself is still exported
        log.warning("the AI results of a case could not be read; exported without measurements", exc_info=True)
        return {}


def cached_predictions(record: CaseRecord) -> dict:
    """The model's results for the case's evaluated images, from the AI results cache: {(sop, frame): Prediction}."""
    try:
        from medview.core.inference.cache import ResultCache
    except ImportError:  # pragma: no cover - the AI part is missing from this build
        return {}
    found = {}
    cache = ResultCache()
    try:
        for f in record.findings:
            if (f.sop_instance_uid, f.frame) not in found:
                prediction = cache.get(f.sop_instance_uid, f.frame, f.model_checksum)
                if prediction is not None:
                    found[(f.sop_instance_uid, f.frame)] = prediction
    finally:
        cache.close()
    return found


def cached_heatmaps(record: CaseRecord) -> dict:
    """Heatmaps of the flagged findings on the key images, from the case's AI results (the cache by default)."""
    predictions = record.ai or cached_predictions(record)
    maps = {}
    for f in record.findings:
        if not f.flagged or not record.is_key_image(f.sop_instance_uid, f.frame):
            continue
        if (f.sop_instance_uid, f.frame) in maps:
            continue
        pred = predictions.get((f.sop_instance_uid, f.frame))
        heatmap = getattr(pred, "heatmap", None)
        if heatmap is None:
            continue
        labels = list(pred.scores)
        index = labels.index(f.label) if heatmap.shape[0] == len(labels) and f.label in labels else 0
        maps[(f.sop_instance_uid, f.frame)] = (f.label, heatmap[index])
    return maps
