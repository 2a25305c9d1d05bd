"""Plain data the engine, the cache, the worker and the findings panel pass around (no torch, no Qt)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medview.core.dicom.source import SourceRef
from medview.core.errors import without_file

OK, NOT_APPLICABLE, ERROR = "ok", "not_applicable", "error"


@dataclass
class Prediction:
    """The model's answer for one image, as plain data (safe to send across threads)."""

    scores: dict[str, float]
    flagged: list[str]
    heatmap: np.ndarray | None  # float32 [K, h, w], each finding's map scaled to 0..1; None without one
    model: str                  # "name@version"
    # what a measuring model measured, JSON-able, in the source image's pixels:
    # {"cardiothoracic_ratio": {"value": 0.56, "unit": "1", "threshold": 0.5,
    #                           "heart": [[c0, r], [c1, r]], "thorax": [[c0, r], [c1, r]]}}
    measurements: dict = field(default_factory=dict)
    # a segmenting model's masks: uint8 [S, h, w] (0 or 1) on the model's grid, names in `mask_labels`; the
    # caller resizes to the image (rows, columns) for display or a DICOM Segmentation
    masks: np.ndarray | None = None
    mask_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class InferenceJob:
    """One frame to score, with the identifiers the worklist and `medview infer` need to place its result."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    ref: SourceRef
    modality: str
    frame: int = 0
    # the scan's header facts of the file (an InstanceInfo), where a scan found it: an uncompressed frame is
    # then read at its offset without walking the file again
    info: object = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.sop_instance_uid, self.frame)

    @classmethod
    def for_instance(cls, inst) -> list["InferenceJob"]:
        """One job per frame of an `InstanceInfo`."""
        return [cls(inst.study_uid, inst.series_uid, inst.sop_instance_uid, inst.ref, inst.modality, f, inst)
                for f in range(max(1, inst.frames))]


@dataclass
class InferenceResult:
    """What became of one job: status "ok" (with a prediction), "not_applicable" or "error" (with a reason)."""

    job: InferenceJob
    status: str
    prediction: Prediction | None = None
    error: str = ""  # for "error": what went wrong; for "not_applicable": why the model does not read it
    cached: bool = False


@dataclass(frozen=True)
class NotApplicable:
    """The engine's answer for an image outside the model's intended use, found from its header or pixels."""

    reason: str  # in words, e.g. "lateral view", "not a frontal chest radiograph by its pixels"


def short_reason(exc: BaseException, file: str | None = None) -> str:
    """The first line of an exception's message (or its class name): one readable line per failed image;
    without the leading "`file`: " where the result it goes into names that file already."""
    text = without_file(str(exc).strip(), file)
    return text.splitlines()[0] if text else type(exc).__name__
