"""The viewer (issue 3) with pytest-qt, offscreen: keys with focus moved around, the display pipeline on
screen, measurements, progressive loading, cancel, failed files, keymap, and create_app per SPEC section 7."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, QRect, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent, QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QProgressBar, QTableView, QWidget

from medview.core.dicom import pixels
from medview.core.dicom.pixels import Window
from medview.core.dicom.source import SourceRef
from medview.core.viewing.keymap import KeymapConflict
from tests.factories import make_zip, truncate, write_image, write_junk, write_series
from tests.qt.helpers import open_window, wait_ready

CT_SLICES = 12


# --------------------------------------------------------------------------------------------- data and app


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    """Two cases: a CT study (12 signed slices + a 3-image series) and a CR radiograph (Imager Pixel Spacing)."""
    root = tmp_path_factory.mktemp("studies")
    ct_pixels = np.full((CT_SLICES, 32, 40), 1000, np.int16)
    ct_pixels[:, :, 20:] = 1300  # left half 1000 - 1024 = -24 HU, right half 276 HU
    study = "1.2.826.0.1.3680043.8.498.77.1"
    for i in range(CT_SLICES):
        ct_pixels[i, 0, 0] = i  # each slice differs
    paths = write_series(root / "ct" / "axial", CT_SLICES, study_uid=study, modality="CT", rows=32, cols=40,
                         signed=True, rescale=(1.0, -1024.0), window=(40, 400), pixel_spacing=(0.5, 0.25),
                         series_number=2, series_description="Axial", patient_id="PCT", patient_name="Ct^Case",
                         study_description="CT CHEST")
    import pydicom

    for i, p in enumerate(paths):  # give each slice its own pattern
        ds = pydicom.dcmread(p)
        ds.PixelData = ct_pixels[i].tobytes()
        ds.save_as(p)
    write_series(root / "ct" / "coronal", 3, study_uid=study, modality="CT", rows=16, cols=16, signed=True,
                 rescale=(1.0, -1024.0), window=(40, 400), series_number=3, series_description="Coronal",
                 patient_id="PCT", patient_name="Ct^Case", study_description="CT CHEST",
                 orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    write_image(root / "cr" / "cr.dcm", modality="CR", rows=48, cols=40, pixel_spacing=None,
                bits_allocated=16, photometric="MONOCHROME1", patient_id="PCR", patient_name="Cr^Case",
                study_date="20240202", study_description="XR CHEST", position=None, orientation=None,
                extra={"ImagerPixelSpacing": [0.2, 0.2]})
    return root


@pytest.fixture
def window(qtbot, studies):
    w = open_window(qtbot, studies, size=(1400, 900))
    ct = next(s for s in w.cases.studies if s.patient_id == "PCT")
    w.cases.open_case(ct)
    wait_ready(qtbot, w)
    yield w
    w.close()


def _dataset(w, index=None):
    v = w.viewer
    i = v.state.index if index is None else index
    inst = v.stack.instances[v.display.frames[i][0]]
    return pixels.read_dataset(SourceRef(inst.ref.path, inst.ref.member))


def _press(qtbot, widget, key, modifier=Qt.KeyboardModifier.NoModifier):
    if not widget.window().isActiveWindow():  # e.g. after full screen, the platform re-activates it
        widget.window().activateWindow()
        qtbot.waitUntil(widget.window().isActiveWindow, timeout=2000)
    widget.setFocus(Qt.FocusReason.OtherFocusReason)
    QApplication.processEvents()
    assert QApplication.focusWidget() is widget
    QTest.keyClick(widget, key, modifier)
    QApplication.processEvents()


def _focus_targets(w):
    """Where a user's focus may be: the worklist table, the series strip, a scroll bar, the image view."""
    return {
        "worklist": w.worklist.view,
        "strip": w.strip,
        "scrollbar": w.worklist.view.verticalScrollBar(),
        "viewer": w.viewer,
    }


# --------------------------------------------------------------------------------------------- SPEC section 7


def test_create_app_spec_section_7(window, medview_home):
    w = window
    app = QApplication.instance()
    assert QApplication.focusWidget() is w.viewer  # keys start on the image, not in the filter field
    assert (app.organizationName(), app.applicationName()) == ("medview", "medview")
    assert isinstance(w.findChild(QTableView, "worklist"), QTableView)
    assert w.findChild(QWidget, "viewer") is w.viewer
    assert w.findChild(QWidget, "findings") is not None
    assert isinstance(w.findChild(QProgressBar, "progress"), QProgressBar)
    settings = QSettings()
    assert Path(settings.fileName()).resolve().is_relative_to(Path(medview_home).resolve())
    assert (Path(medview_home) / "logs" / "medview.log").is_file()


def test_window_shown_without_torch_or_pydicom(tmp_path):
    """The window is painted before anything imports torch or pydicom (a third of a second of the start-up
    time, the benchmark `viewer_startup`); pydicom is imported right after, so the first folder opened does
    not wait for it."""
    code = (
        "import sys\n"
        "from PySide6.QtCore import QEvent, QObject, QTimer\n"
        "from medview.app import create_app\n"
        "app, w = create_app(['medview'])\n"
        "seen = []\n"
        "class FirstPaint(QObject):\n"
        "    def eventFilter(self, obj, event):\n"
        "        if event.type() == QEvent.Type.Paint and not seen:\n"
        "            seen.extend([w.isVisible(), 'torch' in sys.modules, 'pydicom' in sys.modules])\n"
        "        return False\n"
        "watch = FirstPaint()\n"
        "app.installEventFilter(watch)\n"
        "QTimer.singleShot(3000, app.quit)\n"
        "app.exec()\n"
        "print(*seen, 'pydicom' in sys.modules)\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEDVIEW_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["True", "False", "False", "True"], out.stderr



def test_folder_given_at_start_opens_with_pydicom_imported_by_the_gui_thread(tmp_path):
    """`medview gui FOLDER`: the folder's case opens and shows its image, and pydicom is imported whole by the
    GUI thread before the scan's thread may use it. Imported in a thread of its own, it raced the GUI thread
    reading the folder's first header, which then got a half-made pydicom module and showed nothing."""
    folder = tmp_path / "study"
    write_series(folder, 3)
    code = (
        "import importlib.abc, sys, threading\n"
        "first = []\n"
        "class Watch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'pydicom' and not first:\n"
        "            first.append(threading.current_thread().name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Watch())\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QWidget\n"
        "from medview.app import create_app\n"
        f"app, w = create_app(['medview', 'gui', {str(folder)!r}])\n"
        "shown = []\n"
        "def check():\n"
        "    ports = w.reading_state()['viewports']\n"
        "    if ports and ports[0]['loaded']:\n"
        "        shown.append(w.findChild(QWidget, 'failed_files').count())\n"
        "        app.quit()\n"
        "poll = QTimer(); poll.timeout.connect(check); poll.start(50)\n"
        "QTimer.singleShot(30000, app.quit)\n"
        "app.exec()\n"
        "print(first[0] if first else None, bool(shown), shown[0] if shown else None)\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEDVIEW_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=90)
    assert out.stdout.split() == ["MainThread", "True", "0"], out.stderr[-3000:]


# --------------------------------------------------------------------------------------------- keyboard


@pytest.mark.parametrize("where", ["worklist", "strip", "scrollbar", "viewer"])
def test_navigation_keys_work_whichever_panel_has_focus(window, qtbot, where):
    w, v = window, window.viewer
    target = _focus_targets(w)[where]
    if where == "worklist":  # a click on a row, as a user would
        rect = w.worklist.view.visualRect(w.worklist.proxy.index(w.worklist.current_row(), 0))
        QTest.mouseClick(w.worklist.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        wait_ready(qtbot, w)
    assert v.state.count == CT_SLICES
    _press(qtbot, target, Qt.Key.Key_Down)
    assert v.state.index == 1
    _press(qtbot, target, Qt.Key.Key_Up)
    assert v.state.index == 0
    _press(qtbot, target, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    assert v.state.index == 10
    _press(qtbot, target, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    assert v.state.index == 0
    _press(qtbot, target, Qt.Key.Key_End)
    assert v.state.index == CT_SLICES - 1
    _press(qtbot, target, Qt.Key.Key_Home)
    assert v.state.index == 0
    # series of the case
    _press(qtbot, target, Qt.Key.Key_Right)
    assert w.stack_index == 1
    wait_ready(qtbot, w)
    assert v.state.count == 3
    _press(qtbot, target, Qt.Key.Key_Left)
    assert w.stack_index == 0
    wait_ready(qtbot, w)
    # cases in the worklist's (sorted) order
    proxy = w.worklist.proxy
    row = proxy.row_of(w.cases.case.study_uid)
    key, other = (Qt.Key.Key_PageDown, row + 1) if row == 0 else (Qt.Key.Key_PageUp, row - 1)
    _press(qtbot, target, key)
    wait_ready(qtbot, w)
    assert proxy.row_of(w.cases.case.study_uid) == other
    assert w.worklist.current_row() == other  # the worklist follows
    _press(qtbot, target, Qt.Key.Key_PageUp if key == Qt.Key.Key_PageDown else Qt.Key.Key_PageDown)
    wait_ready(qtbot, w)
    assert proxy.row_of(w.cases.case.study_uid) == row


def test_viewing_keys_from_the_worklist(window, qtbot):
    """Window, invert, corner text, zoom, rotate, flip, cine, tools, reset: focus on the worklist table."""
    w, v = window, window.viewer
    table = w.worklist.view
    _press(qtbot, table, Qt.Key.Key_2)
    assert v.state.window == Window(-600, 1500)
    _press(qtbot, table, Qt.Key.Key_0)
    assert v.state.window == Window(40, 400)  # the file's
    _press(qtbot, table, Qt.Key.Key_I)
    assert v.state.invert
    assert [_press(qtbot, table, Qt.Key.Key_Space) or v.state.annotation_mode for _ in range(3)] == \
        ["minimal", "off", "full"]
    z0 = v.zoom_percent()
    _press(qtbot, table, Qt.Key.Key_Plus)
    assert v.zoom_percent() > z0 * 1.2
    _press(qtbot, table, Qt.Key.Key_Minus)
    _press(qtbot, table, Qt.Key.Key_Minus)
    assert v.zoom_percent() < z0
    _press(qtbot, table, Qt.Key.Key_Equal)
    assert v.zoom_percent() == pytest.approx(z0, rel=0.01)
    _press(qtbot, table, Qt.Key.Key_R, Qt.KeyboardModifier.AltModifier)
    assert v.state.rotation == 1
    _press(qtbot, table, Qt.Key.Key_F, Qt.KeyboardModifier.AltModifier)
    assert v.state.flip_h
    for key, tool in ((Qt.Key.Key_D, "distance"), (Qt.Key.Key_E, "ellipse"), (Qt.Key.Key_T, "pan"),
                      (Qt.Key.Key_Z, "zoom"), (Qt.Key.Key_W, "window")):
        _press(qtbot, table, key)
        assert v.tool == tool and w.registry.action(f"tool.{tool}").isChecked()
    _press(qtbot, table, Qt.Key.Key_Escape)
    assert (v.state.invert, v.state.rotation, v.state.flip_h, v.state.window) == (False, 0, False, Window(40, 400))
    _press(qtbot, table, Qt.Key.Key_C)
    assert v.cine_timer.isActive()
    start = v.state.index
    qtbot.waitUntil(lambda: v.state.index != start, timeout=2000)
    _press(qtbot, w.strip, Qt.Key.Key_C)
    assert not v.cine_timer.isActive()


def test_ctrl_f_filters_and_typing_is_not_a_shortcut(window, qtbot):
    w, v = window, window.viewer
    _press(qtbot, w.worklist.view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is w.worklist.filter
    QTest.keyClicks(w.worklist.filter, "pcr")
    assert w.worklist.proxy.rowCount() == 1 and not v.state.invert  # the "I" of nothing: typing stays typing
    QTest.keyClicks(w.worklist.filter, "i")
    assert not v.state.invert and w.worklist.filter.text() == "pcri"
    w.worklist.filter.clear()
    QTest.keyClicks(w.worklist.filter, "xr chest")
    assert w.worklist.proxy.rowCount() == 1
    QTest.keyClick(w.worklist.filter, Qt.Key.Key_Return)
    wait_ready(qtbot, w)
    assert w.cases.case.patient_id == "PCR"


def _right_edge(view, col):
    return view.horizontalHeader().sectionViewportPosition(col) + view.columnWidth(col)


def test_narrow_worklist_hides_the_description_not_names_or_the_review_column(window, qtbot):
    """A 1280-pixel screen: the description goes (the corner text has it) before names and IDs are cut, and
    no column hides behind a sideways scroll bar; widened again, everything comes back."""
    from medview.qt.worklist.worklist_model import COL_DESCRIPTION, COL_ID, COL_PATIENT, COL_REVIEW
    from medview.qt.worklist.worklist_panel import COLUMN_WIDTHS

    w, table = window, window.worklist.view
    header = table.horizontalHeader()
    total = sum(w.splitter.sizes())

    def worklist_width(px):
        w.splitter.setSizes([px, total - px - w.splitter.sizes()[2], w.splitter.sizes()[2]])
        QApplication.processEvents()

    worklist_width(800)
    qtbot.waitUntil(lambda: not header.isSectionHidden(COL_DESCRIPTION), timeout=2000)
    header.resizeSection(COL_PATIENT, 130)  # the reader widens the names: that width is kept where there is room
    wide = {col: table.columnWidth(col) for col in (COL_PATIENT, COL_ID)}
    needed = sum(table.columnWidth(c) for c in range(header.count()) if c != COL_DESCRIPTION)
    worklist_width(needed + 20)  # the others fit; the description would not be readable
    qtbot.waitUntil(lambda: header.isSectionHidden(COL_DESCRIPTION), timeout=2000)
    assert {col: table.columnWidth(col) for col in wide} == wide
    assert _right_edge(table, COL_REVIEW) <= table.viewport().width()
    assert table.horizontalScrollBar().maximum() == 0
    worklist_width(needed - 30)  # narrower still: names and IDs give up their slack
    qtbot.waitUntil(lambda: table.columnWidth(COL_PATIENT) < wide[COL_PATIENT], timeout=2000)
    assert all(table.columnWidth(col) >= COLUMN_WIDTHS[col][0] for col in wide)
    assert _right_edge(table, COL_REVIEW) <= table.viewport().width()
    worklist_width(needed + 200)
    qtbot.waitUntil(lambda: not header.isSectionHidden(COL_DESCRIPTION), timeout=2000)
    assert {col: table.columnWidth(col) for col in wide} == wide
    assert table.columnWidth(COL_DESCRIPTION) >= 64


def test_ctrl_l_folds_the_worklist_and_reading_goes_on(window, qtbot):
    w, v = window, window.viewer
    w.cases.open_case(w.worklist.proxy.study_at(0))
    wait_ready(qtbot, w)
    before, image_width = w.splitter.sizes()[0], v.width()
    assert before > 0 and w.registry.action("view.worklist").isChecked()
    _press(qtbot, w.worklist.view, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert w.splitter.sizes()[0] == 0 and not w.registry.action("view.worklist").isChecked()
    qtbot.waitUntil(lambda: v.width() >= image_width + before - 10, timeout=2000)  # the image took the width
    first = w.cases.case.study_uid
    _press(qtbot, v, Qt.Key.Key_PageDown)  # the reading order goes on while it is folded
    qtbot.waitUntil(lambda: w.cases.case.study_uid != first, timeout=5000)
    _press(qtbot, v, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)  # filtering brings it back
    assert w.splitter.sizes()[0] == pytest.approx(before, abs=5)
    assert QApplication.focusWidget() is w.worklist.filter and w.registry.action("view.worklist").isChecked()


AI_AND_REVIEW_KEYS = ("ai.heatmap", "ai.next_finding", "review.agree", "review.disagree", "review.key_image",
                      "review.sign_off", "review.undo", "case.next_unreviewed", "file.export")


def test_ai_and_review_keys_disabled_until_attached(qtbot):
    """A bare main window shows the AI and review keys disabled; attaching a handler enables the key everywhere."""
    from medview.qt.main_window import MainWindow
    from medview.qt.settings_store import configure_settings

    configure_settings()
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    for action_id in AI_AND_REVIEW_KEYS:
        assert not w.registry.action(action_id).isEnabled()
    calls = []
    _press(qtbot, w.worklist.view, Qt.Key.Key_H)
    assert calls == []
    w.registry.attach("ai.heatmap", lambda checked=False: calls.append("heatmap"))
    _press(qtbot, w.worklist.view, Qt.Key.Key_H)
    assert calls == ["heatmap"]
    w.close()


def test_create_app_attaches_the_ai_and_review_keys(window):
    """The app as `medview gui` builds it has its AI and review controllers wired: every key is live, but for the
    heatmap's on the CT on screen, which the chest model does not read."""
    assert window.ai is not None and window.review is not None
    for action_id in AI_AND_REVIEW_KEYS:
        assert window.registry.action(action_id).isEnabled() == (action_id != "ai.heatmap"), action_id


def test_wheel_scrolls_the_stack(window, qtbot):
    v = window.viewer
    viewport = v.graphics.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    for delta, want in ((-120, 1), (-240, 3), (120, 2)):
        ev = QWheelEvent(centre, viewport.mapToGlobal(centre), QPoint(0, 0), QPoint(0, delta),
                         Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(viewport, ev)
        if delta == -240:  # a fast flick: the two notches are two images
            assert v.state.index == want
        assert v.state.index == want


def test_shortcut_overview_is_generated_from_the_registry(window, qtbot):
    w = window
    from medview.qt.dialogs.shortcuts_dialog import ShortcutsDialog, overview_html

    _press(qtbot, w.worklist.view, Qt.Key.Key_F1)
    dialog = w.findChild(ShortcutsDialog)
    assert dialog is not None and dialog.isVisible()
    text = dialog.browser.toPlainText()
    for spec in w.registry.specs.values():
        if spec.keys:
            assert spec.text in text
    w.registry.set_keys("view.invert", ["J"])
    assert "J" in overview_html(w.registry).split("Invert")[0][-80:]
    dialog.close()


# --------------------------------------------------------------------------------------------- pixels on screen


def _drag(widget, start: QPoint, end: QPoint):
    """A left-button drag in steps, as pyqtgraph needs to see it start."""
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, pos=start)
    for k in range(1, 6):
        p = start + (end - start) * (k / 5)
        ev = QMouseEvent(QEvent.Type.MouseMove, QPointF(p), widget.mapToGlobal(QPointF(p)), Qt.MouseButton.NoButton,
                         Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, ev)
        QApplication.processEvents()
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=end)
    QApplication.processEvents()


def test_window_presets_and_drag_show_what_the_pipeline_says(window, qtbot):
    w, v = window, window.viewer
    _press(qtbot, v, Qt.Key.Key_Down)
    _press(qtbot, v, Qt.Key.Key_Down)
    ds = _dataset(w)
    shown = v.shown_pixels()
    assert np.array_equal(shown, pixels.display_frame(ds))  # the file's window, as opened
    assert len(np.unique(shown)) > 1
    for key, window_ in ((Qt.Key.Key_1, Window(40, 400)), (Qt.Key.Key_2, Window(-600, 1500)),
                         (Qt.Key.Key_3, Window(400, 1800)), (Qt.Key.Key_4, Window(40, 80)),
                         (Qt.Key.Key_5, Window(50, 350))):
        _press(qtbot, w.strip, key)
        assert np.array_equal(v.shown_pixels(), pixels.display_frame(ds, window=window_)), window_
    _press(qtbot, v, Qt.Key.Key_I)
    assert np.array_equal(v.shown_pixels(), pixels.display_frame(ds, window=Window(50, 350), invert=True))
    _press(qtbot, v, Qt.Key.Key_I)
    _press(qtbot, v, Qt.Key.Key_1)
    # drag right and down: wider window, higher centre, and the screen follows the pipeline exactly
    viewport = v.graphics.viewport()
    c = QPoint(viewport.width() // 2, viewport.height() // 2)
    _drag(viewport, c, c + QPoint(120, 60))
    assert v.state.window.width > 400 and v.state.window.center > 40
    assert np.array_equal(v.shown_pixels(), pixels.display_frame(ds, window=v.state.window))


def test_pixel_value_under_the_cursor_in_hu(window, qtbot):
    w, v = window, window.viewer
    viewport = v.graphics.viewport()
    p_image = QPointF(30.5, 10.5)  # column 30 (right half: 1300 stored -> 276 HU), row 10
    scene = v.image.mapToScene(p_image)
    pos = v.graphics.mapFromScene(scene)
    ev = QMouseEvent(QEvent.Type.MouseMove, QPointF(pos), viewport.mapToGlobal(QPointF(pos)), Qt.MouseButton.NoButton,
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, ev)
    qtbot.waitUntil(lambda: "HU" in w.cursor_label.text(), timeout=2000)
    assert w.cursor_label.text().endswith("276 HU") and "x 30" in w.cursor_label.text()


def test_corner_text_three_states_and_never_over_the_centre(window, qtbot):
    w, v = window, window.viewer
    v.state.annotations = 0
    v.corners.set_mode("full")
    v._update_annotations()
    assert "Ct, Case" in v.corners.text("top_left")
    assert "Im 1/12" in v.corners.text("bottom_left") and "Thk 1 mm" in v.corners.text("bottom_left")
    assert "W 400  L 40" in v.corners.text("bottom_right") and "Zoom" in v.corners.text("bottom_right")
    assert "Axial" in v.corners.text("top_right")
    centre = v.graphics.rect().center()
    for label in v.corners.labels.values():
        if label.isVisible():
            assert not label.geometry().contains(centre)
            assert label.width() <= v.graphics.width() * 0.45
    _press(qtbot, v, Qt.Key.Key_Space)
    assert v.corners.text("top_left") == "" and "Im 1/12" in v.corners.text("bottom_left")
    _press(qtbot, v, Qt.Key.Key_Space)
    assert all(v.corners.text(c) == "" for c in v.corners.labels)
    _press(qtbot, v, Qt.Key.Key_Space)
    assert v.corners.text("top_left") != ""


# --------------------------------------------------------------------------------------------- measurements


def test_distance_and_roi_against_known_spacing(window, qtbot):
    w, v = window, window.viewer
    assert v.calibration.spacing == (0.5, 0.25)
    m = v.add_measurement("distance", (10.0, 10.0, 30.0, 40.0))
    want = math.hypot(20 * 0.25, 30 * 0.5)
    assert v.measurement_text(m) == f"{want:.1f} mm"
    assert v._items[-1].label.textItem.toPlainText() == f"{want:.1f} mm"
    roi = v.add_measurement("ellipse", (22.0, 4.0, 16.0, 20.0))  # inside the right half: 276 HU everywhere
    text = v.measurement_text(roi)
    area = math.pi * (16 * 0.25 / 2) * (20 * 0.5 / 2)
    assert text.startswith("mean 276.0 HU  SD 0.0") and "min 276  max 276" in text and f"area {area:.1f} mm²" in text
    # kept per image while the case is open
    _press(qtbot, w.worklist.view, Qt.Key.Key_Down)
    assert v.current_measurements() == [] and v._items == []
    _press(qtbot, w.worklist.view, Qt.Key.Key_Up)
    assert [x.kind for x in v.current_measurements()] == ["distance", "ellipse"] and len(v._items) == 2
    # Delete removes the selected one
    v.select(v._items[0])
    _press(qtbot, w.strip, Qt.Key.Key_Delete)
    assert [x.kind for x in v.current_measurements()] == ["ellipse"]


def test_measurement_drawn_with_the_mouse_and_edited(window, qtbot):
    w, v = window, window.viewer
    _press(qtbot, v, Qt.Key.Key_D)
    viewport = v.graphics.viewport()
    a = v.graphics.mapFromScene(v.image.mapToScene(QPointF(5, 5)))
    b = v.graphics.mapFromScene(v.image.mapToScene(QPointF(35, 25)))
    _drag(viewport, a, b)
    (m,) = v.current_measurements()
    x0, y0, x1, y1 = m.points
    assert abs(x0 - 5) < 1 and abs(y0 - 5) < 1 and abs(x1 - 35) < 1 and abs(y1 - 25) < 1
    assert v.measurement_text(m) == f"{math.hypot((x1 - x0) * 0.25, (y1 - y0) * 0.5):.1f} mm"
    # Esc while drawing cancels only the drawing
    _press(qtbot, v, Qt.Key.Key_E)
    a = v.graphics.mapFromScene(v.image.mapToScene(QPointF(8, 20)))  # away from the line's handles
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, pos=a)
    for k in range(1, 4):
        p = QPointF(a + (b - a) * (k / 4))
        QApplication.sendEvent(viewport, QMouseEvent(QEvent.Type.MouseMove, p, viewport.mapToGlobal(p),
                                                     Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton,
                                                     Qt.KeyboardModifier.NoModifier))
        QApplication.processEvents()
    assert v._drawing is not None
    _press(qtbot, v, Qt.Key.Key_Escape)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=b)
    assert len(v.current_measurements()) == 1


def test_calibration_said_honestly_for_a_radiograph(window, qtbot):
    w, v = window, window.viewer
    cr = next(s for s in w.cases.studies if s.patient_id == "PCR")
    w.cases.open_case(cr)
    wait_ready(qtbot, w)
    assert v.calibration.spacing == (0.2, 0.2) and "detector" in v.calibration.note
    m = v.add_measurement("distance", (0.0, 0.0, 30.0, 40.0))
    assert v.measurement_text(m) == "10.0 mm (detector)"
    assert "Spacing: detector" in v.corners.text("top_right")
    assert np.array_equal(v.shown_pixels(), pixels.display_frame(_dataset(w)))  # MONOCHROME1 inverted by the file


# --------------------------------------------------------------------------------------------- loading


@pytest.fixture
def slow_loader(monkeypatch):
    """Each frame takes 25 ms, as from a slow network share."""
    from medview.qt.workers import load

    original = load.LoadWorker._on_frame

    def slow(self, k):
        time.sleep(0.025)
        original(self, k)

    monkeypatch.setattr(load.LoadWorker, "_on_frame", slow)


@pytest.fixture(scope="module")
def long_series(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("long")
    write_series(root, 60, modality="CT", rows=32, cols=32, signed=True, rescale=(1.0, -1024.0), window=(40, 400),
                 patient_id="LONG")
    return root


def test_first_image_shown_before_the_series_is_loaded(qtbot, long_series, slow_loader):
    from medview.app import create_app

    _, w = create_app(["medview", str(long_series)])
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.viewer._shown is not None, timeout=10000)
    loaded = int(np.count_nonzero(w.viewer.loaded))
    assert loaded < 60, "the first image waited for the whole series"
    assert w.progress.isVisible() and w.cancel_button.isVisible()
    assert "loading…" not in w.viewer.corners.text("bottom_left")  # image 1 is there
    _press(qtbot, w.viewer, Qt.Key.Key_End)
    assert "loading…" in w.viewer.corners.text("bottom_left")  # the last one is not yet
    # the thread ends first, its queued `finished` then hides the bar: wait for what the reader sees
    qtbot.waitUntil(lambda: not w.cases.busy() and not w.progress.isVisible(), timeout=20000)
    assert w.viewer._shown == 59
    assert np.array_equal(w.viewer.shown_pixels(), pixels.display_frame(_dataset(w)))
    w.close()


def test_cancel_keeps_what_was_read(qtbot, long_series, slow_loader):
    from medview.app import create_app

    _, w = create_app(["medview", str(long_series)])
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.viewer._shown is not None, timeout=10000)
    QTest.mouseClick(w.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.cases.busy() and not w.progress.isVisible(), timeout=5000)
    loaded = int(np.count_nonzero(w.viewer.loaded))
    assert 0 < loaded < 60
    assert "cancelled" in w.statusBar().currentMessage()
    _press(qtbot, w.viewer, Qt.Key.Key_End)
    assert "not loaded" in w.viewer.corners.text("bottom_left")
    _press(qtbot, w.viewer, Qt.Key.Key_Home)
    assert w.viewer._shown == 0
    w.close()


def test_failed_files_listed_without_a_dialog(qtbot, tmp_path):
    from medview.app import create_app

    good = write_series(tmp_path / "s", 3, modality="CT", rows=16, cols=16)
    broken = write_image(tmp_path / "s" / "broken.dcm", rows=16, cols=16)
    truncate(broken, -200)
    write_junk(tmp_path / "junk")
    _, w = create_app(["medview", str(tmp_path)])
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: bool(w.cases.studies) and not w.cases.busy(), timeout=15000)
    entries = w.failed.entries()
    assert [Path(f).name for f, _ in entries] == ["broken.dcm"], entries
    assert all(reason and "Traceback" not in reason for _, reason in entries)
    assert w.failed_button.isVisible() and "1 file failed" in w.failed_button.text()
    assert QApplication.activeModalWidget() is None
    QTest.mouseClick(w.failed_button, Qt.MouseButton.LeftButton)
    assert w.failed_dock.isVisible()
    assert len(good) == 3
    w.close()


def test_open_zip_drag_and_drop_and_recent(qtbot, tmp_path, studies):
    from medview.app import create_app

    files = write_series(tmp_path / "z", 2, modality="CT", rows=16, cols=16, patient_id="ZIP")
    archive = make_zip(tmp_path / "studies.zip", files, tmp_path / "z")
    _, w = create_app(["medview"])
    qtbot.addWidget(w)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(archive))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    w.dropEvent(drop)
    qtbot.waitUntil(lambda: bool(w.cases.studies) and not w.cases.busy() and w.viewer._shown is not None, timeout=15000)
    assert [s.patient_id for s in w.cases.studies] == ["ZIP"]
    assert w.recent()[0] == str(archive)
    assert w.recent_menu.actions()[0].text() == str(archive)
    w.close()


# --------------------------------------------------------------------------------------------- keymap and layout


def test_keymap_override_stored_and_conflicts_refused(window, qtbot):
    w, v = window, window.viewer
    from medview.qt.dialogs.keymap_dialog import KeymapDialog

    w.registry.set_keys("image.next", ["J"])
    _press(qtbot, w.worklist.view, Qt.Key.Key_J)
    assert v.state.index == 1
    _press(qtbot, w.worklist.view, Qt.Key.Key_Down)
    assert v.state.index == 1  # Down is no longer bound
    s = QSettings()
    s.beginGroup("keymap")
    assert s.childKeys() == ["image.next"]  # only what differs from the defaults
    s.endGroup()
    with pytest.raises(KeymapConflict, match="Next image"):
        w.registry.set_keys("view.invert", ["J"])
    assert w.registry.keys("view.invert") == ["I"]
    dialog = KeymapDialog(w.registry, w)
    qtbot.addWidget(dialog)
    assert not dialog.set_keys("view.fit", ["I"])
    assert "Invert" in dialog.error.text() and w.registry.keys("view.fit") == ["="]
    # a new window reads the stored keymap
    from medview.qt.main_window import MainWindow

    other = MainWindow()
    qtbot.addWidget(other)
    assert other.registry.keys("image.next") == ["J"]
    other.registry.reset_keys("image.next")
    assert other.registry.keys("image.next") == ["Down"]
    s.beginGroup("keymap")
    assert s.childKeys() == []
    s.endGroup()
    other.shutdown()


def test_geometry_restored_and_checked_against_the_screens(qtbot):
    from medview.qt.main_window import MainWindow

    from medview.app import create_app

    _, w = create_app(["medview"])
    qtbot.addWidget(w)
    w.setGeometry(20, 40, 790, 560)  # the offscreen screen is 800 px wide
    w.splitter.setSizes([150, 280, 360])  # the findings table keeps its minimum width: a narrow worklist
    saved = w.splitter.sizes()
    assert saved[0] >= 140  # not the worklist's minimum: restoring has something to restore
    w.close()
    other = MainWindow()
    qtbot.addWidget(other)
    other.show()
    qtbot.waitExposed(other)
    assert (other.width(), other.height()) == (790, 560)
    assert other.splitter.sizes()[0] == pytest.approx(saved[0], abs=5)
    other.move(50_000, 50_000)  # a screen that is gone
    other.save_layout()
    third = MainWindow()
    qtbot.addWidget(third)
    screens = [s.availableGeometry() for s in QApplication.screens()]
    assert any(g.contains(third.frameGeometry().center()) for g in screens)
    for m in (other, third):
        m.shutdown()


def test_first_window_fills_a_large_screen_and_then_keeps_the_readers_size(qtbot, monkeypatch):
    """1920×1080 less a task bar: the first window takes all of it, frame included, as a normal (not maximised)
    window; the size the reader gives it is the size of the next start."""
    from medview.app import create_app
    from medview.qt import main_window

    area = QRect(0, 0, 1920, 1040)
    screen = type("Screen", (), {"availableGeometry": lambda self: QRect(area)})()
    monkeypatch.setattr(main_window.QGuiApplication, "primaryScreen", staticmethod(lambda: screen))
    _, first = create_app(["medview"])  # settings in this test's MEDVIEW_HOME: none saved yet
    qtbot.addWidget(first)
    qtbot.waitExposed(first)
    qtbot.waitUntil(lambda: first.frameGeometry() == area, timeout=2000)
    assert not first.isMaximized()
    first.setGeometry(40, 30, 700, 500)  # within the offscreen screen, that restoreGeometry checks against
    first.close()
    second = main_window.MainWindow()
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    assert (second.width(), second.height()) == (700, 500) and not second.isMaximized()
    for w in (first, second):
        w.shutdown()


def test_show_instance_opens_case_series_and_image(window, qtbot):
    """The hook the AI ("F": show the finding's image) and review (key images) issues call."""
    w, v = window, window.viewer
    cr = next(s for s in w.cases.studies if s.patient_id == "PCR")
    w.cases.open_case(cr)
    wait_ready(qtbot, w)
    ct = next(s for s in w.cases.studies if s.patient_id == "PCT")
    axial = next(st for s in ct.series for st in s.stacks if st.frame_count == CT_SLICES)
    target = axial.instances[7]
    assert w.cases.show_instance(ct.study_uid, target.sop_instance_uid)
    wait_ready(qtbot, w)
    qtbot.waitUntil(lambda: v._shown == 7, timeout=5000)
    assert w.cases.case.study_uid == ct.study_uid and v.stack is axial
    assert np.array_equal(v.shown_pixels(), pixels.display_frame(_dataset(w)))
    assert not w.cases.show_instance(ct.study_uid, "1.2.3.4.5.6.7.8.9")


def test_errors_reported_in_words_one_dialog_at_most(window, qtbot):
    from medview.app import ErrorReporter
    from medview.core.errors import DicomReadError

    w = window
    reporter = ErrorReporter(w)
    reporter._previous = sys.__excepthook__  # as in the installed app, not pytest-qt's hook
    try:
        raise DicomReadError("scan.dcm: pixel data is cut short")
    except DicomReadError as exc:
        reporter.hook(type(exc), exc, exc.__traceback__)
    assert w.statusBar().currentMessage() == "scan.dcm: pixel data is cut short"
    first = reporter._box
    assert first is not None and first.isVisible() and first.text() == "scan.dcm: pixel data is cut short"
    assert not first.isModal()
    try:
        {}["missing"]
    except KeyError as exc:
        reporter.hook(type(exc), exc, exc.__traceback__)
    assert reporter._box is first  # no second dialog: the status bar and the log say it
    assert "KeyError" in w.statusBar().currentMessage() and "Traceback" not in w.statusBar().currentMessage()
    first.close()


def test_open_help_fullscreen_and_quit_keys(window, qtbot, monkeypatch, studies):
    w = window
    from PySide6.QtWidgets import QFileDialog

    from medview.qt.dialogs.shortcuts_dialog import ShortcutsDialog

    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: asked.append(a) or str(studies / "cr"))
    _press(qtbot, w.strip, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    assert len(asked) == 1
    qtbot.waitUntil(lambda: len(w.cases.studies) == 1 and not w.cases.busy(), timeout=10000)
    assert w.cases.studies[0].patient_id == "PCR" and w.recent()[0] == str(studies / "cr")
    _press(qtbot, w.viewer, Qt.Key.Key_Question)
    assert any(d.isVisible() for d in w.findChildren(ShortcutsDialog))
    for d in w.findChildren(ShortcutsDialog):
        d.close()
    _press(qtbot, w.worklist.view, Qt.Key.Key_F11)
    assert w.isFullScreen()
    _press(qtbot, w.worklist.view, Qt.Key.Key_F11)
    assert not w.isFullScreen()
    _press(qtbot, w.worklist.view, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert not w.isVisible()


def test_fast_case_and_series_switching_ends_on_the_right_image(window, qtbot, slow_loader):
    """Keys faster than the loader: cancelled loads never show up in the case the reader is on."""
    w, v = window, window.viewer
    for key in (Qt.Key.Key_Right, Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Left, Qt.Key.Key_PageDown,
                Qt.Key.Key_PageUp):
        QTest.keyClick(w.viewer, key)
    qtbot.waitUntil(lambda: not w.cases.busy() and v._shown is not None, timeout=15000)
    QApplication.processEvents()
    case_series = {s.series_uid for s in w.cases.case.series}
    assert v.stack.series_uid in case_series and v.stack is w.cases.stacks[w.stack_index].stack
    assert int(np.count_nonzero(v.loaded)) == v.state.count
    assert np.array_equal(v.shown_pixels(), pixels.display_frame(_dataset(w)))
