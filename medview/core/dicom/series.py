"""Grouping instances patient -> study -> series -> stacks, and ordering slices along the normal.

INTERFACE (filled in by the core work).
"""

from __future__ import annotations

from typing import Sequence

from medview.core.dicom.model import InstanceInfo, Study


def build_studies(instances: Sequence[InstanceInfo]) -> list[Study]:
    """Studies with their series and orientation stacks, slices ordered by position (then InstanceNumber)."""
    raise NotImplementedError
