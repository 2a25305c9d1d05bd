"""The findings panel and the heatmap overlay: what a reader sees, F and H, alignment with the image."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF

from medview.core.inference.bundle import load_bundle
from medview.core.inference.results import Prediction
from medview.qt.ai.findings_panel import COL_FLAGGED, COL_SCORE, COL_THRESHOLD, FindingsPanel, HeatmapOverlay
from tests.inference_factory import make_bundle


@pytest.fixture()
def panel(qtbot, tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "m", labels=("cardiomegaly", "effusion", "nodule"),
                                     thresholds={"cardiomegaly": 0.5, "effusion": 0.3, "nodule": 0.9}))
    widget = FindingsPanel()
    qtbot.addWidget(widget)
    widget.set_model(bundle)
    widget.show()
    return widget


def _cell(panel, row, col) -> str:
    return panel.table.item(row, col).text()


def test_shows_scores_thresholds_flags_model_and_disclaimer(panel):
    assert panel.objectName() == "findings"
    assert panel.model_label.text() == "Model: tiny 0.1"
    assert "Research use only" in panel.disclaimer.text() and "not for diagnosis" in panel.disclaimer.text()
    assert panel.disclaimer.isVisible()
    panel.set_prediction(Prediction({"cardiomegaly": 0.81, "effusion": 0.2, "nodule": 0.9}, [], None, "tiny@0.1"))
    assert [_cell(panel, r, 0) for r in range(3)] == ["cardiomegaly", "effusion", "nodule"]
    assert [_cell(panel, r, COL_SCORE) for r in range(3)] == ["0.810", "0.200", "0.900"]
    assert [_cell(panel, r, COL_THRESHOLD) for r in range(3)] == ["0.50", "0.30", "0.90"]
    # at or above the threshold is flagged
    assert [_cell(panel, r, COL_FLAGGED) for r in range(3)] == ["yes", "no", "yes"]
    assert panel.flagged() == ["cardiomegaly", "nodule"]

    panel.set_thresholds({"effusion": 0.1, "nodule": 0.95})  # the reader's operating points
    assert panel.flagged() == ["cardiomegaly", "effusion"]
    assert _cell(panel, 2, COL_THRESHOLD) == "0.95"
    panel.set_thresholds(None)  # reset to the bundle's
    assert panel.flagged() == ["cardiomegaly", "nodule"]

    panel.set_prediction(None, "queued")
    assert panel.flagged() == [] and _cell(panel, 0, COL_SCORE) == "—"
    assert panel.status_label.text() == "queued"



def test_the_table_is_rebuilt_only_when_its_rows_change(panel):
    """Each frame shown (cine) sets the prediction again: the same scores keep the table's items as they are."""
    scores = {"cardiomegaly": 0.81, "effusion": 0.2, "nodule": 0.9}
    panel.set_prediction(Prediction(scores, [], None, "tiny@0.1"), "this image")
    item = panel.table.item(0, COL_SCORE)
    panel.set_prediction(Prediction(dict(scores), [], None, "tiny@0.1"), "the case's most suspicious image")
    panel.set_thresholds(None)  # the bundle's, as already in force
    assert panel.table.item(0, COL_SCORE) is item
    assert panel.status_label.text() == "the case's most suspicious image"
    panel.set_prediction(Prediction({**scores, "cardiomegaly": 0.4}, [], None, "tiny@0.1"))
    assert _cell(panel, 0, COL_SCORE) == "0.400" and _cell(panel, 0, COL_FLAGGED) == "no"
    panel.set_thresholds({"cardiomegaly": 0.3})
    assert _cell(panel, 0, COL_THRESHOLD) == "0.30" and _cell(panel, 0, COL_FLAGGED) == "yes"

def test_heatmap_toggle_and_opacity_signals(panel, qtbot):
    with qtbot.waitSignal(panel.heatmap_toggled) as sig:
        panel.heatmap_box.click()  # the reader's click; H goes through the AI controller's action
    assert sig.args == [True] and panel.heatmap_visible()
    with qtbot.waitSignal(panel.opacity_changed) as sig:
        panel.opacity_slider.setValue(70)
    assert sig.args == [pytest.approx(0.7)]
    with qtbot.waitSignal(panel.heatmap_toggled) as sig:
        panel.heatmap_box.click()
    assert sig.args == [False] and not panel.heatmap_visible()


def test_overlay_follows_the_image_transform(qtbot):
    view = pg.GraphicsLayoutWidget()
    qtbot.addWidget(view)
    box = view.addViewBox()
    image = pg.ImageItem(np.zeros((300, 200), np.float32), axisOrder="row-major")
    box.addItem(image)
    overlay = HeatmapOverlay(opacity=0.3)
    overlay.attach(image)
    heat = np.zeros((16, 16), np.float32)
    heat[12, 3] = 1.0  # lower left
    overlay.set_heatmap(heat, (300, 200))
    assert not overlay.is_visible()  # hidden until H
    overlay.set_visible(True)
    assert overlay.is_visible() and overlay.item.opacity() == pytest.approx(0.3)

    hot = np.unravel_index(np.argmax(overlay.item.image), overlay.item.image.shape)
    assert hot == (12 * 8 + 3, 3 * 8 + 3) or hot == (12 * 8 + 4, 3 * 8 + 4)  # smooth, peak kept in place
    scale = 16 / overlay.item.image.shape[0]  # overlay pixels per heat cell

    def hot_spot_in_image_pixels():
        centre = overlay.item.mapToItem(image, QPointF(3.5 / scale, 12.5 / scale))
        return centre.x(), centre.y()

    # heat cell (row 12, col 3) of a 16x16 map lands at the same place of the 300x200 image
    assert hot_spot_in_image_pixels() == pytest.approx((3.5 * 200 / 16, 12.5 * 300 / 16))
    # rotate and flip the image item as a viewer does: the overlay keeps its place on the image
    image.setTransform(pg.QtGui.QTransform().rotate(90).scale(-1, 1))
    assert hot_spot_in_image_pixels() == pytest.approx((3.5 * 200 / 16, 12.5 * 300 / 16))
    scene_img = image.mapToScene(QPointF(3.5 * 200 / 16, 12.5 * 300 / 16))
    scene_heat = overlay.item.mapToScene(QPointF(3.5 / scale, 12.5 / scale))
    assert (scene_heat.x(), scene_heat.y()) == pytest.approx((scene_img.x(), scene_img.y()))

    overlay.set_opacity(1.7)
    assert overlay.item.opacity() == 1.0
    overlay.set_heatmap(None)
    assert not overlay.is_visible()  # nothing to show for an image without a result
