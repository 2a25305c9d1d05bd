"""`medview infer PATH... [--model M] [--device D] [--json]`: the app's engine without Qt (SPEC sections 1, 4).

Every applicable image (its modality is one of the model's) is scored; other images are reported as
skipped; an image that cannot be read or scored is one error line and the others still run (exit 1).
Results already in the cache (same SOP Instance UID, frame and model checksum) are reused: the model is
loaded and checked up front (a missing or unusable model is exit 2, named), but it is only run for misses.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from medview.commands._output import print_json_line, report_failure
from medview.core.dicom import pixels
from medview.core.dicom.scan import scan
from medview.core.errors import UsageError
from medview.core.inference.bundle import ModelBundle, load_bundle
from medview.core.inference.cache import ResultCache
from medview.core.inference.engine import Engine, frame_for_model  # torch: only this command pays for it
from medview.core.inference.results import short_reason
from medview.resources import bundled_model_path

log = logging.getLogger(__name__)


@dataclass
class _Item:
    """One frame to score, with what its output line needs."""

    instance: object  # InstanceInfo
    frame: int

    @property
    def file(self) -> str:
        return self.instance.ref.display()


def run(args) -> int:
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        raise UsageError(f"{missing[0]}: no such file or folder")
    bundle = load_bundle(args.model or bundled_model_path())
    engine = Engine(bundle, device=args.device, batch_size=getattr(args, "batch_size", 8) or 8)
    cache = None if getattr(args, "no_cache", False) else ResultCache()
    return _infer(args, bundle, engine, cache)


def _infer(args, bundle: ModelBundle, engine: Engine, cache: ResultCache | None) -> int:
    """Scan, report skipped and cached images, score the rest in batches; 1 when any image failed."""
    found = scan(args.paths)
    failed = False
    for err in found.errors:
        failed = True
        _error(args, err.file, err.error)

    pending: list[_Item] = []
    for inst in found.instances:
        if not bundle.applies_to(inst.modality):
            _emit(args, {
                "status": "skipped", "file": inst.ref.display(), "study_uid": inst.study_uid,
                "series_uid": inst.series_uid, "sop_instance_uid": inst.sop_instance_uid,
                "modality": inst.modality,
                "reason": f"modality {inst.modality or 'unknown'} is not one the model applies to "
                          f"({', '.join(bundle.modalities)})",
            })
            continue
        for frame in range(max(1, inst.frames)):
            item = _Item(inst, frame)
            cached = cache.get(inst.sop_instance_uid, frame, bundle.sha256) if cache else None
            if cached is not None:
                _ok(args, item, cached)
            else:
                pending.append(item)

    for start in range(0, len(pending), engine.batch_size):
        batch, images = [], []
        for item in pending[start:start + engine.batch_size]:
            try:
                ds = pixels.read_dataset(item.instance.ref)
                images.append(frame_for_model(bundle.window, ds, item.frame))
                batch.append(item)
            except Exception as exc:  # one unreadable image never stops the others
                failed = True
                _error(args, item.file, short_reason(exc))
        if not images:
            continue
        for item, result in zip(batch, engine.predict_images(images)):
            if isinstance(result, str):
                failed = True
                _error(args, item.file, result)
                continue
            if cache:
                cache.put(item.instance.sop_instance_uid, item.frame, bundle.sha256, result)
            _ok(args, item, result)
    return 1 if failed else 0


def _emit(args, line: dict) -> None:
    if args.json:
        print_json_line(line)
    elif line["status"] == "skipped":
        print(f"{line['file']}: skipped, {line['reason']}")


def _error(args, file: str, reason: str) -> None:
    report_failure(file, reason)
    if args.json:
        print_json_line({"status": "error", "file": file, "error": reason})


def _ok(args, item: _Item, prediction) -> None:
    inst = item.instance
    if args.json:
        print_json_line({
            "status": "ok", "file": item.file, "frame": item.frame, "study_uid": inst.study_uid,
            "series_uid": inst.series_uid, "sop_instance_uid": inst.sop_instance_uid,
            "model": prediction.model, "scores": prediction.scores, "flagged": prediction.flagged,
        })
    else:
        findings = ", ".join(
            f"{label} {score:.3f}{' FLAGGED' if label in prediction.flagged else ''}"
            for label, score in prediction.scores.items()
        )
        frame = f" [frame {item.frame}]" if inst.frames > 1 else ""
        print(f"{item.file}{frame}: {findings} ({prediction.model})")
