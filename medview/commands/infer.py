"""`medview infer PATH... [--model M] [--device D] [--json]`: the app's engine without Qt (SPEC sections 1, 4).

Every applicable image is scored; images outside the model's intended use (another modality, body part or
view, too small, or not what the model reads by its pixels) are reported as skipped with the reason; an image that cannot be read or scored is one error line and the others still run (exit 1).
Results already in the cache (same SOP Instance UID, frame, model checksum and metadata) are reused: the model is
loaded and checked up front (a missing or unusable model is exit 2, named, before any line is printed), and
the network runs (its warm-up included) only when an image is not in the cache.
"""

from __future__ import annotations

import contextlib
import logging
import os

from medview.commands._output import print_json_line, report_failure
from medview.core.dicom.scan import quiet_pydicom, scan
from medview.core.errors import UsageError
from medview.core.inference.bundle import ModelBundle, load_bundle
from medview.core.inference.cache import ResultCache
from medview.core.inference.engine import Engine  # torch: only this command pays for it
from medview.core.inference.results import ERROR, NOT_APPLICABLE, InferenceJob, InferenceResult
from medview.core.inference.scoring import FrameScorer, other_modality
from medview.resources import bundled_model_path

log = logging.getLogger(__name__)


def run(args) -> int:
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        raise UsageError(f"{missing[0]}: no such file or folder")
    bundle = load_bundle(args.model or bundled_model_path())
    engine = Engine(bundle, device=args.device, batch_size=getattr(args, "batch_size", 8) or 8)
    cache = None if getattr(args, "no_cache", False) else ResultCache()
    return _infer(args, bundle, engine, cache)


def _infer(args, bundle: ModelBundle, engine: Engine, cache: ResultCache | None) -> int:
    """Scan, then one line per image as FrameScorer answers (skipped and cached ones first, then the scored
    ones batch by batch); 1 when any image failed. pydicom's and numpy's own warnings about odd files are
    not printed (they name no file; each failure is reported once, in medview's words), unless --debug."""
    with contextlib.nullcontext() if getattr(args, "debug", False) else quiet_pydicom():
        return _report(args, bundle, engine, cache)


def _report(args, bundle: ModelBundle, engine: Engine, cache: ResultCache | None) -> int:
    found = scan(args.paths)
    jobs = [job for inst in found.instances for job in InferenceJob.for_instance(inst)]
    # the network is checked in this call, before the first line: an unusable one is exit 2, nothing printed
    results = FrameScorer(engine, cache, raise_model_failures=True).score(jobs)
    failed = False
    for err in found.errors:
        failed = True
        _error(args, err.file, err.error)

    multi_frame = {inst.ref for inst in found.instances if inst.frames > 1}
    told: set[tuple] = set()  # (file, reason) already reported skipped: one line per file, not per frame
    stated: set[tuple] = set()  # (file, reason) already on stderr: a file's frames failing alike, one line
    for result in results:
        job = result.job
        if result.status == NOT_APPLICABLE:
            reason = result.error or other_modality(job, bundle)
            if (job.ref, reason) not in told:
                told.add((job.ref, reason))
                _skipped(args, job, reason)
        elif result.status == ERROR:
            failed = True
            _error(args, job.ref.display(), result.error, job.frame if job.ref in multi_frame else None,
                   tell=(job.ref, result.error) not in stated)
            stated.add((job.ref, result.error))
        else:
            _ok(args, result, job.ref in multi_frame)
    return 1 if failed else 0


def _skipped(args, job: InferenceJob, reason: str) -> None:
    _emit(args, {
        "status": "skipped", "file": job.ref.display(), "frame": job.frame, "study_uid": job.study_uid,
        "series_uid": job.series_uid, "sop_instance_uid": job.sop_instance_uid, "modality": job.modality,
        "reason": reason,
    })


def _emit(args, line: dict) -> None:
    if args.json:
        print_json_line(line)
    elif line["status"] == "skipped":
        print(f"{line['file']}: skipped, {line['reason']}")


def _error(args, file: str, reason: str, frame: int | None = None, *, tell: bool = True) -> None:
    """A JSON line per image (with its frame where the file has several); one stderr line per file and
    reason when `tell` (the first of its frames to fail so)."""
    if tell:
        report_failure(file if frame is None else f"{file} [frame {frame}]", reason)
    if args.json:
        line = {"status": "error", "file": file, "error": reason}
        if frame is not None:
            line["frame"] = frame
        print_json_line(line)


def _ok(args, result: InferenceResult, multi_frame: bool) -> None:
    job, prediction = result.job, result.prediction
    if args.json:
        line = {
            "status": "ok", "file": job.ref.display(), "frame": job.frame, "study_uid": job.study_uid,
            "series_uid": job.series_uid, "sop_instance_uid": job.sop_instance_uid,
            "model": prediction.model, "scores": prediction.scores, "flagged": prediction.flagged,
        }
        if prediction.measurements:
            line["measurements"] = prediction.measurements
        print_json_line(line)
    else:
        findings = ", ".join(
            f"{label} {score:.3f}{' FLAGGED' if label in prediction.flagged else ''}"
            for label, score in prediction.scores.items()
        )
        measured = "".join(f", {name.replace('_', ' ')} {m['value']:.3f}"
                           for name, m in prediction.measurements.items())
        frame = f" [frame {job.frame}]" if multi_frame else ""
        print(f"{job.ref.display()}{frame}: {findings}{measured} ({prediction.model})")
