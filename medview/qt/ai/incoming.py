"""AI results that came with the study from elsewhere (SEG, TID 1500 SR), drawn over their source images and
listed in the findings panel under "From other sources", each with who made it.

Reading and state are `medview.core.dicom.incoming`; the masks' pixels `medview.core.viewing.mask_overlay`.
Here only the drawing: the overlay items are children of the viewer's image item (image pixel coordinates,
so they follow zoom, pan, rotation and flip), named `incoming_mask`, `incoming_line` and `incoming_label`;
the legend of the segments is a label over the view (`incoming_legend`). Lines are dashed, so a reader tells
them at a glance from medview's own model, whose lines are solid.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractScrollArea, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from medview.core.dicom.incoming import (
    IncomingObjects,
    Origin,
    ReportedFinding,
    SegmentMask,
    read_incoming,
)
from medview.core.viewing.mask_overlay import overlay_rgba, segment_colour
from medview.core.viewing.measure import PIXEL_CENTRE
from medview.qt.ai.ratio_lines import BACKDROP, HEART_PEN, NORMAL_COLOUR, THORAX_PEN

HEADING = "From other sources"
LINE_COLOURS = (HEART_PEN.color().name(), THORAX_PEN.color().name(), "#b2ff59", "#ea80fc")
PROBLEM_COLOUR = "#ffab91"
LEGEND_MARGIN = 8


def mask_colours(objects: IncomingObjects) -> dict[tuple[Origin, int], str]:
    """One colour per segment of every SEG of the case, the same on every image and in the panel."""
    colours: dict[tuple[Origin, int], str] = {}
    for origin in objects.origins:
        for number, _label in objects.segments(origin):
            colours[(origin, number)] = segment_colour(len(colours))
    return colours


def measurement_label(measurement, finding: ReportedFinding) -> str:
    """"Cardiothoracic ratio 0.417 (automated, from demo-cxr 1.2.0)", "... (manual, by Demo Ines)"."""
    how = f"{measurement.method.lower()}, " if measurement.method else ""
    if not measurement.algorithm and measurement.method.lower() == "manual":
        return f"{measurement.text()} ({how}by {finding.origin.person or 'a reader'})"
    return f"{measurement.text()} ({how}from {measurement.algorithm or finding.origin.source})"


class IncomingOverlay:
    """The masks, lines and labels of one image, and the legend of its segments."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.parent = viewer.image
        self.mask_item = pg.ImageItem(axisOrder="row-major")
        self.mask_item.setObjectName("incoming_mask")
        self.mask_item.setParentItem(self.parent)
        self.mask_item.setZValue(8)  # under the heatmap (10) and every measurement
        self.mask_item.setVisible(False)
        self.lines: list[pg.PlotCurveItem] = []
        self.labels: list[pg.TextItem] = []
        self.legend = QLabel(viewer.graphics)
        self.legend.setObjectName("incoming_legend")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        self.legend.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.legend.setStyleSheet("background: rgba(0, 0, 0, 170); color: #e8e8e8; padding: 2px 6px;")
        self.legend.hide()
        viewer.resized.connect(self._place_legend)
        self._key = None

    def show(self, key, masks: list[SegmentMask], findings: list[ReportedFinding], colours: dict,
             image_shape: tuple[int, int]) -> None:
        """Draw what arrived for the image `key` (the same key again changes nothing)."""
        if key == self._key:
            return
        self.clear()
        self._key = key
        if masks:
            rgba = overlay_rgba([(m.mask, colours.get((m.origin, m.number), segment_colour(m.number - 1)))
                                 for m in masks])
            self.mask_item.setImage(rgba, autoLevels=False, levels=None)
            rows, cols = image_shape
            self.mask_item.setRect(QRectF(0.0, 0.0, float(cols), float(rows)))
            self.mask_item.setVisible(True)
            entries = [f'<span style="color:{colours.get((m.origin, m.number), "#ffffff")}">&#9632;</span> '
                       f"{html.escape(m.label)}" for m in masks]
            sources = sorted({m.origin.source for m in masks})
            self.legend.setText("&nbsp;&nbsp;".join(entries)
                                + f'&nbsp;&nbsp;<span style="color:#b0b0b0">(SEG from {html.escape(", ".join(sources))})'
                                  "</span>")
            self.legend.show()
            self._place_legend()
        sop, frame = key
        used: dict[tuple[int, int], int] = {}
        for finding in findings:
            for measurement in finding.measurements:
                drawn = [g for g in measurement.graphics if (g.sop_instance_uid, g.frame) == (sop, frame)]
                for n, graphic in enumerate(drawn):
                    self._line(graphic, LINE_COLOURS[n % len(LINE_COLOURS)])
                if drawn:
                    self._label(measurement_label(measurement, finding), drawn[-1].points, used)
            for graphic in finding.regions:
                if (graphic.sop_instance_uid, graphic.frame) == (sop, frame):
                    self._line(graphic, LINE_COLOURS[2])
                    self._label(f"{finding.finding} (from {finding.algorithm or finding.origin.source})",
                                graphic.points, used)

    def _line(self, graphic, colour: str) -> None:
        points, closed = graphic.outline()
        points = np.asarray(points, dtype=np.float64) + PIXEL_CENTRE  # pixel index -> item coordinates
        if closed:
            points = np.vstack([points, points[:1]])
        pen = pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine)
        if len(points) == 1 or graphic.kind in ("POINT", "MULTIPOINT"):
            item = pg.ScatterPlotItem(points[:, 0], points[:, 1], symbol="+", size=14, pen=pen, brush=None)
        else:
            item = pg.PlotCurveItem(points[:, 0], points[:, 1], pen=pen)
        item.setObjectName("incoming_line")
        item.setParentItem(self.parent)
        item.setZValue(12)
        self.lines.append(item)

    def _label(self, text: str, points, used: dict) -> None:
        """The label under the lowest point of what it names; labels at the same place stack downwards."""
        pts = np.asarray(points, dtype=np.float64) + PIXEL_CENTRE
        bottom = pts[np.argmax(pts[:, 1])]
        spot = (int(round(pts[:, 0].mean() / 8)), int(round(bottom[1] / 8)))
        n = used.get(spot, 0)
        used[spot] = n + 1
        label = pg.TextItem(text, color=NORMAL_COLOUR, anchor=(0.5, -0.25 - 1.15 * n), fill=BACKDROP,
                            border=pg.mkPen("#000000"))
        label.setObjectName("incoming_label")
        label.setParentItem(self.parent)
        label.setPos(float(pts[:, 0].mean()), float(bottom[1]))
        label.setZValue(13)
        self.labels.append(label)

    def _place_legend(self) -> None:
        """Bottom centre of the view, between the corner texts."""
        if not self.legend.isVisible():
            return
        graphics = self.legend.parentWidget()
        room = max(160, int(graphics.width() * 0.6))  # one line where it fits; wrapped only when it does not
        self.legend.setWordWrap(False)
        natural = self.legend.sizeHint().width()
        self.legend.setWordWrap(natural > room)
        self.legend.setFixedWidth(min(room, natural))
        self.legend.adjustSize()
        self.legend.move((graphics.width() - self.legend.width()) // 2,
                         graphics.height() - self.legend.height() - LEGEND_MARGIN)
        self.legend.raise_()

    def items(self) -> list:
        """Every overlay item drawn now (masks, lines, labels)."""
        return ([self.mask_item] if self.mask_item.isVisible() else []) + self.lines + self.labels

    def legend_text(self) -> str:
        """The legend in plain words ("" when none is shown)."""
        if not self.legend.isVisible():
            return ""
        from PySide6.QtGui import QTextDocument

        doc = QTextDocument()
        doc.setHtml(self.legend.text())
        return doc.toPlainText().replace("\xa0", " ")

    def clear(self) -> None:
        for item in [*self.lines, *self.labels]:
            scene = item.scene()
            item.setParentItem(None)
            if scene is not None:
                scene.removeItem(item)
        self.lines, self.labels = [], []
        self.mask_item.clear()
        self.mask_item.setVisible(False)
        self.legend.hide()
        self._key = None


class IncomingList(QWidget):
    """The "From other sources" section of the findings panel: per object its origin, then what it holds."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findings-incoming")
        self.heading = QLabel(HEADING)
        self.heading.setObjectName("findings-incoming-heading")
        self.heading.setStyleSheet("font-weight: bold;")
        self.tree = QTreeWidget()
        self.tree.setObjectName("findings-incoming-tree")
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.setIndentation(14)
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.tree.setMaximumHeight(320)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.heading)
        layout.addWidget(self.tree)
        self.hide()

    def show_objects(self, objects: IncomingObjects, colours: dict) -> None:
        self.tree.clear()
        for origin in objects.origins:
            # the producer on its own line and its maker and date below: a long model name never hides the date
            rest = origin.text()[len(origin.source) + 2:]
            top = QTreeWidgetItem([f"{origin.kind}: {origin.source}" + (f"\n{rest}" if rest else "")])
            top.setToolTip(0, "\n".join(t for t in (origin.description, origin.file) if t))
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            self.tree.addTopLevelItem(top)
            if origin.kind == "SEG":
                for number, label in objects.segments(origin):
                    child = QTreeWidgetItem(top, [f"\u25a0 {label}"])
                    child.setForeground(0, QBrush(QColor(colours.get((origin, number), "#ffffff"))))
            for finding in (f for f in objects.findings if f.origin == origin):
                child = QTreeWidgetItem(top, [finding.finding])
                for measurement in finding.measurements:
                    how = f" ({measurement.method.lower()})" if measurement.method else ""
                    QTreeWidgetItem(child, [f"{measurement.text()}{how}"])
                for name, value in finding.evaluations:
                    QTreeWidgetItem(child, [f"{name}: {value}"])
        for problem in objects.problems:
            item = QTreeWidgetItem([f"{problem.file.rsplit('/', 1)[-1]}: {problem.error}"])
            item.setToolTip(0, problem.file)
            item.setForeground(0, QBrush(QColor(PROBLEM_COLOUR)))
            self.tree.addTopLevelItem(item)
        self.tree.expandAll()
        self.setVisible(bool(objects))

    def lines(self) -> list[str]:
        """Every row as shown, indented two spaces per level: what tests and scripts read."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem, depth: int) -> None:
            out.extend("  " * depth + line for line in item.text(0).split("\n"))
            for i in range(item.childCount()):
                walk(item.child(i), depth + 1)

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i), 0)
        return out


class IncomingController(QObject):
    """Reads a case's SEG and SR objects when it opens, lists them, and draws those of the image on screen."""

    def __init__(self, window, cases) -> None:
        """`cases`: the case controller (medview.qt.cases) whose opened cases are read here."""
        super().__init__(window)
        self.setObjectName("incoming")
        self.window = window
        self.cases = cases
        self.objects = IncomingObjects()
        self._colours: dict = {}
        self._by_study: dict[str, IncomingObjects] = {}
        self._overlays = {id(window.viewer): IncomingOverlay(window.viewer)}  # one per viewport, made when active
        self.overlay = self._overlays[id(window.viewer)]
        self.panel = IncomingList()
        findings = window.findings
        layout = findings.layout()
        at = layout.indexOf(findings.disclaimer)  # above the research-use line, which stays last
        layout.insertWidget(at if at >= 0 else layout.count(), self.panel)
        cases.studies_loaded.connect(self._studies_loaded)
        cases.case_opened.connect(self._case_opened)
        cases.stack_shown.connect(lambda _stack: self.refresh())
        window.viewports.index_changed.connect(lambda _i, _n: self.refresh())
        window.viewports.active_changed.connect(self._follow_active_view)

    def _follow_active_view(self, view) -> None:
        """What arrived is drawn in the active viewport: the overlay moves with it."""
        self.overlay.clear()
        if id(view) not in self._overlays:
            self._overlays[id(view)] = IncomingOverlay(view)
        self.overlay = self._overlays[id(view)]
        self.refresh()

    def _studies_loaded(self, studies) -> None:
        """A new worklist: each case's objects are read again when it opens; the case that stays open (studies
        joining from a PACS) keeps showing its own."""
        self._by_study.clear()
        case = self.cases.case
        kept = next((s for s in studies if case is not None and s.study_uid == case.study_uid), None)
        if kept is None:
            self._use(IncomingObjects())
        else:
            self._use(self._by_study.setdefault(kept.study_uid, read_incoming(kept.objects)))

    def _case_opened(self, study) -> None:
        found = self._by_study.get(study.study_uid)
        if found is None:
            found = self._by_study[study.study_uid] = read_incoming(study.objects)
        self._use(found)

    def _use(self, objects: IncomingObjects) -> None:
        self.objects = objects
        self._colours = mask_colours(objects)
        self.panel.show_objects(objects, self._colours)
        self.overlay.clear()
        self.refresh()

    def refresh(self) -> None:
        """Draw what arrived for the image on screen (nothing when there is none)."""
        viewer = self.window.viewer
        shown = viewer.shown_frame()
        if shown is None or viewer.display is None or not self.objects:
            self.overlay.clear()
            return
        key = (viewer.stack.instances[shown[0]].sop_instance_uid, shown[1])
        shape = tuple(viewer.display.array.shape[1:3])
        self.overlay.show(key, self.objects.masks_on(*key), self.objects.findings_on(*key), self._colours, shape)

    def listed(self) -> list[str]:
        """The "From other sources" rows as shown in the findings panel."""
        return self.panel.lines() if self.panel.isVisibleTo(self.window) else []
