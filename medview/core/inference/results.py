"""Plain data the engine, the cache, the worker and the findings panel pass around (no torch, no Qt)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medview.core.dicom.source import SourceRef

OK, NOT_APPLICABLE, ERROR = "ok", "not_applicable", "error"


@dataclass
class Prediction:
    """The model's answer for one image, as plain data (safe to send across threads)."""

    scores: dict[str, float]
    flagged: list[str]
    heatmap: np.ndarray | None  # float32 [K, h, w], each finding's map scaled to 0..1; None without one
    model: str                  # "name@version"


@dataclass(frozen=True)
class InferenceJob:
    """One frame to score, with the identifiers the worklist and `medview infer` need to place its result."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    ref: SourceRef
    modality: str
    frame: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.sop_instance_uid, self.frame)

    @classmethod
    def for_instance(cls, inst) -> list["InferenceJob"]:
        """One job per frame of an `InstanceInfo`."""
        return [cls(inst.study_uid, inst.series_uid, inst.sop_instance_uid, inst.ref, inst.modality, f)
                for f in range(max(1, inst.frames))]


@dataclass
class InferenceResult:
    """What became of one job: status "ok" (with a prediction), "not_applicable" or "error" (with a reason)."""

    job: InferenceJob
    status: str
    prediction: Prediction | None = None
    error: str = ""
    cached: bool = False


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's message (or its class name): one readable line per failed image."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
