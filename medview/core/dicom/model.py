"""Plain data describing what a scan found: instances, series stacks, studies, and per-file errors.

Shared by the scanner, the index cache, `medview index`, the loader, the app's worklist and the AI worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medview.core.dicom.source import SourceRef


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
        return self.rows > 0 and self.columns > 0


@dataclass
class FileError:
    """A file that could not be used, with the reason in words."""

    file: str
    error: str


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
    """All instances of one Series Instance UID, split into stacks by orientation."""

    series_uid: str
    modality: str
    description: str
    number: int | None
    stacks: list[Stack]

    @property
    def instances(self) -> list[InstanceInfo]:
        return [inst for stack in self.stacks for inst in stack.instances]


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
