"""A radiograph that arrives with another system's SR and SEG (pytest-qt, offscreen): the findings panel lists
them under "From other sources" with who made them, the masks and measuring lines are drawn over the
radiograph with a legend, and a report of another kind is named in words while the rest still shows."""

from __future__ import annotations

import shutil

import pydicom
from PySide6.QtWidgets import QWidget

from medview.core.viewing.mask_overlay import rgb
from tests.core.test_incoming import ALGORITHM, exported_objects
from tests.qt.helpers import open_window


def _scene_items(w, name: str) -> list:
    return [item for item in w.viewer.graphics.scene().items()
            if hasattr(item, "objectName") and item.objectName() == name and item.isVisible()]


def test_incoming_sr_and_seg_are_listed_with_their_origin_and_drawn(qtbot, tmp_path):
    case, objects = exported_objects(tmp_path / "src", tmp_path / "out")
    folder = tmp_path / "received"
    folder.mkdir()
    shutil.copy(tmp_path / "src" / "PAT-4711" / "cxr.dcm", folder / "cxr.dcm")
    for path in objects:
        shutil.copy(path, folder / path.name.rsplit("_", 1)[1])
    other = pydicom.dcmread(folder / "SR.dcm")  # the same study's report of another kind: said, not shown
    other.SOPInstanceUID = pydicom.uid.generate_uid()
    other.ConceptNameCodeSequence[0].CodeValue, other.ConceptNameCodeSequence[0].CodeMeaning = "18748-4", "Diagnostic imaging report"
    other.ConceptNameCodeSequence[0].CodingSchemeDesignator = "LN"
    other.save_as(folder / "other_sr.dcm", enforce_file_format=True)

    w = open_window(qtbot, folder)
    assert (w.cases.case.study_uid == case["study"]
            and w.reading_state()["viewports"][0]["sop_instance_uid"] == case["sop"])
    qtbot.waitUntil(lambda: bool(w.incoming.listed()), timeout=5000)

    panel = w.findChild(QWidget, "findings")
    section = panel.findChild(QWidget, "findings-incoming")
    assert section is not None and section.isVisibleTo(w)
    assert section.heading.text() == "From other sources"
    lines = w.incoming.listed()
    sr = next(line for line in lines if line.startswith("SR: "))
    seg = next(line for line in lines if line.startswith("SEG: "))
    assert sr == f"SR: {ALGORITHM}" and ALGORITHM in seg
    date = lines[lines.index(sr) + 1]  # the maker and the object's date on the line below
    assert date.startswith("medview, 20")
    assert "  Cardiomegaly" in lines and "    Cardiothoracic ratio 0.417 (automated)" in lines
    assert "    Cardiothoracic ratio 0.5 (manual)" in lines
    assert {"  \u25a0 heart", "  \u25a0 lungs", "  \u25a0 thorax"} <= set(lines)
    assert any(line.startswith("other_sr.dcm: ") and "not a measurement report" in line for line in lines)

    # on the radiograph: the three masks in one overlay, both CTRs' lines (heart and thorax each), their labels
    [mask] = _scene_items(w, "incoming_mask")
    assert mask.image.shape == (64, 64, 4)
    heart_colour = w.incoming._colours[next(k for k in w.incoming._colours if k[1] == 1)]
    assert tuple(mask.image[24, 30, :3]) == rgb(heart_colour) and mask.image[24, 30, 3] > 200  # the heart's edge
    assert mask.image[0, 0, 3] == 0
    assert len(_scene_items(w, "incoming_line")) == 4
    labels = sorted(item.toPlainText() for item in _scene_items(w, "incoming_label"))
    assert labels == [f"Cardiothoracic ratio 0.417 (automated, from {ALGORITHM})",
                      "Cardiothoracic ratio 0.5 (manual, by Demo Ines)"]  # the reader's correction
    legend = w.incoming.overlay.legend_text()
    assert all(name in legend for name in ("heart", "lungs", "thorax")) and ALGORITHM in legend
    assert w.findChild(QWidget, "incoming_legend").isVisibleTo(w)
