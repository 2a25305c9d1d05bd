"""The PDF report of one reviewed case, written with Qt's own PDF writer (QPdfWriter + QTextDocument).

Lives in medview.qt because it needs Qt; `medview.core.review.export` imports it only when a PDF is asked
for. Works without a running app: a QGuiApplication is created (offscreen when there is no display).
Key images are rendered with the display pipeline (`medview.core.dicom.pixels.display_frame`), exactly as
the viewer shows them, with the AI heatmap blended in where one is given. Measurements show the model's value
beside the reader's corrected one. Names read "Family, Given" as people write them, not DICOM's "Family^Given",
and table cells never split a word (Qt breaks a long word in a narrow column otherwise).
"""

from __future__ import annotations

import html
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from medview.core.dicom.readable import readable_date, readable_name
from medview.core.review.export import RESEARCH_USE_LINE
from medview.core.viewing.heatmap import resize_bilinear

KEY_IMAGE_WIDTH = 320  # points on the page

_app = None  # the QGuiApplication made here, kept alive for later reports


def ensure_gui_app():
    """Qt's painting needs a QGuiApplication; make an offscreen one if the process has none."""
    global _app
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _app = app = QGuiApplication(["medview-report"])
    return app


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, opacity: float | None = None) -> np.ndarray:
    """Blend a 0..1 heatmap over a uint8 image as the viewer draws it: resized bilinearly, the viewer's colour
    map, transparent where cold (`heatmap_lut`'s alpha), at the viewer's default opacity; RGB out."""
    from medview.qt.style import HEATMAP_OPACITY, heatmap_lut  # pyqtgraph: only when a map is drawn

    opacity = HEATMAP_OPACITY if opacity is None else opacity
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float32))
    heat = resize_bilinear(heat, rgb.shape[:2]).clip(0.0, 1.0)
    rgba = heatmap_lut()[np.round(heat * 255).astype(np.intp)].astype(np.float32)
    a = rgba[..., 3:] / 255.0 * opacity
    return (rgb.astype(np.float32) * (1 - a) + rgba[..., :3] * a).round().astype(np.uint8)


def _qimage(arr: np.ndarray):
    from PySide6.QtGui import QImage

    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8).copy()
    return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888).copy()


def render_key_image(info, frame: int, heatmap: np.ndarray | None = None) -> np.ndarray:
    """The key image as the viewer shows it (file window), with the heatmap where one is shown."""
    from medview.core.dicom.frame_reader import display_frame_of

    image = display_frame_of(info.ref, frame)
    return image if heatmap is None else overlay_heatmap(image, heatmap)


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _cell(value, tag: str = "td") -> str:
    """A table cell that never splits a word: a single word is kept whole, longer text wraps at its spaces
    (keeping it all on one line could push a wide table off the page)."""
    text = "" if value is None else str(value)
    style = "" if any(c.isspace() for c in text) else " style='white-space: nowrap'"
    return f"<{tag}{style}>{_e(text)}</{tag}>"


def _measurement_label(name: str) -> str:
    return {"cardiothoracic_ratio": "Cardiothoracic ratio (CTR)"}.get(name, name.replace("_", " ").capitalize())


def _measurements_html(record, uid) -> list[str]:
    """The model's value, its operating point and the reader's corrected value, per measured image."""
    measurements = record.measurements
    if not measurements:
        return []
    parts = ["<h3>Measurements</h3>",
             "<table border='1' cellspacing='0' cellpadding='3' width='100%'><tr>"
             + "".join(_cell(h, "th") for h in ("Measurement", "Model", "Threshold", "Corrected", "By", "When",
                                                "Image")) + "</tr>"]
    for m in measurements:
        info = record.instances.get(m.sop_instance_uid)
        where = _image_label(info, m.frame) if info else uid(m.sop_instance_uid)
        model, corrected = m.model or {}, m.corrected or {}
        threshold = model.get("threshold")
        parts.append("<tr>" + "".join(_cell(v) for v in (
            _measurement_label(m.name),
            "" if model.get("value") is None else f"{float(model['value']):.2f}",
            "" if threshold is None else f"{float(threshold):g}",
            "not corrected" if corrected.get("value") is None else f"{float(corrected['value']):.2f}",
            readable_name(corrected.get("corrected_by")), _when(corrected.get("corrected_at")), where)) + "</tr>")
    parts.append("</table>")
    return parts


def report_html(record, *, anon=None, heatmaps: dict | None = None, images: dict | None = None) -> str:
    """The report as HTML for QTextDocument; `images` collects {resource name: QImage} for the key images."""
    from medview import __version__
    from medview.core.review.export import case_identity
    from medview.core.review.store import now_iso

    ident = case_identity(record, anon)
    case = record.case
    images = {} if images is None else images
    heatmaps = heatmaps or {}
    uid = (lambda u: u) if anon is None else anon.uid
    parts = [
        "<html><body style='font-family: sans-serif; font-size: 10pt'>",
        "<h2>medview case report</h2>",
        f"<p style='color:#b00000; font-weight:bold'>{_e(RESEARCH_USE_LINE)}</p>",
        "<table cellspacing='0' cellpadding='2'>",
        f"<tr><td><b>Patient</b></td><td>{_e(readable_name(ident['patient_name']))}</td></tr>",
        f"<tr><td><b>Patient ID</b></td><td>{_e(ident['patient_id'])}</td></tr>",
        f"<tr><td><b>Study date</b></td><td>{_e(readable_date(ident['study_date']))}</td></tr>",
        f"<tr><td><b>Study</b></td><td>{_e(record.study_description)}</td></tr>",
        f"<tr><td><b>Accession</b></td><td>{_e(ident['accession_number'])}</td></tr>",
        f"<tr><td><b>Study UID</b></td><td>{_e(ident['study_uid'])}</td></tr>",
        f"<tr><td><b>Review</b></td><td>{_e(case.status.label)}</td></tr>",
        f"<tr><td><b>Reviewer</b></td><td>{_e(readable_name(case.reviewer))}</td></tr>",
        f"<tr><td><b>Opened</b></td><td>{_e(_when(case.opened_at))}</td></tr>",
        f"<tr><td><b>Signed off</b></td><td>{_e(_when(case.signed_off_at) or 'not signed off')}"
        f"{' by ' + _e(readable_name(case.signed_off_by)) if case.signed_off_by else ''}</td></tr>",
        "</table>",
    ]
    if case.note and anon is None:
        parts.append(f"<h3>Note</h3><p>{_e(case.note)}</p>")
    parts.append("<h3>AI findings</h3>")
    if record.findings:
        parts.append("<table border='1' cellspacing='0' cellpadding='3' width='100%'><tr>"
                     + "".join(_cell(h, "th") for h in ("Finding", "Score", "Threshold", "Flagged", "Verdict", "By",
                                                        "When", "Image")) + "</tr>")
        for f in record.findings:
            info = record.instances.get(f.sop_instance_uid)
            where = _image_label(info, f.frame) if info else uid(f.sop_instance_uid)
            parts.append("<tr>" + "".join(_cell(v) for v in (
                f.label, f"{f.score:.3f}", "" if f.threshold is None else f"{f.threshold:g}",
                "yes" if f.flagged else "no", f.verdict.value if f.verdict else "no verdict",
                readable_name(f.verdict_by), _when(f.verdict_at), where)) + "</tr>")
        parts.append("</table>")
        models = {(f.model_name, f.model_version, f.model_checksum) for f in record.findings}
        for name, version, checksum in sorted(models):
            parts.append(f"<p>Model: {_e(name)} {_e(version)} (sha256 {_e(checksum[:16])}\N{HORIZONTAL ELLIPSIS}) "
                         f"\N{EM DASH} {_e(RESEARCH_USE_LINE)}</p>")
    else:
        parts.append("<p>No AI findings for this case.</p>")
    parts += _measurements_html(record, uid)

    if case.key_images:
        parts.append("<h3>Key images</h3>")
    for n, key in enumerate(case.key_images):
        info = record.instances.get(key.sop_instance_uid)
        if info is None:
            parts.append(f"<p>Key image {_e(uid(key.sop_instance_uid))} is not in the exported folder.</p>")
            continue
        label, heat = heatmaps.get((key.sop_instance_uid, key.frame), (None, None))
        try:
            arr = render_key_image(info, key.frame, heat)
        except Exception as exc:  # noqa: BLE001 - a key image that cannot be shown must not lose the report
            parts.append(f"<p>Key image {_e(_image_label(info, key.frame))}: could not be rendered ({_e(exc)}).</p>")
            continue
        name = f"keyimage{n}.png"
        images[name] = _qimage(arr)
        height = int(KEY_IMAGE_WIDTH * arr.shape[0] / max(1, arr.shape[1]))
        caption = _image_label(info, key.frame) + (f"; AI heatmap of the flagged finding {label}" if label else "")
        parts.append(f"<p><img src='{name}' width='{KEY_IMAGE_WIDTH}' height='{height}'><br>{_e(caption)}</p>")

    parts.append(f"<p style='font-size: 8pt'>Exported {now_iso()} by medview {__version__}"
                 f"{' (anonymised)' if anon is not None else ''}. {_e(RESEARCH_USE_LINE)}</p>")
    parts.append("</body></html>")
    return "".join(parts)


def _when(iso: str | None) -> str:
    """"2026-11-24T15:54:37.123Z" -> "2026-11-24 15:54:37 UTC" (the store keeps UTC)."""
    return "" if not iso else iso[:19].replace("T", " ") + " UTC"


def _image_label(info, frame: int) -> str:
    text = f"{info.modality} series {info.series_number if info.series_number is not None else '?'}, " \
           f"image {info.instance_number if info.instance_number is not None else '?'}"
    return text + (f", frame {frame + 1}" if info.frames > 1 else "")


def write_case_pdf(record, path: str | Path, *, anon=None, heatmaps: dict | None = None) -> Path:
    """Write the PDF (whole or nothing under `path`); returns the path."""
    ensure_gui_app()
    from PySide6.QtCore import QMarginsF, QUrl
    from PySide6.QtGui import QGuiApplication, QPageLayout, QPageSize, QPdfWriter, QTextDocument

    path = Path(path)
    images: dict = {}
    text = report_html(record, anon=anon, heatmaps=heatmaps, images=images)
    doc = QTextDocument()
    for name, image in images.items():  # resources first, so the layout knows the images when it is built
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), image)
    doc.setHtml(text)

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pdf", dir=path.parent)
    os.close(fd)
    try:
        writer = QPdfWriter(tmp)
        writer.setTitle("medview case report")  # never the patient's name: PDF metadata travels with the file
        writer.setCreator("medview")
        writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                         QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter))
        # lay the text out on the printable area in the pixels the document measures fonts in, so that
        # 10 pt text is 10 pt on paper and the table uses the page's full width
        screen = QGuiApplication.primaryScreen()
        dpi = round(screen.logicalDotsPerInch()) if screen is not None else 96
        doc.setPageSize(writer.pageLayout().paintRectPixels(dpi).size().toSizeF())
        doc.print_(writer)
        del writer  # finishes the file
        if os.path.getsize(tmp) == 0:
            raise OSError("Qt wrote an empty PDF")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
