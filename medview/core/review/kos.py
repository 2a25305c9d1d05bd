"""The reader's key images of a case as a DICOM Key Object Selection document (KOS, TID 2010 "Of Interest").

A PACS shows a KOS as the study's flagged images; it references each key image (SOP Class + Instance UID,
and the frames of a multi-frame image), names the reader as the person observer, and is anonymised the way
the SR is (`medview.core.review.sr`). A case without key images gets none.
"""

from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from medview.core.review.anonymize import Pseudonymizer
from medview.core.review.sr import deidentify, image_references, new_object, reader_name, reader_observer

KOS_SERIES_NUMBER = 9902


def build_kos(record, *, anon: Pseudonymizer | None = None) -> Dataset | None:
    """The KOS of the case's key images, or None when it has none."""
    keys = record.case.key_images
    if not keys:
        return None
    evidence, refs = image_references(record, [(k.sop_instance_uid, k.series_uid) for k in keys], anon)
    content = hd.ko.KeyObjectSelection(
        document_title=codes.DCM.OfInterest,
        referenced_objects=evidence,
        observer_person_context=reader_observer(reader_name(record, anon)),
        description="Key images selected by the reader",
    )
    frames_of = {}
    for k in keys:
        sop_class, sop_uid, frames = refs[k.sop_instance_uid]
        if frames and frames > 1:
            frames_of.setdefault(sop_uid, set()).add(k.frame + 1)
    _reference_frames(content, frames_of)
    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=evidence,
        content=content,
        **new_object(KOS_SERIES_NUMBER),
    )
    kos.SeriesDescription = "Key images (research use only, not for diagnosis)"
    if anon is not None:
        deidentify(kos, anon, record.patient_key)
    return kos


def _reference_frames(content, frames_of: dict[str, set[int]]) -> None:
    """Name the key frames of multi-frame images in their IMAGE items (highdicom references whole images)."""
    for item in content[0].ContentSequence:
        if item.ValueType != "IMAGE":
            continue
        ref = item.ReferencedSOPSequence[0]
        if ref.ReferencedSOPInstanceUID in frames_of:
            ref.ReferencedFrameNumber = sorted(frames_of[ref.ReferencedSOPInstanceUID])
