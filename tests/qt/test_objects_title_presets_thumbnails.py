"""A radiologist's review of the running app, on pydicom's real files (pytest-qt, offscreen): objects without
pixels (RT Plan/Struct) are listed but never offered as images, the window title says "medview" once, the
shortcut overview says what every preset key does, and a series whose middle image cannot be decoded gets a
real thumbnail (or says it has none) while the viewer shows exactly what `display_frame` gives."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import Qt
from pydicom.uid import generate_uid

from medview.core.dicom import pixels
from medview.core.dicom.source import SourceRef
from medview.qt.viewer.series_strip import thumbnail
from medview.qt.worklist.worklist_model import COL_IMAGES, NO_IMAGES
from tests.factories import copy_testdata, mixed_objects_folder, undecodable_copy
from tests.qt.helpers import open_window, wait_ready


def _row(w, study):
    return w.worklist.proxy.row_of(study.study_uid)


def _images_cell(w, study, role=Qt.ItemDataRole.DisplayRole):
    return w.worklist.proxy.index(_row(w, study), COL_IMAGES).data(role)


def _strip_done(qtbot, w) -> None:
    qtbot.waitUntil(lambda: w.strip._worker is None or w.strip._worker.isFinished(), timeout=15000)
    qtbot.wait(50)  # the worker's last queued signal


# ------------------------------------------------------------------------------------------ 1: non-image objects


def test_objects_without_pixels_are_listed_but_never_offered_as_images(qtbot, tmp_path):
    files = mixed_objects_folder(tmp_path / "mixed")
    w = open_window(qtbot, tmp_path / "mixed")
    assert len(w.cases.studies) == 2  # nothing silently disappears
    ct = next(s for s in w.cases.studies if s.stacks)
    struct = next(s for s in w.cases.studies if not s.stacks)

    # images plus an RT Plan: only the CT is in the strip and the viewer, exactly as the pipeline shows it
    w.cases.open_case(ct)
    wait_ready(qtbot, w)
    assert [ls.stack.modality for ls in w.cases.stacks] == ["CT"] and w.strip.count() == 1
    assert w.viewer.stack.frame_count == 1 and not w.no_images.isVisible()
    assert np.array_equal(w.viewer.shown_pixels(), pixels.display_frame(pixels.read_dataset(str(files["ct"]))))
    assert _images_cell(w, ct) == "1" and "1 RTPLAN object" in _images_cell(w, ct, Qt.ItemDataRole.ToolTipRole)

    # only an RT Struct: listed with "none" images, a message instead of a blank viewer, no failed file
    assert _images_cell(w, struct) == NO_IMAGES
    assert "No images" in _images_cell(w, struct, Qt.ItemDataRole.ToolTipRole)
    assert w.worklist.proxy.index(_row(w, struct), 0).data(Qt.ItemDataRole.ForegroundRole) is not None
    w.cases.open_case(struct)
    qtbot.wait(200)
    assert not w.cases.busy() and w.cases.stacks == [] and w.strip.count() == 0
    assert w.viewer.display is None and w.viewer._shown is None
    assert w.no_images.isVisible() and w.no_images.geometry() == w.viewer.rect()
    assert "No images in this case" in w.no_images.text() and "RTSTRUCT" in w.no_images.text()
    assert w.failed.count() == 0 and not w.failed_button.isVisible()
    # reading keys on a case without images: nothing to do, nothing breaks
    for key in (Qt.Key.Key_Down, Qt.Key.Key_Right, Qt.Key.Key_1):
        qtbot.keyClick(w.viewer, key)
    assert w.failed.count() == 0

    w.cases.step_case(-1 if _row(w, struct) > _row(w, ct) else 1)  # Page Up/Down back to the CT: the message goes
    wait_ready(qtbot, w)
    assert w.cases.case is ct and not w.no_images.isVisible()
    w.close()


# ------------------------------------------------------------------------------------------ 3: the window title


def test_window_title_names_the_case_or_folder_and_medview_once(qtbot, tmp_path):
    from medview.app import create_app

    mixed_objects_folder(tmp_path / "mixed")
    (tmp_path / "empty").mkdir()
    w = open_window(qtbot, tmp_path / "mixed")
    title = w.windowTitle()
    assert title == "CompressedSamples, CT1 · 1CT1 · 2004-01-19 — medview", title
    # Qt appends the display name on X11/Wayland only to a title that does not end with it: never twice
    assert title.count("medview") == 1 and title.endswith(" — medview")
    struct = next(s for s in w.cases.studies if not s.stacks)
    w.cases.open_case(struct)
    assert w.windowTitle() == "Test, Phantom30sep · tPhantom30sep — medview"
    w.close()

    _app, empty = create_app(["medview", str(tmp_path / "empty")])
    qtbot.addWidget(empty)
    qtbot.waitUntil(lambda: bool(empty.cases.opened_paths) and not empty.cases.busy(), timeout=15000)
    assert empty.cases.case is None and empty.windowTitle() == "empty — medview"
    empty.close()


# ------------------------------------------------------------------------------------------ 4: preset keys


def test_shortcut_overview_says_what_every_preset_key_does(qtbot):
    from PySide6.QtWidgets import QWidget

    from medview.qt.actions import ActionRegistry
    from medview.qt.dialogs.shortcuts_dialog import ShortcutsDialog

    parent = QWidget()
    qtbot.addWidget(parent)
    registry = ActionRegistry(parent)
    dialog = ShortcutsDialog(registry, parent)
    lines = dialog.browser.toPlainText().splitlines()
    for n in range(1, 10):
        assert registry.keys(f"window.preset{n}") == [str(n)]  # SPEC section 6's bindings stay
        row = lines[lines.index(str(n)) + 1]  # the key, then what it does
        presets = [(mod, p[n - 1]) for mod, p in pixels.PRESETS.items() if len(p) >= n]
        for mod, (name, window) in presets:
            assert f"{mod} {name} {window.center:g}/{window.width:g}" in row, row
        if not presets:  # 6-9: said to do nothing, not left as a bare "Window preset 6"
            assert row != f"Window preset {n}" and "the window stays as it is" in row, row
            assert "the window stays as it is" in registry.action(f"window.preset{n}").text()  # menus alike
    text = dialog.browser.toPlainText()
    assert "level/width" in text and "CT in HU" in text  # how to read "40/400"
    dialog.close()


# ------------------------------------------------------------------------------------------ 5: NM thumbnails


@pytest.fixture
def nm_series(tmp_path):
    """pydicom's NM whole-body images (JPEG 2000 and JPEG Lossless, signed 16-bit) as one series of three, its
    middle image a corrupt copy that no decoder can read."""
    folder = tmp_path / "nm"
    good = copy_testdata("JPEG2000.dcm", folder / "a.dcm")  # InstanceNumber 3
    broken = undecodable_copy("JPEG2000.dcm", folder / "b.dcm", SOPInstanceUID=generate_uid(), InstanceNumber=4)
    lossless = copy_testdata("JPEG-LL.dcm", folder / "c.dcm", InstanceNumber=5)
    return folder, [good, broken, lossless]


def test_nm_thumbnail_skips_an_undecodable_middle_image_and_the_viewer_shows_the_pipeline(qtbot, nm_series):
    folder, (good, broken, lossless) = nm_series
    w = open_window(qtbot, folder)
    (ls,) = w.cases.stacks
    assert ls.stack.modality == "NM" and [i.ref.path for i in ls.stack.instances] == [str(good), str(broken),
                                                                                     str(lossless)]
    _strip_done(qtbot, w)
    lossless_ds = pixels.read_dataset(SourceRef(str(lossless)))
    # the middle image cannot be decoded: the next one's display_frame, shrunk, not a black square
    assert np.array_equal(w.strip.thumbnails[0], thumbnail(pixels.display_frame(lossless_ds)))
    assert w.strip.thumbnails[0].max() > 0
    # the viewer: exactly display_frame, image by image (the window the series opened with is kept on scrolling)
    good_ds = pixels.read_dataset(str(good))
    assert np.array_equal(w.viewer.shown_pixels(), pixels.display_frame(good_ds))
    assert w.viewer.state.window == pixels.display_voi(good_ds)
    w.viewer.go(2)
    qtbot.waitUntil(lambda: w.viewer._shown == 2, timeout=10000)
    assert np.array_equal(w.viewer.shown_pixels(), pixels.display_frame(lossless_ds, window=w.viewer.state.window))
    assert w.failed.count() == 1  # the corrupt copy, once the loader met it
    w.close()


def test_a_stack_that_cannot_be_decoded_says_so_instead_of_a_black_thumbnail(qtbot, tmp_path):
    broken = undecodable_copy("JPEG2000.dcm", tmp_path / "nm" / "b.dcm")
    from medview.app import create_app

    _app, w = create_app(["medview", str(broken.parent)])
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: bool(w.cases.studies) and not w.cases.busy(), timeout=15000)
    _strip_done(qtbot, w)
    assert w.strip.count() == 1 and w.strip.thumbnails == {}
    item = w.strip.item(0)
    assert "No thumbnail" in item.toolTip() and "cannot decode" in item.toolTip()
    icon = item.icon().pixmap(item.icon().availableSizes()[0]).toImage()
    colours = {icon.pixelColor(x, y).name() for x in range(icon.width()) for y in range(icon.height())}
    assert colours != {"#000000"} and len(colours) > 2  # a framed, lettered placeholder
    w.close()
