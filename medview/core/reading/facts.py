"""Header facts that reading needs beyond what the scan keeps: the birth date (two patients may share a Patient
ID across sources), the body part (priors and hanging protocols) and the Frame of Reference UID (scrolling
linked by patient position).

They are taken from the instance when it carries them, else read from one file per series (header only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from medview.core.dicom.model import InstanceInfo, Stack, Study

log = logging.getLogger(__name__)

# fact -> (InstanceInfo attribute, should the scan carry it one day; DICOM keyword in the file)
_SOURCES = {
    "birth_date": ("patient_birth_date", "PatientBirthDate"),
    "body_part": ("body_part_examined", "BodyPartExamined"),
    "frame_of_reference_uid": ("frame_of_reference_uid", "FrameOfReferenceUID"),
}


@dataclass(frozen=True)
class SeriesFacts:
    """What one series says beyond the scan's InstanceInfo ("" where the header does not tell)."""

    birth_date: str = ""
    body_part: str = ""
    frame_of_reference_uid: str = ""


FactsReader = Callable[[InstanceInfo], SeriesFacts]


def read_series_facts(inst: InstanceInfo) -> SeriesFacts:
    """The facts of `inst`'s series: from the instance where it has them, else from its file's header.

    A file that cannot be read gives empty facts (logged): a study is still read, only without priors or
    position linking where those depend on it.
    """
    carried = {name: getattr(inst, attr, None) for name, (attr, _) in _SOURCES.items()}
    if all(value is not None for value in carried.values()):
        return SeriesFacts(**{name: str(value).strip() for name, value in carried.items()})
    from medview.core.dicom.pixels import read_dataset
    from medview.core.dicom.scan import quiet_pydicom
    from medview.core.errors import MedviewError

    try:
        with quiet_pydicom():
            ds = read_dataset(inst.ref, stop_before_pixels=True)
            values = {name: str(ds.get(keyword, "") or "").strip() for name, (_, keyword) in _SOURCES.items()}
    except (MedviewError, OSError, ValueError) as exc:
        log.info("%s: header facts for reading unavailable (%s)", inst.ref.display(), exc)
        return SeriesFacts()
    return SeriesFacts(**values)


class FactsCache:
    """Series facts read once per series, on first need."""

    def __init__(self, reader: FactsReader = read_series_facts):
        self._reader = reader
        self._facts: dict[tuple[str, str], SeriesFacts] = {}

    def of_stack(self, stack: Stack) -> SeriesFacts:
        if not stack.instances:
            return SeriesFacts()
        first = stack.instances[0]
        key = (first.study_uid, stack.series_uid)
        if key not in self._facts:
            self._facts[key] = self._reader(first)
        return self._facts[key]

    def of_study(self, study: Study) -> SeriesFacts:
        """Study-level facts: for the birth date and the body part, the first series that gives one."""
        birth_date = body_part = ""
        for stack in study.stacks:
            facts = self.of_stack(stack)
            birth_date = birth_date or facts.birth_date
            body_part = body_part or facts.body_part
            if birth_date and body_part:
                break
        return SeriesFacts(birth_date=birth_date, body_part=body_part.upper())
