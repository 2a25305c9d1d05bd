"""The model's masks (heart, lungs, thorax) as a DICOM Segmentation per image (highdicom, BINARY).

One segment per mask, resized (nearest neighbour) from the model's grid to the source image's rows and
columns, referencing the source image. The source header is read with pydicom; only the technical attributes
the Segmentation needs are taken from it, the patient and study from the case as the SR writes them, so an
anonymised SEG carries the same pseudonyms, UIDs and shifted dates as the anonymised SR.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from medview import __version__
from medview.core.review.anonymize import Pseudonymizer
from medview.core.review.sr import SCHEME, case_module, deidentify, new_object

SEG_SERIES_NUMBER = 9903
MASK_CODES = {"heart": codes.SCT.Heart, "lungs": codes.SCT.Lung, "lung": codes.SCT.Lung, "thorax": codes.SCT.Thorax}
# what the Segmentation needs of its source image, besides patient and study
_IMAGE_TAGS = ["SOPClassUID", "Modality", "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel",
               "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
               "ImagerPixelSpacing", "SeriesNumber", "InstanceNumber", "PatientOrientation", "ImageType"]
_UID_TAGS = ["SOPInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"]
# the plane in patient space: only with a frame of reference (a radiograph usually has none, and a SEG then
# carries no Pixel Measures, PS3.3 A.51)
_PLANE_TAGS = ["PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness"]


def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A [h, w] mask on the image's [rows, columns] grid: each pixel takes the mask cell its centre falls in."""
    h, w = mask.shape
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.intp), w - 1)
    return mask[rows[:, None], cols[None, :]]


def build_seg(record, *, anon: Pseudonymizer | None = None) -> list[Dataset] | None:
    """One SEG per image whose AI result has masks (in image order), or None when no image has any."""
    masked = sorted((key, p) for key, p in record.ai.items()
                    if getattr(p, "masks", None) is not None and len(p.masks))
    if not masked:
        return None
    return [_segmentation(record, sop, frame, prediction, anon) for (sop, frame), prediction in masked]


def _segmentation(record, sop: str, frame: int, prediction, anon: Pseudonymizer | None) -> Dataset:
    from medview.core.dicom import decoded

    info = record.instances.get(sop)
    if info is None:
        raise ValueError(f"image {sop} of the review is not in the scanned folder")
    if info.frames > 1:
        raise ValueError("masks of one frame of a multi-frame image are not exported as a Segmentation")
    source = _source_header(decoded.header(info.ref), case_module(record, anon), anon)
    masks = np.asarray(prediction.masks)
    labels = list(prediction.mask_labels) or [f"mask {i + 1}" for i in range(len(masks))]
    # [1 frame, rows, columns, segments]: one binary plane per mask, in the image's matrix
    planes = np.stack([resize_nearest(m > 0, (source.Rows, source.Columns)) for m in masks], axis=-1)
    algorithm = _algorithm(record, sop, prediction)
    segments = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=label, segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=MASK_CODES.get(label) or hd.sr.CodedConcept(label[:16], SCHEME, label),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
    ) for i, label in enumerate(labels)]
    seg = hd.seg.Segmentation(
        source_images=[source],
        pixel_array=planes[None].astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments,
        **new_object(SEG_SERIES_NUMBER),
        manufacturer_model_name="medview",
        software_versions=__version__,
        device_serial_number="none",
        omit_empty_frames=False,
    )
    seg.SeriesDescription = "AI segmentation (research use only, not for diagnosis)"
    if "FrameOfReferenceUID" not in seg:  # a plane without patient coordinates says its orientation (2C)
        seg.PatientOrientation = source.get("PatientOrientation", "")
    if anon is not None:
        deidentify(seg, anon, record.patient_key)
    return seg


def _source_header(ds: Dataset, module: Dataset, anon: Pseudonymizer | None) -> Dataset:
    """The source image as the SEG may see it: its technical attributes, the case's patient and study."""
    source = Dataset()
    for tag in _IMAGE_TAGS + (_PLANE_TAGS if "FrameOfReferenceUID" in ds else []):
        if tag in ds:
            setattr(source, tag, ds[tag].value)
    for tag in _UID_TAGS:
        if tag in ds:
            setattr(source, tag, ds[tag].value if anon is None else anon.uid(ds[tag].value))
    for elem in module:
        source[elem.tag] = elem
    return source


def _algorithm(record, sop: str, prediction) -> hd.AlgorithmIdentificationSequence:
    name, _, version = str(getattr(prediction, "model", "") or "model").partition("@")
    checksum = next((f.model_checksum for f in record.findings if f.sop_instance_uid == sop and f.model_checksum), "")
    return hd.AlgorithmIdentificationSequence(name=name, family=codes.DCM.ArtificialIntelligence,
                                              version=version or "unknown",
                                              parameters={"sha256": checksum} if checksum else None)
