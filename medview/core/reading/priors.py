"""Which studies belong to one patient, and which of them is the prior of a study.

A Patient ID alone is not a patient: sources assign IDs independently, so two people can share one. A study is
the same patient's when the IDs match and so do the birth dates (or, where a birth date is missing, the names).
The prior is the most recent earlier study of the same modality (CR and DX are one kind: radiographs) and the
same body part (a missing body part does not rule a study out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from medview.core.dicom.model import Study
from medview.core.dicom.readable import parse_date
from medview.core.reading.facts import FactsCache

# modalities that read as one kind when comparing with earlier studies
MODALITY_KIND = {"CR": "XR", "DX": "XR"}


@dataclass(frozen=True)
class StudyKey:
    """What identifies a study's patient, its kind and its time, for finding priors."""

    study_uid: str
    patient_id: str
    patient_name: str
    birth_date: str
    when: str  # study date and time, "YYYYMMDDHHMMSS"; "" when the study has no date
    kinds: frozenset[str]
    body_part: str

    def same_patient(self, other: "StudyKey") -> bool:
        if not self.patient_id or self.patient_id != other.patient_id:
            return False
        if self.birth_date and other.birth_date:
            return self.birth_date == other.birth_date
        return normalise_name(self.patient_name) == normalise_name(other.patient_name)

    def comparable(self, other: "StudyKey") -> bool:
        """Same kind of imaging of the same body part (either body part unknown: comparable)."""
        if not self.kinds & other.kinds:
            return False
        return not self.body_part or not other.body_part or self.body_part == other.body_part


def normalise_name(name: str) -> str:
    """Person names compared without case, spacing or trailing empty components ("Doe^John^^" = "DOE^JOHN")."""
    parts = [" ".join(part.split()).upper() for part in name.split("^")]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def study_key(study: Study, facts: FactsCache) -> StudyKey:
    first = next((inst for stack in study.stacks for inst in stack.instances), None)
    time = (first.study_time if first is not None else "").split(".")[0]
    when = (study.study_date + time.ljust(6, "0")) if study.study_date else ""
    kinds = frozenset(MODALITY_KIND.get(stack.modality.upper(), stack.modality.upper()) for stack in study.stacks)
    study_facts = facts.of_study(study)
    return StudyKey(study.study_uid, study.patient_id.strip(), study.patient_name, study_facts.birth_date, when,
                    kinds, study_facts.body_part)


def same_patient_studies(current: StudyKey, keys: Iterable[StudyKey]) -> list[StudyKey]:
    """The other studies of the current study's patient, most recent first."""
    mine = [k for k in keys if k.study_uid != current.study_uid and current.same_patient(k)]
    return sorted(mine, key=lambda k: k.when, reverse=True)


def find_prior(current: StudyKey, keys: Iterable[StudyKey]) -> StudyKey | None:
    """The most recent study of the same patient, kind and body part taken before `current`, or None."""
    if not current.when:
        return None
    earlier = [k for k in same_patient_studies(current, keys) if k.when and k.when < current.when
               and current.comparable(k)]
    return earlier[0] if earlier else None


def time_before(earlier: str, later: str) -> str:
    """How long before `later` a study was taken, as a reader says it ("3 weeks", "8 months", "2 years 5
    months"); "" when a date is missing or `earlier` is not earlier. Dates are DICOM "YYYYMMDD"."""
    a, b = parse_date(earlier), parse_date(later)
    if a is None or b is None or b <= a:
        return ""
    months = (b.year - a.year) * 12 + b.month - a.month - (b.day < a.day)
    if months < 1:
        days = (b - a).days
        return f"{days // 7} week{'s' * (days // 7 != 1)}" if days >= 14 else f"{days} day{'s' * (days != 1)}"
    years, months = divmod(months, 12)
    parts = [f"{years} year{'s' * (years != 1)}" if years else "", f"{months} month{'s' * (months != 1)}" if months
             else ""]
    return " ".join(p for p in parts if p)
