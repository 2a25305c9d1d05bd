"""Linked scrolling: which image of another stack goes with the image shown in this one.

Stacks in one Frame of Reference share patient coordinates: the other stack shows its slice nearest to the
patient point at the centre of this image, measured along its own normal and by its real slice positions, so
gaps and uneven spacing are followed. Stacks without a common frame (a prior, another scanner) follow by
relative position: the same fraction of the way through the stack.
"""

from __future__ import annotations

import bisect
from typing import Sequence

from medview.core.dicom.model import InstanceInfo, Stack
from medview.core.dicom.series import slice_normal

Point = tuple[float, float, float]


def image_centre(inst: InstanceInfo) -> Point | None:
    """The patient point (mm) at the centre of the instance's image, or None without its geometry."""
    if inst.image_position is None or inst.image_orientation is None or not inst.rows or not inst.columns:
        return None
    row_spacing, column_spacing = inst.pixel_spacing or (1.0, 1.0)
    along_row, along_column = inst.image_orientation[:3], inst.image_orientation[3:]
    half_width = (inst.columns - 1) / 2 * column_spacing
    half_height = (inst.rows - 1) / 2 * row_spacing
    return tuple(p + r * half_width + c * half_height  # type: ignore[return-value]
                 for p, r, c in zip(inst.image_position, along_row, along_column))


def has_slice_positions(stack: Stack) -> bool:
    """One known position per image: every instance placed, none of them multi-frame."""
    return (bool(stack.instances) and len(stack.positions) == len(stack.instances)
            and all(p is not None for p in stack.positions) and all(i.frames <= 1 for i in stack.instances))


def nearest_slice(positions: Sequence[float], at: float) -> int:
    """Index of the position nearest to `at`; positions ascending (a stack's order), spacing as it comes."""
    k = bisect.bisect_left(positions, at)
    if k == 0:
        return 0
    if k >= len(positions):
        return len(positions) - 1
    return k if positions[k] - at < at - positions[k - 1] else k - 1


def relative_index(index: int, count: int, target_count: int) -> int:
    """The same fraction of the way through a stack of `target_count` images."""
    if target_count <= 1 or count <= 1:
        return 0
    return round(index / (count - 1) * (target_count - 1))


def linked_index(source: Stack, index: int, target: Stack, same_frame: bool) -> int:
    """The image of `target` that goes with image `index` of `source` (see the module docstring)."""
    if same_frame and has_slice_positions(source) and has_slice_positions(target):
        centre = image_centre(source.instances[index])
        orientation = target.instances[0].image_orientation
        if centre is not None and orientation is not None:
            normal = slice_normal(orientation)
            at = sum(c * n for c, n in zip(centre, normal))
            return nearest_slice(target.positions, at)  # type: ignore[arg-type]
    return relative_index(index, source.frame_count, target.frame_count)
