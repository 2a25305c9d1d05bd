"""`medview export`: output only into --out, the source folder's bytes unchanged, SPEC exit codes."""

from __future__ import annotations

import csv
import hashlib
import os

import pydicom

from medview.cli import main
from medview.core.review.session import ReviewSession
from medview.core.review.store import ReviewStore
from tests.review_data import make_reviewed_source


def _snapshot(root):
    """Every file below root: relative path -> (sha256 of its bytes, mtime_ns)."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, root)] = (hashlib.sha256(fh.read()).hexdigest(),
                                                      os.stat(path).st_mtime_ns)
    return found


def test_full_session_then_export_leaves_the_source_untouched(tmp_path, capsys):
    src = make_reviewed_source(tmp_path / "src")
    before = _snapshot(src.root)
    # a further keyboard session on case B: agree with the open finding, key image, sign off
    with ReviewStore(reviewer="Dr Bea") as store:
        session = ReviewSession(store)
        session.open_case(src.case_b["study"])
        while session.select_next_finding().verdict is not None:
            pass
        session.agree()
        session.toggle_key_image(src.case_b["sop"])
        assert session.sign_off().signed

    out = tmp_path / "export"
    code = main(["export", str(src.root), "--out", str(out), "--format", "csv,json,sr"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert _snapshot(src.root) == before
    names = sorted(p.name for p in out.iterdir())
    # "sr" is the case's DICOM results: the SR and the KOS of its key images (no masks cached: no SEG)
    assert names == sorted(["review_findings.csv", "review_findings.json"] + [
        f"{c['files']}_{kind}.dcm" for c in (src.case_a, src.case_b) for kind in ("SR", "KOS")])
    assert sorted(printed.out.split()) == sorted(str(out / n) for n in names)
    with open(out / "review_findings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["study_uid"] for r in rows} == {src.case_a["study"], src.case_b["study"]}  # not the CT
    b_effusion = next(r for r in rows if r["study_uid"] == src.case_b["study"] and r["finding"] == "effusion")
    assert (b_effusion["verdict"], b_effusion["verdict_by"], b_effusion["case_status"]) == (
        "agree", "Dr Bea", "reviewed")
    assert pydicom.dcmread(out / f"{src.case_b['files']}_SR.dcm").VerificationFlag == "VERIFIED"


def test_anonymized_export_via_cli(tmp_path, capsys):
    src = make_reviewed_source(tmp_path / "src")
    out = tmp_path / "anon"
    assert main(["export", str(src.root), "--out", str(out), "--format", "csv,sr", "--anonymize"]) == 0
    for path in out.iterdir():
        data = path.read_bytes()
        assert b"Doe" not in data and b"PAT-4711" not in data and src.case_a["study"].encode() not in data
        assert src.case_a["study"] not in path.name and "Doe" not in path.name and "2024-03-10" not in path.name


def test_out_inside_the_source_folder_is_refused(tmp_path, capsys):
    src = make_reviewed_source(tmp_path / "src")
    before = _snapshot(src.root)
    for out in (src.root / "exports", src.root, src.root / "PAT-4711"):
        assert main(["export", str(src.root), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "source folder" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    # a single file as PATH: its folder is the source folder
    file_path = src.root / "PAT-4711" / "cxr.dcm"
    assert main(["export", str(file_path), "--out", str(file_path.parent / "x")]) == 2
    assert _snapshot(src.root) == before


def test_bad_usage_exit_2(tmp_path, capsys):
    src = make_reviewed_source(tmp_path / "src")
    assert main(["export", str(src.root), "--out", str(tmp_path / "o"), "--format", "csv,docx"]) == 2
    assert "docx" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_broken_file_is_reported_and_the_rest_exported(tmp_path, capsys):
    src = make_reviewed_source(tmp_path / "src")
    broken = src.root / "PAT-0815" / "broken.dcm"
    broken.write_bytes((src.root / "PAT-0815" / "cxr.dcm").read_bytes()[:400])
    out = tmp_path / "o"
    assert main(["export", str(src.root), "--out", str(out), "--format", "json"]) == 1
    err = capsys.readouterr().err
    assert "broken.dcm" in err and "Traceback" not in err
    assert (out / "review_findings.json").is_file()


def test_no_reviewed_cases_writes_nothing(tmp_path, capsys):
    src = make_reviewed_source(tmp_path / "src")
    only_ct = src.root / "PAT-4711" / "ct"
    out = tmp_path / "o"
    assert main(["export", str(only_ct), "--out", str(out)]) == 0
    assert "no reviewed cases" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
