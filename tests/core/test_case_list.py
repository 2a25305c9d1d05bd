"""The worklist's cases without Qt: kept studies beside an opened folder, studies joining, the first case."""

from __future__ import annotations

from medview.core.dicom.model import Study
from medview.core.reading.cases import CaseList


def _study(uid: str, description: str = "") -> Study:
    return Study(uid, "P1", "Test^Patient", "20240101", description, [])


def test_kept_studies_follow_the_folder_and_the_folder_wins_a_study_in_both():
    cases = CaseList()
    cached = [_study("1.1", "cache"), _study("1.2", "cache")]
    cases.keep_on_open(lambda: cached)
    folder = [_study("1.2", "folder"), _study("1.3", "folder")]
    listed = cases.beside_kept(folder)
    assert [(s.study_uid, s.description) for s in listed] == [("1.2", "folder"), ("1.3", "folder"), ("1.1", "cache")]
    cached.append(_study("1.4", "cache"))  # what the source holds now, asked at each open
    assert [s.study_uid for s in cases.beside_kept([])] == ["1.1", "1.2", "1.4"]


def test_joining_studies_replace_theirs_in_place_and_the_new_ones_follow():
    cases = CaseList()
    cases.studies = [_study("1.1", "old"), _study("1.2", "old")]
    merged = cases.merged([_study("1.3", "new"), _study("1.1", "new")])
    assert [(s.study_uid, s.description) for s in merged] == [("1.1", "new"), ("1.2", "old"), ("1.3", "new")]
    assert [s.description for s in cases.studies] == ["old", "old"]  # the caller decides to list them
    cases.studies = merged
    assert cases.find_study("1.3") is merged[2] and cases.find_study("9.9") is None


def test_the_first_case_is_the_first_not_signed_off_else_the_top_one():
    order = [_study("1.1"), _study("1.2"), _study("1.3")]
    assert CaseList.first_case([]) is None
    assert CaseList.first_case(order) is order[0]
    assert CaseList.first_case(order, lambda uids: uids[2]) is order[2]
    assert CaseList.first_case(order, lambda uids: None) is order[0]  # all signed off
    asked = []
    CaseList.first_case(order, lambda uids: asked.append(uids))
    assert asked == [["1.1", "1.2", "1.3"]]  # in the worklist's order


def test_the_open_case_is_told_by_its_uid():
    cases = CaseList()
    assert not cases.is_open(_study("1.1"))
    cases.case = _study("1.1", "first scan")
    assert cases.is_open(_study("1.1", "scanned again")) and not cases.is_open(_study("1.2"))
