"""`medview export PATH --out DIR [--format csv,json,pdf,sr,kos,seg] [--anonymize]`: review results out of medview.

"sr" writes each case's DICOM results: the SR (findings, verdicts, the model's and the reader's measurements),
the KOS of its key images and a SEG per image the model segmented; "kos" and "seg" write only those.

The cases are the studies found under PATH that have review data in the store of this MEDVIEW_HOME. Output
goes only into DIR, which must not lie inside a source folder (medview never writes where it reads studies
from); the sources are only read. Exit codes (SPEC section 1): 0 all fine, 1 some files or cases failed and
the rest was exported, 2 bad usage (unknown format, missing PATH, DIR inside a source folder).
"""

from __future__ import annotations

import os
import sys

from medview.commands._output import report_failure
from medview.core.errors import UsageError
from medview.core.output_folder import check_output_folder


def _check_inputs(paths: list[str]) -> None:
    """Every PATH must exist and be readable: export has nothing to say about a source it cannot see."""
    for given in paths:
        path = os.path.realpath(os.path.expanduser(given))
        if not os.path.exists(path):
            raise UsageError(f"{given}: no such file or folder")
        if not os.access(path, os.R_OK):
            raise UsageError(f"{given}: cannot be read (permission denied)")


def run(args) -> int:
    from medview.core.dicom.scan import scan
    from medview.core.dicom.series import build_studies
    from medview.core.review.export import cached_heatmaps, collect_cases, export_cases, parse_formats
    from medview.core.review.store import ReviewStore

    formats = parse_formats(args.format)
    _check_inputs(list(args.paths))
    out = check_output_folder(args.out, list(args.paths))
    result = scan(list(args.paths))
    failed = False
    for error in result.errors:
        report_failure(error.file, error.error)
        failed = True
    studies = build_studies(result.instances)
    with ReviewStore() as store:
        records = collect_cases(studies, store)
    if not records:
        print(f"medview export: no reviewed cases among the {len(studies)} studies found; nothing written",
              file=sys.stderr)
        return 1 if failed else 0

    def on_error(record, fmt: str, reason: str) -> None:
        nonlocal failed
        failed = True
        report_failure(f"study {record.study_uid}", f"the {fmt.upper()} could not be written: {reason}")

    pdf_writer = None
    if "pdf" in formats:  # Qt only when a PDF is asked for: the other formats start fast
        from medview.qt.review.report_pdf import write_case_pdf as pdf_writer
    try:
        written = export_cases(records, out, formats, anonymize=bool(args.anonymize), on_error=on_error,
                               heatmaps=cached_heatmaps if "pdf" in formats else None, pdf_writer=pdf_writer)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot be written ({exc.strerror or exc})") from exc
    for path in written:
        print(path)
    return 1 if failed else 0
