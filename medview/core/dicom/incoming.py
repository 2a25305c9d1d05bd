"""AI results that arrive with a study from elsewhere: Segmentations (SEG) and TID 1500 measurement reports (SR).

Read into plain data for the viewer: per source image (SOP Instance UID, frame) the masks of a SEG, and per
TID 1501 measurement group of an SR the finding, its measurements with the coordinates they were measured on,
and who made them (`Origin`: algorithm, manufacturer, observer, date). Coordinates are pixel indices (column,
row; 0 is the centre of the first pixel), the convention of the viewer and the model; DICOM image coordinates
put (0, 0) at the top left corner of the top left pixel (PS3.3 C.18.6.1.2), so half a pixel is subtracted.

The content tree is walked with pydicom rather than parsed by highdicom's validating readers: objects from
other systems bend the rules, and a bent object should still show what it can. One that cannot be read at
all, or a report of another kind, is one line in `problems` naming the file; the others still show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from medview.core.dicom.model import SEGMENTATION_CLASSES, FileError, InstanceInfo
from medview.core.dicom.readable import readable_date
from medview.core.viewing.measure import PIXEL_CENTRE

# structured reports that may carry measurements (TID 1500 is allowed in Enhanced, Comprehensive, 3D, Extensible)
REPORT_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR: never TID 1500, said so when met
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.35",  # Extensible SR
})
MEASUREMENT_REPORT = ("126000", "DCM")
MEASUREMENT_GROUP = ("125007", "DCM")
FINDING = ("121071", "DCM")
FINDING_SITE = ("363698007", "SCT")
TRACKING_IDENTIFIER = ("112039", "DCM")
ALGORITHM_NAME = ("111001", "DCM")
ALGORITHM_VERSION = ("111003", "DCM")
MEASUREMENT_METHOD = ("370129005", "SCT")
DEVICE_OBSERVER_NAME = ("121013", "DCM")
DEVICE_OBSERVER_MANUFACTURER = ("121014", "DCM")
DEVICE_OBSERVER_MODEL = ("121015", "DCM")
PERSON_OBSERVER_NAME = ("121008", "DCM")
DIMENSIONLESS = {"1", "{ratio}", "no units", ""}


def is_incoming(inst: InstanceInfo) -> bool:
    """A segmentation or a structured report that may hold AI results to draw (a key object selection does not)."""
    return inst.sop_class_uid in SEGMENTATION_CLASSES or inst.sop_class_uid in REPORT_CLASSES


@dataclass(frozen=True)
class Origin:
    """Who made an object and when: what the reader needs to weigh a result that medview did not compute."""

    kind: str                # "SEG" or "SR"
    file: str
    algorithm: str = ""      # "name version" of the producing algorithm(s)
    manufacturer: str = ""
    observer: str = ""       # the device observer of a report, else its person observer
    person: str = ""         # the person observer of a report (who made its manual measurements)
    date: str = ""           # content date, YYYYMMDD
    description: str = ""    # series description

    @property
    def source(self) -> str:
        """The producer in a few words: algorithm, else observer, else manufacturer."""
        return self.algorithm or self.observer or self.manufacturer or "unknown source"

    def text(self) -> str:
        """"demo-cxr 1.2.0, medview, 2024-03-10": producer, its maker, the date."""
        parts = [self.source]
        if self.manufacturer and self.manufacturer.lower() not in self.source.lower():
            parts.append(self.manufacturer)
        if self.date:
            parts.append(readable_date(self.date))
        return ", ".join(parts)


@dataclass
class SegmentMask:
    """One segment of a SEG on one source image: a uint8 mask (1 inside) in the segmentation's matrix."""

    number: int
    label: str
    mask: np.ndarray
    origin: Origin


@dataclass
class Graphic:
    """A spatial coordinate (SCOORD) on one image: its graphic type and points as pixel indices (column, row)."""

    kind: str                # POINT, MULTIPOINT, POLYLINE, POLYGON, CIRCLE, ELLIPSE
    points: np.ndarray       # (n, 2)
    sop_instance_uid: str
    frame: int = 0           # 0-based

    def outline(self) -> tuple[np.ndarray, bool]:
        """Points to draw as a line, and whether it is closed; a circle or ellipse sampled on its outline."""
        pts = self.points
        if self.kind == "CIRCLE" and len(pts) >= 2:
            radius = float(np.hypot(*(pts[1] - pts[0])))
            t = np.linspace(0.0, 2 * np.pi, 65)
            return np.c_[pts[0][0] + radius * np.cos(t), pts[0][1] + radius * np.sin(t)], True
        if self.kind == "ELLIPSE" and len(pts) >= 4:
            centre = (pts[0] + pts[1]) / 2
            major, minor = (pts[1] - pts[0]) / 2, (pts[3] - pts[2]) / 2
            t = np.linspace(0.0, 2 * np.pi, 65)[:, None]
            return centre + np.cos(t) * major + np.sin(t) * minor, True
        return pts, self.kind == "POLYGON"


@dataclass
class ReportedMeasurement:
    """A NUM of a measurement group: its name, value and unit, and what it was measured on."""

    name: str
    value: float | None
    unit: str
    method: str = ""
    algorithm: str = ""
    graphics: list[Graphic] = field(default_factory=list)

    def text(self) -> str:
        """"Cardiothoracic ratio 0.56", "Diameter 12.5 mm"."""
        if self.value is None:
            return f"{self.name} (no value)"
        unit = "" if self.unit in DIMENSIONLESS else f" {self.unit}"
        return f"{self.name} {self.value:.3g}{unit}" if abs(self.value) < 1 else f"{self.name} {self.value:.4g}{unit}"


@dataclass
class ReportedFinding:
    """One TID 1501 measurement group: the finding, its measurements and evaluations, the images it is about."""

    finding: str
    origin: Origin
    tracking: str = ""
    algorithm: str = ""
    measurements: list[ReportedMeasurement] = field(default_factory=list)
    evaluations: list[tuple[str, str]] = field(default_factory=list)   # (concept, value) in words
    regions: list[Graphic] = field(default_factory=list)                # the group's image region (TID 1410)
    images: list[tuple[str, int]] = field(default_factory=list)         # source images (SOP UID, frame)

    def graphics(self) -> list[Graphic]:
        return [*self.regions, *(g for m in self.measurements for g in m.graphics)]

    def is_on(self, sop_instance_uid: str, frame: int) -> bool:
        """Whether the finding is about that image (one of its sources, or drawn on it)."""
        key = (sop_instance_uid, frame)
        return key in self.images or any((g.sop_instance_uid, g.frame) == key for g in self.graphics())


@dataclass
class IncomingObjects:
    """What a study's SEG and SR objects say, by source image; `problems` names the objects that could not be used."""

    masks: dict[tuple[str, int], list[SegmentMask]] = field(default_factory=dict)
    findings: list[ReportedFinding] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)
    problems: list[FileError] = field(default_factory=list)

    def masks_on(self, sop_instance_uid: str, frame: int) -> list[SegmentMask]:
        return self.masks.get((sop_instance_uid, frame), [])

    def findings_on(self, sop_instance_uid: str, frame: int) -> list[ReportedFinding]:
        return [f for f in self.findings if f.is_on(sop_instance_uid, frame)]

    def segments(self, origin: Origin) -> list[tuple[int, str]]:
        """(number, label) of the segments of one SEG that cover some image, in segment order."""
        found = {(m.number, m.label) for masks in self.masks.values() for m in masks if m.origin == origin}
        return sorted(found)

    def __bool__(self) -> bool:
        return bool(self.masks or self.findings or self.problems)


class NotShown(ValueError):
    """An object that is read but holds nothing medview draws; the message says why, in words."""


# ---------------------------------------------------------------------------------------------- reading


def read_incoming(instances: Iterable[InstanceInfo]) -> IncomingObjects:
    """The SEG and SR objects among `instances` read; every other instance is passed over. Never raises per file."""
    from medview.core.dicom.pixels import read_dataset
    from medview.core.dicom.scan import quiet_pydicom

    result = IncomingObjects()
    for inst in instances:
        if not is_incoming(inst):
            continue
        name = inst.ref.display()
        try:
            with quiet_pydicom():
                ds = read_dataset(inst.ref)
                if inst.sop_class_uid in SEGMENTATION_CLASSES:
                    origin = _read_segmentation(ds, name, result.masks, inst.ref)
                else:
                    origin = _read_report(ds, name, result.findings)
        except NotShown as exc:
            result.problems.append(FileError(name, str(exc)))
            continue
        except Exception as exc:  # one broken object never hides the others
            reason = str(exc).replace(f"{name}: ", "") or type(exc).__name__
            kind = "segmentation" if inst.sop_class_uid in SEGMENTATION_CLASSES else "structured report"
            result.problems.append(FileError(name, f"{kind} cannot be read ({reason}); not shown"))
            continue
        result.origins.append(origin)
    return result


def _planes(ds, ref) -> np.ndarray:
    """The SEG's frames; compressed ones (an RLE SEG) decoded in the decoder pool, never in this process."""
    from medview.core.dicom.frame_reader import FrameReader, transfer_syntax_of
    from medview.core.dicom.decoder_pool import is_compressed
    from medview.core.dicom.pixels import number_of_frames

    if ref is None or not is_compressed(transfer_syntax_of(ds)):
        return np.asarray(ds.pixel_array)
    frames = range(number_of_frames(ds))
    with FrameReader() as reader:
        reader.plan((ref, f, None) for f in frames)
        return np.stack([reader.stored_frame(ds, ref, f) for f in frames])


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, "") if ds is not None else ""
    return str(value or "").strip()


def _segment_algorithms(segments) -> str:
    names = []
    for item in segments:
        name = _text(item, "SegmentAlgorithmName")
        ident = item.get("SegmentationAlgorithmIdentificationSequence") or []
        version = _text(ident[0], "AlgorithmVersion") if ident else ""
        text = f"{name} {version}".strip() if name else ""
        if text and text not in names:
            names.append(text)
    return ", ".join(names)


def _read_segmentation(ds, name: str, masks: dict, ref=None) -> Origin:
    """Add each segment's mask per source image to `masks`; the SEG's origin."""
    segments = list(ds.get("SegmentSequence") or [])
    if not segments:
        raise NotShown("segmentation without segments; nothing to draw")
    labels = {int(item.SegmentNumber): _text(item, "SegmentLabel") or f"segment {int(item.SegmentNumber)}"
              for item in segments}
    origin = Origin("SEG", name, algorithm=_segment_algorithms(segments), manufacturer=_text(ds, "Manufacturer"),
                    date=_text(ds, "ContentDate") or _text(ds, "SeriesDate"),
                    description=_text(ds, "SeriesDescription"))
    rows, columns = int(ds.Rows), int(ds.Columns)
    planes = _planes(ds, ref).reshape(-1, rows, columns)
    kind = _text(ds, "SegmentationType").upper()
    if kind == "FRACTIONAL":
        limit = float(ds.get("MaximumFractionalValue", 255) or 255) / 2
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    only_source = _single_source(ds)
    found = 0
    for i, plane in enumerate(planes):
        group = per_frame[i] if i < len(per_frame) else None
        sources = _frame_sources(group) or _frame_sources(shared) or only_source
        if kind == "LABELMAP":
            pieces = [(n, plane == n) for n in labels]
        else:
            number = _segment_number(group) or _segment_number(shared) or (next(iter(labels)) if len(labels) == 1
                                                                           else None)
            if number is None:
                continue
            pieces = [(number, plane > limit if kind == "FRACTIONAL" else plane > 0)]
        for number, inside in pieces:
            if not inside.any():
                continue
            for key in sources:
                _add_mask(masks.setdefault(key, []), number, labels.get(number, f"segment {number}"), inside, origin)
                found += 1
    if not found:
        if not only_source and not any(_frame_sources(g) for g in per_frame):
            raise NotShown("segmentation does not say which images it belongs to; not shown")
        raise NotShown("segmentation with empty segments only; nothing to draw")
    return origin


def _add_mask(on_image: list[SegmentMask], number: int, label: str, inside: np.ndarray, origin: Origin) -> None:
    """One mask per segment and image: frames of the same segment on the same image are joined."""
    for existing in on_image:
        if existing.number == number and existing.origin == origin and existing.mask.shape == inside.shape:
            existing.mask |= inside.astype(np.uint8)
            return
    on_image.append(SegmentMask(number, label, inside.astype(np.uint8), origin))


def _segment_number(group) -> int | None:
    ident = (group.get("SegmentIdentificationSequence") or [None])[0] if group is not None else None
    value = ident.get("ReferencedSegmentNumber") if ident is not None else None
    return int(value) if value not in (None, "") else None


def _frame_sources(group) -> list[tuple[str, int]]:
    """(SOP Instance UID, frame) of the source images a SEG frame was derived from (Derivation Image Sequence)."""
    if group is None:
        return []
    out = []
    for derivation in group.get("DerivationImageSequence") or []:
        for source in derivation.get("SourceImageSequence") or []:
            out.extend(_referenced(source))
    return out


def _referenced(item) -> list[tuple[str, int]]:
    """(SOP Instance UID, 0-based frame) of a referenced SOP item; every frame listed, frame 0 when none is."""
    sop = _text(item, "ReferencedSOPInstanceUID")
    if not sop:
        return []
    frames = item.get("ReferencedFrameNumber")
    if frames in (None, ""):
        return [(sop, 0)]
    frames = list(frames) if isinstance(frames, (list, tuple)) or type(frames).__name__ == "MultiValue" else [frames]
    return [(sop, int(f) - 1) for f in frames]


def _single_source(ds) -> list[tuple[str, int]]:
    """The one image a SEG references in its Referenced Series Sequence, where it references exactly one."""
    refs = [r for series in ds.get("ReferencedSeriesSequence") or []
            for item in series.get("ReferencedInstanceSequence") or [] for r in _referenced(item)]
    return refs if len(refs) == 1 else []


# -- structured reports -----------------------------------------------------------------------------------


def _code(seq) -> tuple[str, str, str]:
    """(value, scheme, meaning) of the first item of a code sequence; empty strings when absent."""
    item = (seq or [None])[0]
    if item is None:
        return "", "", ""
    value = _text(item, "CodeValue") or _text(item, "LongCodeValue") or _text(item, "URNCodeValue")
    return value, _text(item, "CodingSchemeDesignator"), _text(item, "CodeMeaning")


def _concept(item) -> tuple[str, str]:
    value, scheme, _ = _code(item.get("ConceptNameCodeSequence"))
    return value, scheme


def _meaning(seq) -> str:
    value, _, meaning = _code(seq)
    return meaning or value


def _children(item) -> list:
    return list(item.get("ContentSequence") or [])


def _read_report(ds, name: str, findings: list[ReportedFinding]) -> Origin:
    """Add the report's measurement groups to `findings`; the report's origin."""
    if _concept(ds) != MEASUREMENT_REPORT:
        title = _meaning(ds.get("ConceptNameCodeSequence")) or "no title"
        raise NotShown(f"structured report \"{title}\" is not a measurement report (TID 1500); not shown")
    context = {_concept(item): item for item in _children(ds) if _text(item, "RelationshipType") == "HAS OBS CONTEXT"}

    def context_text(key) -> str:
        item = context.get(key)
        if item is None:
            return ""
        return _text(item, "TextValue") or _text(item, "PersonName") or _text(item, "UID")

    person = context_text(PERSON_OBSERVER_NAME).replace("^", " ").strip()
    device = " ".join(dict.fromkeys(t for t in (context_text(DEVICE_OBSERVER_NAME),
                                                context_text(DEVICE_OBSERVER_MODEL)) if t))
    groups = list(_groups(_children(ds)))
    algorithms = [a for a in dict.fromkeys(_algorithm(_children(g)) for g in groups) if a]
    origin = Origin("SR", name, algorithm=", ".join(algorithms),
                    manufacturer=context_text(DEVICE_OBSERVER_MANUFACTURER) or _text(ds, "Manufacturer"),
                    observer=device or person, person=person,
                    date=_text(ds, "ContentDate") or _text(ds, "SeriesDate"),
                    description=_text(ds, "SeriesDescription"))
    if not groups:
        raise NotShown("measurement report without measurement groups; nothing to show")
    for group in groups:
        findings.append(_finding(group, origin))
    return origin


def _groups(items):
    """Every Measurement Group container below `items`, depth first."""
    for item in items:
        if _text(item, "ValueType") != "CONTAINER":
            continue
        if _concept(item) == MEASUREMENT_GROUP:
            yield item
        else:
            yield from _groups(_children(item))


def _algorithm(items) -> str:
    """"name version" of a TID 4019 Algorithm Identification among `items` ("" when there is none)."""
    texts = {_concept(i): _text(i, "TextValue") for i in items if _text(i, "ValueType") == "TEXT"}
    return " ".join(t for t in (texts.get(ALGORITHM_NAME, ""), texts.get(ALGORITHM_VERSION, "")) if t)


def _finding(group, origin: Origin) -> ReportedFinding:
    items = _children(group)
    found = ReportedFinding(finding="", origin=origin, algorithm=_algorithm(items))
    for item in items:
        kind, concept = _text(item, "ValueType"), _concept(item)
        if kind == "CODE" and concept == FINDING:
            found.finding = _meaning(item.get("ConceptCodeSequence"))
        elif kind == "TEXT" and concept == TRACKING_IDENTIFIER:
            found.tracking = _text(item, "TextValue")
        elif kind == "CODE" and concept != FINDING_SITE:
            found.evaluations.append((_meaning(item.get("ConceptNameCodeSequence")),
                                      _meaning(item.get("ConceptCodeSequence"))))
        elif kind == "IMAGE":
            found.images.extend(_referenced((item.get("ReferencedSOPSequence") or [None])[0] or {}))
        elif kind == "SCOORD":
            found.regions.extend(_graphics(item))
        elif kind == "NUM":
            found.measurements.append(_measurement(item, found.algorithm))
    found.finding = found.finding or found.tracking or "Finding"
    return found


def _measurement(item, group_algorithm: str) -> ReportedMeasurement:
    measured = (item.get("MeasuredValueSequence") or [None])[0]
    value = None
    if measured is not None and measured.get("NumericValue") not in (None, ""):
        value = float(measured.NumericValue)
    unit_value, _, unit_meaning = _code(measured.get("MeasurementUnitsCodeSequence") if measured is not None else None)
    children = _children(item)
    method = next((_meaning(c.get("ConceptCodeSequence")) for c in children
                   if _text(c, "ValueType") == "CODE" and _concept(c) == MEASUREMENT_METHOD), "")
    graphics = [g for c in children if _text(c, "ValueType") == "SCOORD" for g in _graphics(c)]
    # a manual measurement without an algorithm of its own is a person's, not the group's algorithm's
    algorithm = _algorithm(children) or ("" if method.lower() == "manual" else group_algorithm)
    return ReportedMeasurement(name=_meaning(item.get("ConceptNameCodeSequence")) or "measurement", value=value,
                               unit=unit_value or unit_meaning, method=method, algorithm=algorithm, graphics=graphics)


def _graphics(item) -> list[Graphic]:
    """An SCOORD on each image it is selected from, in pixel indices (one per referenced image and frame)."""
    data = np.asarray([float(v) for v in item.get("GraphicData") or []], dtype=np.float64)
    if data.size < 2:
        return []
    points = data[: data.size // 2 * 2].reshape(-1, 2) - PIXEL_CENTRE
    kind = _text(item, "GraphicType").upper() or "POLYLINE"
    images = [ref for child in _children(item) if _text(child, "ValueType") == "IMAGE"
              for ref in _referenced((child.get("ReferencedSOPSequence") or [None])[0] or {})]
    return [Graphic(kind, points, sop, frame) for sop, frame in images]
