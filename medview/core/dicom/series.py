"""Grouping instances patient -> study -> series -> stacks, and ordering slices along the normal.

A stack is what the viewer scrolls through and the loader reads into one array: images of one series with
the same orientation and matrix. Instances without pixel data (RT Plan/Struct, SR, presentation states, key
objects) are in no stack: their series keeps them as `objects`, so `index` still counts them and a study
of such objects only is still listed, with no images. Slices are ordered by their position along the slice normal
(ImagePositionPatient . (row cosines x column cosines), PS3.3 C.7.6.2.1.1), which is robust to any file
naming or InstanceNumber quirk; InstanceNumber orders images without geometry (radiographs) and breaks
ties. Per-slice positions are kept as they are: gaps and uneven spacing are real and must stay visible.
"""

from __future__ import annotations

from typing import Sequence

from medview.core.dicom.model import InstanceInfo, Series, Stack, Study

# orientations whose direction cosines differ by less than this are the same plane (rounding in headers)
ORIENTATION_TOLERANCE = 1e-3


def slice_normal(orientation: Sequence[float]) -> tuple[float, float, float]:
    """Row cosines x column cosines: the direction in which slice positions are measured."""
    rx, ry, rz, cx, cy, cz = orientation
    return (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)


def slice_position(inst: InstanceInfo) -> float | None:
    """The instance's position along its slice normal in mm, or None without position and orientation."""
    if inst.image_position is None or inst.image_orientation is None:
        return None
    nx, ny, nz = slice_normal(inst.image_orientation)
    x, y, z = inst.image_position
    return x * nx + y * ny + z * nz


def _same_orientation(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return all(abs(p - q) < ORIENTATION_TOLERANCE for p, q in zip(a, b))


def _number_key(inst: InstanceInfo) -> tuple[int, int, str]:
    n = inst.instance_number
    return (0 if n is not None else 1, n if n is not None else 0, inst.ref.display())


def order_stack(instances: Sequence[InstanceInfo]) -> tuple[list[InstanceInfo], list[float | None]]:
    """Instances in display order and their positions along the normal (None where unknown).

    When every instance has a position they are sorted by it (InstanceNumber, then file, break ties);
    otherwise by InstanceNumber, then file name, so the order is at least reproducible.
    """
    positions = [slice_position(inst) for inst in instances]
    pairs = list(zip(instances, positions))
    if pairs and all(p is not None for p in positions):
        pairs.sort(key=lambda ip: (ip[1], _number_key(ip[0])))
    else:
        pairs.sort(key=lambda ip: _number_key(ip[0]))
    return [i for i, _ in pairs], [p for _, p in pairs]


def split_stacks(instances: Sequence[InstanceInfo]) -> list[list[InstanceInfo]]:
    """Groups of one orientation and one matrix (rows, columns, samples): a localizer is its own group.

    The largest group comes first (the series proper), then the others by their first InstanceNumber.
    """
    groups: list[tuple[object, tuple[int, int, int], list[InstanceInfo]]] = []
    for inst in instances:
        shape = (inst.rows, inst.columns, inst.samples_per_pixel)
        for orientation, group_shape, members in groups:
            if group_shape == shape and _same_orientation(orientation, inst.image_orientation):
                members.append(inst)
                break
        else:
            groups.append((inst.image_orientation, shape, [inst]))
    lists = [members for _, _, members in groups]
    lists.sort(key=lambda m: (-len(m), min(_number_key(i) for i in m)))
    return lists


def _series_of(series_uid: str, members: list[InstanceInfo]) -> Series:
    """A series: its images in stacks; its instances without pixels (a plan, a report) kept beside them."""
    first = members[0]
    images = [inst for inst in members if inst.is_image]
    objects = [inst for inst in members if not inst.is_image]  # a segmentation too: drawn over its images
    stacks = []
    for group in split_stacks(images):
        ordered, positions = order_stack(group)
        stacks.append(Stack(series_uid, first.modality, first.series_description, first.series_number,
                            ordered, positions))
    objects.sort(key=_number_key)
    return Series(series_uid, first.modality, first.series_description, first.series_number, stacks, objects)


def split_duplicates(instances: Sequence[InstanceInfo]) -> tuple[list[InstanceInfo],
                                                                  list[tuple[InstanceInfo, InstanceInfo]]]:
    """(the first instance of each SOP Instance UID, [(a later one, the first one it repeats)]).

    The same SOP Instance UID met twice is one instance (a study copied into two folders of one export):
    the first found is used, and `index` lists the others as duplicates.
    """
    first: dict[str, InstanceInfo] = {}
    unique: list[InstanceInfo] = []
    duplicates: list[tuple[InstanceInfo, InstanceInfo]] = []
    for inst in instances:
        if inst.sop_instance_uid:
            seen = first.setdefault(inst.sop_instance_uid, inst)
            if seen is not inst:
                duplicates.append((inst, seen))
                continue
        unique.append(inst)
    return unique, duplicates


def build_studies(instances: Sequence[InstanceInfo]) -> list[Study]:
    """Studies with their series and orientation stacks, slices ordered by position (then InstanceNumber).

    The same SOP Instance UID met twice is kept once, the first seen (`split_duplicates`). Studies are
    ordered by patient, then date and time; series by Series Number.
    """
    studies: dict[str, dict[str, list[InstanceInfo]]] = {}
    study_first: dict[str, InstanceInfo] = {}
    for inst in split_duplicates(instances)[0]:
        study_key = inst.study_uid
        series_map = studies.setdefault(study_key, {})
        study_first.setdefault(study_key, inst)
        series_map.setdefault(inst.series_uid, []).append(inst)

    result = []
    for study_uid, series_map in studies.items():
        first = study_first[study_uid]
        series = [_series_of(uid, members) for uid, members in series_map.items()]
        series.sort(key=lambda s: (s.number is None, s.number if s.number is not None else 0, s.series_uid))
        result.append(Study(study_uid, first.patient_id, first.patient_name, first.study_date,
                            first.study_description, series))
    result.sort(key=lambda s: (s.patient_name, s.patient_id, s.study_date, study_first[s.study_uid].study_time,
                               s.study_uid))
    return result
