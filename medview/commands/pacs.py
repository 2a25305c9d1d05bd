"""`medview pacs echo|find|get|send SERVER ...` (SPEC section 8).

Exit codes: 0 all fine; 1 some studies or files failed (the others still done); 2 bad usage or a server that
cannot be used, with one line naming it. Results go to stdout (they may show patient names: the user asked);
failures are one line each on stderr, with UIDs and file names only.
"""

from __future__ import annotations

import sys

from medview.commands._output import print_json_line, report_failure
from medview.core.dicom.source import printable


def run(args) -> int:
    from medview.core.net import resolve_server

    server = resolve_server(args.server)
    return {"echo": _echo, "find": _find, "get": _get, "send": _send}[args.pacs_command](server, args)


def _echo(server, args) -> int:
    from medview.core.net import echo

    echo(server)
    print(f"{server.label()} answers")
    return 0


def _find(server, args) -> int:
    from medview.core.net import StudyQuery, find_studies

    query = StudyQuery(patient_id=args.patient_id, patient_name=args.patient_name, study_date=args.study_date,
                       modality=args.modality, accession=args.accession)
    for match in find_studies(server, query):
        if args.json:
            print_json_line(match.as_json())
        else:
            count = "?" if match.instances is None else match.instances
            print(printable(f"{match.study_uid}  {match.study_date or 'no date'}  {match.patient_id}  "
                            f"{match.patient_name}  [{', '.join(match.modalities) or '?'}]  "
                            f"{match.description or '(no description)'}  {count} instances"))
    return 0


def _get(server, args) -> int:
    from medview.core.net import PacsError, retrieve_study

    failed = unusable = 0
    for uid in args.study_uids:
        try:
            result = retrieve_study(server, uid)
        except PacsError as exc:
            report_failure(uid, str(exc))
            failed += 1
            unusable += 1
            continue
        if args.json:
            print_json_line(result.as_json())
        elif result.complete:
            print(printable(f"{uid}: {result.path} ({result.expected} instances, {result.fetched} fetched now)"))
        else:
            print(printable(f"{uid}: {result.path} (partial: {len(result.missing)} of {result.expected} "
                            "instances missing)"))
        if not result.complete:
            failed += 1
            shown = ", ".join(k.sop_uid for k in result.missing[:5]) + (", ..." if len(result.missing) > 5 else "")
            report_failure(uid, f"{server.label()}: {result.error}; {len(result.missing)} of {result.expected} "
                                f"instances missing ({shown}); run the same `medview pacs get` again to finish")
    if unusable == len(args.study_uids):
        return 2
    return 1 if failed else 0


def _send(server, args) -> int:
    from medview.core.net import send_paths

    results = send_paths(server, args.paths)
    failures = [r for r in results if r.error]
    for result in failures:
        report_failure(result.path, result.error)
    sent = len(results) - len(failures)
    print(f"sent {sent} files to {server.label()}" + (f", {len(failures)} failed" if failures else ""),
          file=sys.stderr)
    if not results:
        report_failure(" ".join(args.paths), "no DICOM files found")
        return 2
    return 1 if failures else 0
