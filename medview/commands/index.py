"""`medview index PATH... [--json] [--no-cache]`: scan studies and report them (SPEC sections 1 and 2).

Imports neither Qt nor torch (nor pydicom, when every file is answered by the index cache), so it starts fast.
"""

from __future__ import annotations

from typing import Any

from medview.commands._output import print_json_line, report_failure
from medview.core.dicom.model import ScanResult, Series, Study
from medview.core.dicom.source import printable
from medview.core.errors import UsageError


def series_json(series: Series) -> dict[str, Any]:
    """One series as SPEC section 2 lists it; rows/columns are those of its main stack."""
    instances = series.instances
    main = series.stacks[0].instances[0] if series.stacks and series.stacks[0].instances else None
    main = main or next((inst for inst in series.objects if inst.has_pixels), None)  # a segmentation's matrix
    return {
        "series_uid": series.series_uid,
        "modality": series.modality,
        "description": series.description,
        "number": series.number,
        "instances": len(instances),
        "frames": sum(max(1, inst.frames) for inst in instances),
        "rows": main.rows if main else 0,
        "columns": main.columns if main else 0,
    }


def study_json(study: Study) -> dict[str, Any]:
    return {
        "study_uid": study.study_uid,
        "patient_id": study.patient_id,
        "patient_name": study.patient_name,
        "study_date": study.study_date,
        "description": study.description,
        "modalities": study.modalities,
        "series": [series_json(s) for s in study.series],
    }


def index_document(result: ScanResult, studies: list[Study]) -> dict[str, Any]:
    """The `index --json` document of SPEC section 2."""
    from medview.core.dicom.series import split_duplicates

    return {
        "root": result.root,
        "files": result.files,
        "skipped_non_dicom": result.skipped_non_dicom,
        "studies": [study_json(s) for s in studies],
        "errors": [{"file": e.file, "error": e.error} for e in result.errors],
        "duplicates": [{"file": inst.ref.display(), "same_as": first.ref.display()}
                       for inst, first in split_duplicates(result.instances)[1]],
    }


def _summary(result: ScanResult, studies: list[Study]) -> str:
    from medview.core.dicom.series import split_duplicates

    objects = sum(len(st.objects) for st in studies)
    duplicates = len(split_duplicates(result.instances)[1])
    images = sum(len(stack.instances) for st in studies for stack in st.stacks)
    also = f" (and {objects} objects without pixel data)" if objects else ""
    also += f", {duplicates} duplicates" if duplicates else ""
    lines = [
        f"{result.root}: {result.files} files, {len(studies)} studies, {images} images{also}, "
        f"{result.skipped_non_dicom} not DICOM, {len(result.errors)} errors"
    ]
    for study in studies:
        date = study.study_date or "no date"
        mods = ", ".join(study.modalities) or "?"
        description = study.description or "(no description)"
        lines.append(f"  study {date}  {description}  [{mods}]  patient {study.patient_id or '?'}")
        for series in study.series:
            s = series_json(series)
            number = "" if s["number"] is None else f"{s['number']} "
            frames = f", {s['frames']} frames" if s["frames"] != s["instances"] else ""
            what = (f"{s['instances']} objects without pixel data" if not series.stacks
                    else f"{s['instances']} images{frames}, {s['rows']}×{s['columns']}")
            lines.append(f"    series {number}{s['modality'] or '?'} {s['description'] or '(no description)'}: {what}")
    return "\n".join(printable(line) for line in lines)


def run(args) -> int:
    """Scan `args.paths`; 0 all fine, 1 some files failed (all others reported), 2 no input usable."""
    from medview.core.dicom.scan import scan
    from medview.core.dicom.series import build_studies

    result = scan(args.paths, use_cache=not getattr(args, "no_cache", False))
    given = _given(args.paths)
    unusable = [e for e in result.errors if e.file in given]  # a missing path or an unreadable folder
    if unusable and len(unusable) >= len(given) and not result.files:
        raise UsageError("; ".join(f"{e.file}: {e.error}" for e in unusable))
    studies = build_studies(result.instances)
    for err in result.errors:
        report_failure(err.file, err.error)
    if args.json:
        print_json_line(index_document(result, studies))
    else:
        print(_summary(result, studies))
    return 1 if result.errors else 0  # a closed pipe (`| head`) is handled once, in cli.main


def _given(paths) -> set[str]:
    import os

    return {printable(os.path.abspath(os.path.expanduser(str(p)))) for p in paths}  # as FileError names them
