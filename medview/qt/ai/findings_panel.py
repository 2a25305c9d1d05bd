"""The findings panel (`findings`) and the heatmap overlay drawn over the image view.

The panel is a thin view of plain data: the model's bundle (name, version, findings, thresholds) and one
`Prediction`. Flagged means score at or above the threshold in force (the bundle's, or the reader's own
from the preferences). It always shows the "research use only" line: the bundled model is trained on
synthetic phantoms. The overlay is a pyqtgraph `ImageItem` placed in the image's own pixel coordinates, so
added as a child of the viewer's image item (or to its ViewBox) it follows zoom, pan, rotation and flip.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medview.core.inference.bundle import RESEARCH_USE_ONLY, flagged_labels
from medview.core.viewing.findings_text import format_score
from medview.core.viewing.heatmap import resize_bilinear
from medview.qt.style import HEATMAP_OPACITY, heatmap_lut

COL_LABEL, COL_SCORE, COL_THRESHOLD, COL_FLAGGED = range(4)
HEADERS = ("Finding", "Score", "Threshold", "Flagged")
UPSAMPLE = 8  # the overlay image is the coarse map enlarged this many times (bilinear)


class FindingsPanel(QWidget):
    """Per finding: label, score, threshold, flagged; the model's name and version; heatmap controls."""

    finding_selected = Signal(str)     # a finding's label, when the reader selects its row: its heatmap
    heatmap_toggled = Signal(bool)     # H
    opacity_changed = Signal(float)    # 0..1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findings")
        self._labels: list[str] = []
        self._bundle_thresholds: dict[str, float] = {}
        self._thresholds: dict[str, float] = {}
        self._scores: dict[str, float] = {}

        self.model_label = QLabel("No model loaded")
        self.model_label.setObjectName("findings-model")
        self.model_label.setWordWrap(True)  # a long model name or note must not widen the panel
        self.status_label = QLabel("")
        self.status_label.setObjectName("findings-status")
        self.status_label.setWordWrap(True)

        self.table = QTableWidget(0, len(HEADERS))
        self.table.setObjectName("findings-table")
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        # every column as wide as its text (a finding's name is never elided); the last one takes the rest
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setWordWrap(False)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.itemSelectionChanged.connect(self._on_selection)
        # the width a typical row needs, reserved from the start: when the model loads and its first scores
        # arrive the panel must not widen, or the image would shrink and refit under the reader's mouse
        self._reserve_width(("cardiomegaly", "0.000", "0.00", "yes"))

        self.heatmap_box = QCheckBox("Heatmap (H)")
        self.heatmap_box.setObjectName("findings-heatmap")
        self.heatmap_box.setToolTip("Where the model looked (class activation map)")
        self.heatmap_box.toggled.connect(self.heatmap_toggled)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setObjectName("findings-opacity")
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(55)
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.opacity_slider.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))

        self.disclaimer = QLabel(RESEARCH_USE_ONLY)
        self.disclaimer.setObjectName("findings-disclaimer")
        self.disclaimer.setWordWrap(True)
        self.disclaimer.setStyleSheet("font-weight: bold; color: #d08000;")

        controls = QHBoxLayout()
        controls.addWidget(self.heatmap_box)
        controls.addWidget(QLabel("Opacity"))
        controls.addWidget(self.opacity_slider, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.model_label)
        layout.addWidget(self.table)
        layout.addWidget(self.status_label)
        layout.addLayout(controls)
        layout.addWidget(self.disclaimer)
        layout.addStretch(1)  # the table is as tall as its rows: the room below goes to the panel under it

    # -- data in ---------------------------------------------------------------------------------------------
    def set_model(self, bundle) -> None:
        """The loaded model (a ModelBundle or anything with name, version, labels, thresholds)."""
        self.model_label.setText(f"Model: {bundle.name} {bundle.version}")
        self.model_label.setToolTip(getattr(bundle, "description", ""))
        self._labels = list(bundle.labels)
        self._bundle_thresholds = dict(bundle.thresholds)
        self._thresholds = dict(bundle.thresholds)
        self._scores = {}
        self._refresh()

    def set_model_error(self, reason: str) -> None:
        self.model_label.setText("No AI findings: the model cannot be used")
        self.status_label.setText(reason)

    def set_thresholds(self, thresholds: dict[str, float] | None) -> None:
        """The reader's operating points; None resets to the bundle's."""
        thresholds = {**self._bundle_thresholds, **(thresholds or {})}
        if thresholds != self._thresholds:  # the same rows: no rebuild
            self._thresholds = thresholds
            self._refresh()

    def thresholds(self) -> dict[str, float]:
        return dict(self._thresholds)

    def set_prediction(self, prediction, status: str = "") -> None:
        """Show one image's scores (a Prediction, or None with a status such as "queued" or an error)."""
        scores = dict(prediction.scores) if prediction is not None else {}
        self.status_label.setText(status)
        if scores != self._scores:  # called per frame shown (cine): the table is rebuilt only when its rows change
            self._scores = scores
            self._refresh()

    def flagged(self) -> list[str]:
        """The shown image's flagged findings, in the bundle's label order (the one rule: `flagged_labels`)."""
        scores = {label: self._scores[label] for label in self._labels if label in self._scores}
        return flagged_labels(scores, self._thresholds)

    # -- F and H -----------------------------------------------------------------------------------------------
    def selected_finding(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self._labels[rows[0].row()] if rows else None

    def heatmap_visible(self) -> bool:
        return self.heatmap_box.isChecked()

    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    # -- drawing ---------------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        selected = self.selected_finding()
        self.table.blockSignals(True)
        self.table.setRowCount(len(self._labels))
        flagged = set(self.flagged())
        for row, label in enumerate(self._labels):
            score = self._scores.get(label)
            cells = (
                label.replace("_", " "),
                "—" if score is None else format_score(score, 3),
                f"{self._thresholds.get(label, 0.5):.2f}",
                "—" if score is None else ("yes" if label in flagged else "no"),
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col in (COL_SCORE, COL_THRESHOLD):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if label in flagged:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, col, item)
        if selected in self._labels:
            self.table.selectRow(self._labels.index(selected))
        self.table.blockSignals(False)
        self._fit_height()

    def _fit_height(self) -> None:
        """As tall as the header and the rows (at least one row), so no empty grey box fills the panel."""
        rows = max(1, self.table.rowCount())
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(r) for r in range(self.table.rowCount())) or \
            self.table.verticalHeader().defaultSectionSize() * rows
        self.table.setFixedHeight(height)
        # ... and never narrower than its columns: the splitter then keeps "cardiomegaly 0.997 0.50 yes" whole
        self._reserve_width()

    def _reserve_width(self, sample_row: tuple[str, ...] | None = None) -> None:
        """Never narrower than the columns need for the rows shown (or `sample_row`); it only ever grows."""
        header = self.table.horizontalHeader()
        metrics = self.table.fontMetrics()
        width = 0
        for c in range(len(HEADERS)):
            content = self.table.sizeHintForColumn(c)
            if sample_row is not None:
                content = max(content, metrics.horizontalAdvance(sample_row[c]) + 16)
            width += max(header.sectionSizeHint(c), content)
        width += 2 * self.table.frameWidth() + 4
        if width > self.table.minimumWidth():
            self.table.setMinimumWidth(width)

    def _on_selection(self) -> None:
        label = self.selected_finding()
        if label is not None:
            self.finding_selected.emit(label)


class HeatmapOverlay:
    """A colour-mapped heatmap `ImageItem` stretched over the image in its pixel coordinates.

    `attach(image_item)` makes it a child of the viewer's image item, so it inherits that item's transform
    (zoom, pan, rotation, flip); `attach(view_box)` adds it to the ViewBox when the viewer transforms the view.
    """

    def __init__(self, colormap: str = "inferno", opacity: float = HEATMAP_OPACITY) -> None:
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setObjectName("heatmap")
        self.item.setLookupTable(heatmap_lut(colormap))
        self.item.setZValue(10)
        self.item.setOpacity(opacity)
        self.item.setVisible(False)
        self._has_data = False
        self._wanted = False
        self._strength = 1.0

    def attach(self, target) -> None:
        scene = self.item.scene()
        if scene is not None and scene is not target.scene():  # another view's: out of that scene first
            self.item.setParentItem(None)
            scene.removeItem(self.item)
        if isinstance(target, pg.ViewBox):
            target.addItem(self.item)
        else:
            self.item.setParentItem(target)

    def set_heatmap(self, heatmap: np.ndarray | None, image_shape: tuple[int, int] | None = None,
                    strength: float = 1.0) -> None:
        """A [h, w] map in 0..1 over an image of `image_shape` (rows, cols), drawn at `strength` (see
        `heatmap_strength`); None clears it."""
        if heatmap is None:
            self.item.clear()
            self._has_data = False
        else:
            coarse = np.asarray(heatmap, dtype=np.float32)
            # enlarged 8x, smooth rather than blocky; the item is stretched over the image
            smooth = resize_bilinear(coarse, (coarse.shape[0] * UPSAMPLE, coarse.shape[1] * UPSAMPLE))
            data = np.ascontiguousarray(smooth * np.float32(strength))
            self._strength = float(strength)
            self.item.setImage(data, levels=(0.0, 1.0), autoLevels=False)
            rows, cols = image_shape if image_shape is not None else coarse.shape
            self.item.setRect(QRectF(0.0, 0.0, float(cols), float(rows)))
            self._has_data = True
        self.item.setVisible(self._wanted and self._has_data)

    def has_heatmap(self) -> bool:
        return self._has_data

    def strength(self) -> float:
        """How strongly the map is drawn (`heatmap_strength`): below 1 its finding is not flagged."""
        return self._strength

    def wanted(self) -> bool:
        """Whether the reader has the heatmap switched on (it shows only where the image has one)."""
        return self._wanted

    def set_visible(self, visible: bool) -> None:
        self._wanted = bool(visible)
        self.item.setVisible(self._wanted and self._has_data)

    def is_visible(self) -> bool:
        return self.item.isVisible()

    def set_opacity(self, opacity: float) -> None:
        self.item.setOpacity(float(np.clip(opacity, 0.0, 1.0)))
