"""Plain data describing what a scan found: instances, series stacks, studies, and per-file errors.

Shared by the scanner, the index cache, `medview index`, the loader, the app's worklist and the AI worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medview.core.dicom.source import SourceRef, printable

#: A frame larger than this is refused before anything is allocated (a broken or hostile header): no
#: radiograph or slice comes near it (a 16-bit 23170 x 23170 frame); whole-slide images are tiled in frames.
MAX_FRAME_BYTES = 1 << 30


def frame_too_large(rows: int, columns: int, samples: int, bits_allocated: int) -> str | None:
    """Why a frame of this description is refused (over MAX_FRAME_BYTES), in words; None when it is not."""
    if rows * columns * max(1, samples) * max(bits_allocated, 8) // 8 <= MAX_FRAME_BYTES:
        return None
    return f"declared image size {columns} x {rows} x {samples} samples x {bits_allocated} bits is too large"

# Segmentation Storage and Label Map Segmentation Storage: pixel data, but masks over other images, not images
SEGMENTATION_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"})


@dataclass
class InstanceInfo:
    """Header facts of one DICOM instance, read without its pixel data."""

    ref: SourceRef
    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    modality: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    series_description: str = ""
    series_number: int | None = None
    instance_number: int | None = None
    rows: int = 0
    columns: int = 0
    frames: int = 1
    samples_per_pixel: int = 1
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0          # 1: signed (two's complement)
    planar_configuration: int = 0          # 1: colour planes stored one after the other
    photometric: str = ""
    transfer_syntax: str = ""
    image_position: tuple[float, float, float] | None = None
    image_orientation: tuple[float, float, float, float, float, float] | None = None
    pixel_spacing: tuple[float, float] | None = None          # (row spacing, column spacing) in mm
    imager_pixel_spacing: tuple[float, float] | None = None   # projection radiographs: at the detector
    slice_thickness: float | None = None
    # uncompressed fast path: where the native pixel bytes start in the file and how many there are
    pixel_offset: int | None = None
    pixel_length: int | None = None
    encapsulated: bool = False             # compressed pixel data (fragments); decode through pydicom

    @property
    def frame_bytes(self) -> int:
        """Bytes of one uncompressed frame as the header declares it (Rows x Columns x Samples x Bits)."""
        return (self.rows * self.columns * max(1, self.samples_per_pixel) * self.bits_allocated + 7) // 8

    @property
    def has_pixels(self) -> bool:
        """An image: the scan found pixel data matching Rows and Columns (it refuses a file that declares an
        image without pixel data). False for objects without pixels: RT Plan/Struct, SR, presentation states,
        key object selections, an RT Dose that holds only DVHs."""
        return self.rows > 0 and self.columns > 0

    @property
    def is_image(self) -> bool:
        """Pixels to scroll through: a segmentation's frames are masks drawn over its source images instead."""
        return self.has_pixels and self.sop_class_uid not in SEGMENTATION_CLASSES


@dataclass
class FileError:
    """A file that could not be used, with the reason in words; both `printable` (one line of UTF-8)."""

    file: str
    error: str

    def __post_init__(self) -> None:
        self.file = printable(self.file)
        self.error = printable(self.error)


@dataclass
class Stack:
    """Images of one series sharing one orientation, in display order (a localizer forms its own stack)."""

    series_uid: str
    modality: str
    description: str
    number: int | None
    instances: list[InstanceInfo]
    positions: list[float | None] = field(default_factory=list)  # along the slice normal, per instance (mm)

    @property
    def frame_count(self) -> int:
        return sum(max(1, inst.frames) for inst in self.instances)

    @property
    def frames(self) -> list[tuple[int, int]]:
        """(instance index, frame index) of each image in display order: the one walk loader and views share."""
        return [(i, f) for i, inst in enumerate(self.instances) for f in range(max(1, inst.frames))]


@dataclass
class Series:
    """All instances of one Series Instance UID: its images split into stacks by orientation, and its objects
    without pixels (`objects`: RT Plan/Struct, SR, presentation states...), which are in no stack and so are
    never offered as images to scroll."""

    series_uid: str
    modality: str
    description: str
    number: int | None
    stacks: list[Stack]
    objects: list[InstanceInfo] = field(default_factory=list)

    @property
    def instances(self) -> list[InstanceInfo]:
        """Every instance, images and objects without pixels: what `index` counts (SPEC section 2)."""
        return [inst for stack in self.stacks for inst in stack.instances] + self.objects

    @property
    def has_images(self) -> bool:
        return any(stack.instances for stack in self.stacks)


@dataclass
class Study:
    """One study (a case in the worklist)."""

    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    description: str
    series: list[Series]

    @property
    def modalities(self) -> list[str]:
        seen: list[str] = []
        for s in self.series:
            if s.modality and s.modality not in seen:
                seen.append(s.modality)
        return seen

    @property
    def stacks(self) -> list[Stack]:
        """The image stacks of every series, in series order: what the viewer and the series strip offer."""
        return [stack for s in self.series for stack in s.stacks if stack.instances]

    @property
    def objects(self) -> list[InstanceInfo]:
        """The instances without pixels (RT Plan/Struct, SR, presentation states...): listed, never shown."""
        return [inst for s in self.series for inst in s.objects]


@dataclass
class ScanResult:
    """What `scan()` found below its inputs."""

    root: str
    files: int = 0
    skipped_non_dicom: int = 0
    instances: list[InstanceInfo] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    cancelled: bool = False
    cached: int = 0  # files answered by the index cache without being opened
