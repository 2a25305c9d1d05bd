"""The worklist's model and proxy: Qt sorts, filters and paints the cases without calling back into Python.

Each call from Qt into Python must win the GIL from the AI worker; with a Python `data()` and `lessThan`, one
worklist update during scoring stalled the event loop for 50-70 ms. These tests hold both halves: the order
the reader sees is right for every column, and painting or re-sorting runs no Python at all.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
from PySide6.QtCore import Qt

from medview.core.dicom.scan import scan
from medview.core.dicom.series import build_studies
from medview.core.review.store import CaseStatus
from medview.qt.worklist.worklist_model import (
    COL_AI,
    COL_DATE,
    COL_IMAGES,
    COL_PATIENT,
    COL_REVIEW,
    NO_IMAGES_COLOUR,
    SortRole,
    review_cell,
)
from tests.factories import write_image


@pytest.fixture
def cases(tmp_path):
    """Four real studies: names, dates and image counts chosen so that text order and value order differ."""
    spec = [("Zeta^Anna", "P1", "20240105", 9), ("alpha^Ben", "P2", "20231231", 10),
            ("Mu^Carl", "P3", "20240101", 2), ("beta^Dora", "P4", "20240301", 1)]
    for name, pid, date, n in spec:
        study = f"1.2.826.0.1.3680043.8.498.{pid[1:]}"
        for i in range(n):
            write_image(tmp_path / pid / f"{i}.dcm", patient_name=name, patient_id=pid, study_date=date,
                        study_uid=study, series_uid=f"{study}.1", instance_number=i + 1, position=(0, 0, i))
    return build_studies(scan([str(tmp_path)], use_cache=False).instances)


@pytest.fixture
def panel(qtbot, cases):
    from medview.qt.worklist.worklist_panel import WorklistPanel

    p = WorklistPanel()
    qtbot.addWidget(p)
    p.resize(900, 300)
    p.show()
    qtbot.waitExposed(p)
    p.set_studies(cases)
    return p


def _ids(panel) -> list[str]:
    return [panel.proxy.study_at(r).patient_id for r in range(panel.proxy.rowCount())]


def test_each_column_sorts_on_its_value_not_its_text(panel):
    view = panel.view
    view.sortByColumn(COL_PATIENT, Qt.SortOrder.AscendingOrder)
    assert _ids(panel) == ["P2", "P4", "P3", "P1"]  # alpha, beta, Mu, Zeta: case does not matter
    view.sortByColumn(COL_DATE, Qt.SortOrder.AscendingOrder)
    assert _ids(panel) == ["P2", "P3", "P1", "P4"]
    view.sortByColumn(COL_IMAGES, Qt.SortOrder.DescendingOrder)
    assert _ids(panel) == ["P2", "P1", "P3", "P4"]  # 10 before 9: counts, not text


def test_ai_and_review_cells_re_sort_as_they_change_and_keep_the_dimmed_look(panel, cases):
    model, proxy = panel.model, panel.proxy
    uid = {s.patient_id: s.study_uid for s in cases}
    panel.view.sortByColumn(COL_AI, Qt.SortOrder.AscendingOrder)
    for pid, (text, value) in {"P1": ("not flagged 0.10", 3.9), "P2": ("queued", 2.0),
                               "P3": ("flagged 0.70", 0.3), "P4": ("flagged 0.95", 0.05)}.items():
        model.set_ai_status(uid[pid], text, value)
    assert _ids(panel) == ["P4", "P3", "P2", "P1"]
    model.set_ai_status(uid["P1"], "flagged 0.99", 0.01)  # the last case turns suspicious: it rises at once
    assert _ids(panel) == ["P1", "P4", "P3", "P2"]
    first = proxy.index(0, COL_AI)
    assert first.data() == "flagged 0.99" and first.data(Qt.ItemDataRole.ToolTipRole) == "flagged 0.99"

    panel.view.sortByColumn(COL_REVIEW, Qt.SortOrder.AscendingOrder)
    for pid, state in {"P1": (CaseStatus.REVIEWED, "dr.b"), "P2": (CaseStatus.REVIEWED, "dr.a"),
                       "P3": (CaseStatus.IN_PROGRESS, "dr.a"), "P4": (CaseStatus.UNREAD, None)}.items():
        model.set_review_status(uid[pid], *review_cell(*state))
    assert _ids(panel) == ["P4", "P3", "P2", "P1"]  # unread, in progress, then signed off by reviewer

    model.set_studies([*cases, _objects_only(cases[0])])
    row = panel.proxy.row_of("1.2.3.no.images")
    model.set_ai_status("1.2.3.no.images", "not applicable", 5.0)
    cell = proxy.index(row, COL_AI)
    assert cell.data() == "not applicable"
    assert cell.data(Qt.ItemDataRole.ForegroundRole).color().name() == NO_IMAGES_COLOUR  # still dimmed


def _objects_only(like):
    """A case with no image (e.g. an RT plan alone): listed, dimmed."""
    return dataclasses.replace(like, study_uid="1.2.3.no.images", series=[])


def test_painting_filtering_and_re_sorting_call_no_python(panel, cases):
    model = panel.model
    panel.view.sortByColumn(COL_AI, Qt.SortOrder.AscendingOrder)
    calls: list[str] = []

    def profile(frame, event, _arg):
        if event == "call" and frame.f_code.co_name not in ("set_ai_status", "set_cell", "row_of"):
            calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        panel.view.viewport().repaint()
        for i, s in enumerate(cases):
            model.set_ai_status(s.study_uid, f"flagged 0.{i}", 0.5 - i / 10)
        panel.proxy.setFilterFixedString("p")
        panel.proxy.setFilterFixedString("")
        panel.view.viewport().repaint()
    finally:
        sys.setprofile(None)
    own = [c for c in calls if "medview" in c or "tests" in c]
    assert own == [], own
    assert [panel.proxy.study_at(r).study_uid for r in range(4)] == [s.study_uid for s in reversed(cases)]


def test_sort_values_are_one_type_per_column(panel, cases):
    """Qt compares a column's values as the first one's type: a mix would order cases wrongly."""
    model = panel.model
    model.set_ai_status(cases[0].study_uid, "queued", 2)  # an int from a caller still sorts as the others
    model.set_review_status(cases[0].study_uid, *review_cell(CaseStatus.IN_PROGRESS, "dr.k"))
    for col in range(model.columnCount()):
        kinds = {type(model.index(r, col).data(SortRole)) for r in range(model.rowCount())}
        assert len(kinds) == 1, (col, kinds)


def test_the_open_case_stays_in_view_while_scores_re_sort_the_worklist(qtbot):
    """Scores arriving re-sort the rows under the reader: their case stays selected and where it was on screen."""
    from medview.core.dicom.model import Study
    from medview.qt.worklist.worklist_panel import WorklistPanel

    panel = WorklistPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 300)  # about ten of the forty rows in view
    panel.show()
    qtbot.waitExposed(panel)
    studies = [Study(f"1.2.826.0.1.3680043.8.498.{i}", f"P{i:02d}", f"Case^{i}", "20240101", "chest", [])
               for i in range(40)]
    panel.set_studies(studies)
    panel.view.sortByColumn(COL_AI, Qt.SortOrder.AscendingOrder)
    panel.select_study(studies[0].study_uid)
    view, index = panel.view, lambda: panel.proxy.index(panel.proxy.row_of(studies[0].study_uid), 0)
    top = view.visualRect(index()).top()
    for i, study in enumerate(studies[1:], 1):  # each newly scored case ranks above the open one
        with panel.current_row_kept_in_view():
            panel.model.set_ai_status(study.study_uid, f"flagged 0.{i:02d}", 1 - i / 100)
        if i == 5:
            assert view.visualRect(index()).top() == top  # five rows above it now, and the same place on screen
    assert panel.proxy.row_of(studies[0].study_uid) == 39  # moved to the bottom
    selected = [panel.proxy.study_at(i.row()).study_uid for i in view.selectionModel().selectedRows()]
    assert selected == [studies[0].study_uid] and view.currentIndex().row() == 39
    rect = view.visualRect(index())
    assert view.viewport().rect().contains(rect)  # in view, whole
    assert rect.top() >= top  # not scrolled past it: the list moved, the case stayed (as far as the end allows)


def test_a_cine_counts_as_frames_not_images():
    """A 30-frame ultrasound loop is one image of 30 frames in the worklist, the series strip and their tips."""
    from medview.core.dicom.model import InstanceInfo, Series, Stack, Study
    from medview.core.dicom.source import SourceRef
    from medview.qt.viewer.series_strip import stack_label
    from medview.qt.worklist.worklist_model import WorklistModel

    def stack(uid: str, modality: str, frames: list[int]) -> Stack:
        instances = [InstanceInfo(SourceRef(f"/data/{uid}.{i}.dcm"), f"{uid}.{i}", "1.2.840.10008.5.1.4.1.1.3.1",
                                  "1.2.9", uid, modality=modality, frames=n) for i, n in enumerate(frames)]
        return Stack(uid, modality, "Heart", 1, instances)

    cine, stills = stack("1.2.9.1", "US", [30]), stack("1.2.9.2", "US", [1, 1])
    assert stack_label(cine).endswith("\n30 fr") and stack_label(stills).endswith("\n2 im")
    model = WorklistModel()
    model.set_studies([
        Study("1.2.9", "P1", "Echo^Eve", "20240101", "Echo", [Series("1.2.9.1", "US", "", 1, [cine])]),
        Study("1.2.8", "P2", "Echo^Max", "20240101", "Echo", [Series("1.2.9.1", "US", "", 1, [cine, stills])]),
        Study("1.2.7", "P3", "Ct^Carl", "20240101", "CT", [Series("1.2.7.1", "CT", "", 1, [stack("1.2.7.1", "CT", [1] * 12)])]),
    ])
    cells = [(model.index(r, COL_IMAGES).data(), model.index(r, COL_IMAGES).data(Qt.ItemDataRole.ToolTipRole))
             for r in range(3)]
    assert cells == [("30 fr", "1 cine, 30 frames"), ("2 im, 30 fr", "2 images and 1 cine, 30 frames"),
                     ("12", "12 images")]
    assert [model.index(r, COL_IMAGES).data(SortRole) for r in range(3)] == [30, 32, 12]  # what one scrolls through
