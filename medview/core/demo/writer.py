"""Part-10 files of the demo studies: CR/DX chest radiographs, an axial CT series and its localizer.

Files are Explicit VR Little Endian with a preamble and complete file meta, written with
``dcmwrite(..., enforce_file_format=True)``. UIDs are UUID-derived ``2.25.`` UIDs computed from names (seed,
case, role), so the same seed gives the same UIDs (PS3.5 B.2).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, UID

CR_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")  # Computed Radiography Image Storage
DX_PRESENTATION_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1.1")  # Digital X-Ray Image Storage - For Presentation
CT_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage

_NAMESPACE = uuid.UUID("7f6c1a52-3d0e-4c35-9a8e-6d1e2b7c9f10")


def demo_uid(*parts: object) -> UID:
    """A deterministic UID: ``2.25.<UUID-5 of the parts as an integer>`` (PS3.5 B.2)."""
    name = "/".join(str(p) for p in parts)
    return UID(f"2.25.{uuid.uuid5(_NAMESPACE, name).int}")


def _base(sop_class: UID, sop_instance: UID) -> Dataset:
    """A dataset with its file meta (Explicit VR Little Endian) and SOP common attributes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "MEDVIEW_DEMO"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    return ds


def _patient_study(ds: Dataset, patient: dict, study: dict) -> None:
    """Patient and General Study modules, plus the equipment every demo image shares."""
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = patient["birth_date"]
    ds.PatientSex = patient["sex"]
    ds.PatientAge = patient["age"]
    ds.StudyInstanceUID = study["uid"]
    ds.StudyDate = study["date"]
    ds.StudyTime = study["time"]
    ds.StudyID = study["id"]
    ds.AccessionNumber = study["accession"]
    ds.StudyDescription = study["description"]
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "medview"
    ds.ManufacturerModelName = "synthetic phantom"
    ds.InstitutionName = "medview demo (synthetic data)"
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = "medview demo-data"
    ds.BurnedInAnnotation = "NO"


def _pixels(ds: Dataset, arr: np.ndarray, *, bits_stored: int, signed: bool, photometric: str) -> None:
    """Image Pixel module for one monochrome frame; PixelData as raw little-endian bytes."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = (int(n) for n in arr.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    dtype = "<i2" if signed else "<u2"
    ds.PixelData = np.ascontiguousarray(arr, dtype=dtype).tobytes()
    ds["PixelData"].VR = "OW"


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def write_radiograph(
    path: Path,
    pixels: np.ndarray,
    *,
    modality: str,
    pixel_spacing: float,
    patient: dict,
    study: dict,
    series_uid: UID,
    sop_uid: UID,
) -> Path:
    """A PA chest radiograph: CR stored MONOCHROME1 (high = dark), DX stored MONOCHROME2.

    `pixels` are in MONOCHROME2 sense (dense = high, 12 bits); for CR they are inverted here, so both
    display the same way. The window is computed from the stored values (in the stored sense).
    """
    cr = modality == "CR"
    ds = _base(CR_STORAGE if cr else DX_PRESENTATION_STORAGE, sop_uid)
    _patient_study(ds, patient, study)
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = "CHEST PA"
    ds.SeriesDate, ds.SeriesTime = study["date"], study["time"]
    ds.ContentDate, ds.ContentTime = study["date"], study["time"]
    ds.AcquisitionDate, ds.AcquisitionTime = study["date"], study["time"]
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.KVP = patient["kvp"]
    ds.ExposureTime = patient["exposure_ms"]
    ds.XRayTubeCurrent = patient["ma"]
    ds.DistanceSourceToDetector = 1800
    ds.DistanceSourceToPatient = 1650
    ds.ImagerPixelSpacing = [pixel_spacing, pixel_spacing]
    ds.PixelSpacing = [pixel_spacing, pixel_spacing]
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if cr else -1  # stored high = less beam intensity for DX
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    stored = (4095 - pixels) if cr else pixels
    body = stored[:: 8, :: 8]
    lo, hi = np.percentile(body, [1.0, 99.5])
    ds.WindowCenter = round(float(lo + hi) / 2, 1)
    ds.WindowWidth = round(max(float(hi - lo), 2.0), 1)
    ds.WindowCenterWidthExplanation = "NORMAL"
    ds.VOILUTFunction = "LINEAR"
    if cr:
        ds.PlateType = "ST-VI"
    else:
        ds.PresentationLUTShape = "IDENTITY"
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
        ds.DetectorConfiguration = "AREA"
        ds.ImageLaterality = "U"  # unpaired body part
        region = Dataset()
        region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "51185008", "SCT", "Chest"
        ds.AnatomicRegionSequence = [region]
    ds.LossyImageCompression = "00"
    _pixels(ds, stored.astype(np.uint16), bits_stored=12, signed=False,
            photometric="MONOCHROME1" if cr else "MONOCHROME2")
    return _save(ds, path)


def _ct_acquisition(ds: Dataset, study: dict, frame_uid: UID) -> None:
    """What the axial series and its topogram share: one scan of one patient, in one frame of reference."""
    ds.SeriesDate, ds.SeriesTime = study["date"], study["time"]
    ds.ContentDate, ds.ContentTime = study["date"], study["time"]
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.KVP = 120


def write_ct_slices(
    out_dir: Path,
    slices: Iterable[tuple[int, np.ndarray]],
    *,
    n_slices: int,
    pixel_spacing: float,
    slice_spacing: float,
    patient: dict,
    study: dict,
    series_uid: UID,
    uid_root: tuple,
    series_number: int = 2,
    frame_uid: UID | None = None,
) -> list[Path]:
    """An axial CT series from (index, HU image) pairs: 12-bit unsigned stored, RescaleIntercept -1024, slope 1.

    Slice i is at z = -i * slice_spacing (cranial first); ImagePositionPatient is the centre of the first
    transmitted pixel in LPS (PS3.3 C.7.6.2.1.1), so positions step exactly by the spacing along the normal.
    """
    paths = []
    frame_uid = frame_uid or demo_uid(*uid_root, "frame")
    for i, hu in slices:
        rows, cols = hu.shape
        sop = demo_uid(*uid_root, "ct", i)
        ds = _base(CT_STORAGE, sop)
        _patient_study(ds, patient, study)
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = "CHEST W CONTRAST AXIAL"
        _ct_acquisition(ds, study, frame_uid)
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = i + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ConvolutionKernel = "STANDARD"
        ds.SliceThickness = round(slice_spacing, 4)
        ds.SpacingBetweenSlices = round(slice_spacing, 4)
        z = -i * slice_spacing
        x0 = -(cols - 1) / 2 * pixel_spacing
        y0 = -(rows - 1) / 2 * pixel_spacing
        ds.ImagePositionPatient = [round(x0, 4), round(y0, 4), round(z, 4)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = round(z, 4)
        ds.PixelSpacing = [pixel_spacing, pixel_spacing]
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = [40, -600]
        ds.WindowWidth = [400, 1500]
        ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
        stored = np.clip(np.rint(hu) + 1024, 0, 4095).astype(np.uint16)
        _pixels(ds, stored, bits_stored=12, signed=False, photometric="MONOCHROME2")
        paths.append(_save(ds, out_dir / f"IM{i + 1:04d}.dcm"))
    return paths


def write_ct_localizer(
    path: Path,
    hu_volume_projection: np.ndarray,
    *,
    pixel_spacing: float,
    top_z: float,
    left_x: float,
    patient: dict,
    study: dict,
    series_uid: UID,
    sop_uid: UID,
    frame_uid: UID,
) -> Path:
    """A coronal scout (topogram): rows run feet-ward from `top_z`, columns to the patient's left."""
    ds = _base(CT_STORAGE, sop_uid)
    _patient_study(ds, patient, study)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = "TOPOGRAM"
    _ct_acquisition(ds, study, frame_uid)
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.ImagePositionPatient = [round(left_x, 4), 0.0, round(top_z, 4)]
    ds.SliceThickness = 1
    ds.PixelSpacing = [pixel_spacing, pixel_spacing]
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    img = hu_volume_projection
    lo, hi = np.percentile(img, [1, 99.5])
    ds.WindowCenter = round(float(lo + hi) / 2, 1)
    ds.WindowWidth = round(max(float(hi - lo), 2.0), 1)
    _pixels(ds, img.astype(np.uint16), bits_stored=12, signed=False, photometric="MONOCHROME2")
    return _save(ds, path)
