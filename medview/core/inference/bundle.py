"""Model bundles (SPEC section 4): a MONAI-bundle-style folder, or one TorchScript file carrying metadata.json.

A folder holds the network as TorchScript (`models/model.ts`), a torch.export program (`models/model.pt2`) and/or
ONNX (`models/model.onnx`); any one of them is enough. Reading a bundle never imports torch and never runs its
code: the metadata is parsed (leniently: real bundles get `type`/`format` wrong), every problem is collected and
reported together in one ModelError naming the bundle, and a network file is only handed to its loader after the
SHA-256 of the very bytes being loaded matched the metadata. Nothing is ever unpickled: a torch.export program
that stores pickled objects is refused (see `verified_network_bytes`).

Checksums: `medview.sha256` is the digest of the bundle's first network file, `models/model.ts` where there is
one (SPEC); the others name theirs in `pt2_sha256` / `onnx_sha256` (a file whose digest is `sha256` itself is
accepted too). A single TorchScript file cannot carry its own digest, so there it is the digest of the archive's
payload: every zip member except `extra/metadata.json`, in archive order (see `payload_sha256`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from medview.core.errors import ModelError
from medview.core.inference import ctr
from medview.core.inference.results import short_reason

log = logging.getLogger(__name__)

METADATA_IN_FOLDER = "configs/metadata.json"
TORCHSCRIPT_IN_FOLDER = "models/model.ts"
EXPORT_IN_FOLDER = "models/model.pt2"
ONNX_IN_FOLDER = "models/model.onnx"
#: the network formats, in the order the first one present names `medview.sha256`
NETWORK_FILES = {"torchscript": TORCHSCRIPT_IN_FOLDER, "export": EXPORT_IN_FOLDER, "onnx": ONNX_IN_FOLDER}
_DIGEST_KEYS = {"torchscript": "sha256", "export": "pt2_sha256", "onnx": "onnx_sha256"}
README_IN_FOLDER = "docs/README.md"
EXTRA_METADATA = "metadata.json"  # the extra-file name of MONAI's save_net_with_metadata
WINDOWS = ("dicom", "minmax")
SCORE_KINDS = ("probabilities", "sigmoid", "softmax")
RESEARCH_USE_ONLY = "Research use only — not for diagnosis"


@dataclass(frozen=True)
class ModelBundle:
    """What medview needs to know about a model, read from its metadata; the network itself is not loaded."""

    source: Path                      # the folder, or the single TorchScript file
    name: str
    version: str
    description: str
    labels: tuple[str, ...]           # findings, in output channel order
    modalities: tuple[str, ...]
    window: str | tuple[float, float]  # "dicom" | "minmax" | (center, width)
    resize: tuple[int, int]           # (H, W) fed to the network
    num_channels: int
    value_range: tuple[float, float]
    scores: str                       # "probabilities" | "sigmoid" | "softmax"
    heatmap: bool
    thresholds: dict[str, float]
    sha256: str
    torchscript: Path | None          # models/model.ts (or the single file); None when the folder has none
    onnx: Path | None = None
    onnx_sha256: str | None = None
    export: Path | None = None        # models/model.pt2, a torch.export program
    export_sha256: str | None = None
    readme: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    intended_use: "IntendedUse | None" = None
    measurement: "MeasurementSpec | None" = None  # a measuring model: the network returns masks

    @property
    def ident(self) -> str:
        """"name@version", as written in `infer --json` lines and shown in the findings panel."""
        return f"{self.name}@{self.version}"

    @cached_property
    def results_key(self) -> str:
        """Digest of the weights' checksum and the whole metadata: a cached result is reused only while both
        are unchanged, because the findings, pre-processing, output kind and thresholds in the metadata shape
        a result as much as the weights do."""
        text = json.dumps({"sha256": self.sha256, "metadata": self.metadata}, sort_keys=True, default=str)
        return file_sha256(text.encode("utf-8"))

    @property
    def single_file(self) -> bool:
        return self.source.is_file()

    @property
    def networks(self) -> tuple[str, ...]:
        """The network formats this bundle carries ("torchscript", "export", "onnx"), in that order."""
        present = {"torchscript": self.torchscript, "export": self.export, "onnx": self.onnx}
        return tuple(kind for kind, path in present.items() if path is not None)

    def applies_to(self, modality: str) -> bool:
        """Whether images of this modality are sent to the model at all."""
        return (modality or "").strip().upper() in self.modalities

    def out_of_scope(self, ds) -> str | None:
        """Why the image whose header is `ds` is outside the model's intended use, in words; None when its
        header allows it (the pixels may still refuse it)."""
        return self.intended_use.refusal(ds) if self.intended_use is not None else None

    def flagged(self, scores: dict[str, float], thresholds: dict[str, float] | None = None) -> list[str]:
        """Labels whose score is at or above its threshold (the bundle's unless the user overrides some)."""
        limits = {**self.thresholds, **(thresholds or {})}
        return flagged_labels({label: scores.get(label, -math.inf) for label in self.labels}, limits)


_LATERAL_VIEWS = {"LL", "RL", "LAT", "LATERAL", "LLD", "RLD"}


@dataclass(frozen=True)
class IntendedUse:
    """What a model reads, by the image header (the "medview.intended_use" object); silent tags pass."""

    body_parts: tuple[str, ...] = ()     # BodyPartExamined values accepted (upper case); empty: any
    views: tuple[str, ...] = ()          # ViewPosition values accepted; empty: any
    min_matrix: int = 0                  # rows and columns at least this
    pixel_spacing_mm: tuple[float, float] | None = None  # plausible (min, max) pixel spacing

    def refusal(self, ds) -> str | None:
        part = str(getattr(ds, "BodyPartExamined", "") or "").strip().upper()
        if self.body_parts and part and not any(p in part for p in self.body_parts):
            return f"other body part ({part.lower()})"
        view = str(getattr(ds, "ViewPosition", "") or "").strip().upper()
        if self.views and view and view not in self.views:
            return "lateral view" if view in _LATERAL_VIEWS else f"other view ({view})"
        for item in getattr(ds, "ViewCodeSequence", None) or []:
            meaning = str(getattr(item, "CodeMeaning", "") or "").lower()
            if self.views and "lateral" in meaning:
                return "lateral view"
        rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
        if self.min_matrix and rows and cols and min(rows, cols) < self.min_matrix:
            return f"too small ({cols}×{rows} pixels; the model needs at least {self.min_matrix})"
        values = _header_spacing(ds)
        if self.pixel_spacing_mm and values:
            lo, hi = self.pixel_spacing_mm
            if not all(lo <= v <= hi for v in values):
                return (f"implausible pixel spacing for a chest radiograph ({values[0]:g} mm; "
                        f"expected {lo:g}-{hi:g} mm)")
        return None


def _header_spacing(ds) -> list[float]:
    """Pixel Spacing, else Imager Pixel Spacing (mm); [] where the header gives none. A spacing of 0 is a
    writer's placeholder for "unknown" (a real chest CR in pydicom-data has Pixel Spacing 0\\0), not a spacing."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            values = [float(v) for v in getattr(ds, keyword, None) or ()][:2]
        except (TypeError, ValueError):
            continue
        if values and all(v > 0 for v in values):
            return values
    return []


@dataclass(frozen=True)
class MeasurementSpec:
    """A measuring model (the "medview.measurement" object): the network returns probability masks
    [N, len(masks), H, W], medview measures `name` on them and derives the score of `finding` from it."""

    name: str                   # "cardiothoracic_ratio"
    finding: str                # the label whose score follows from the measurement
    threshold: float            # the measurement's operating point (CTR 0.5): flagged at or above it
    masks: tuple[str, ...]      # names of the mask channels, e.g. ("heart", "lungs")
    score_scale: float          # calibration of the score: logistic slope 1/scale around the threshold
    unsure_gain: float = 0.0    # and how much flatter it gets where the outlines are unsure
    mirror_average: bool = False  # masks averaged with those of the mirrored image (a measurement of widths
    #                               is mirror-symmetric; averaging halves what is left of the network's noise)


def flagged_labels(scores: Mapping[str, float], thresholds: Mapping[str, float]) -> list[str]:
    """The one operating-point rule (SPEC section 4): a label is flagged when its score is at or above its
    threshold; a label without a threshold is never flagged."""
    return [label for label, score in scores.items() if label in thresholds and score >= thresholds[label]]


def load_bundle(path: str | Path) -> ModelBundle:
    """Read a bundle folder or single TorchScript file; ModelError naming every problem when it is unusable."""
    source = Path(path).expanduser()
    if not source.exists():
        raise ModelError(f"model {source}: not found")
    if source.is_dir():
        meta_file = source / METADATA_IN_FOLDER
        if not meta_file.is_file():
            raise ModelError(f"model {source}: no {METADATA_IN_FOLDER} (not a model bundle folder)")
        found = {kind: source / name for kind, name in NETWORK_FILES.items() if (source / name).is_file()}
        if not found:
            raise ModelError(f"model {source}: no network file ({', '.join(NETWORK_FILES.values())})")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"model {source}: {METADATA_IN_FOLDER} is not readable JSON ({exc})") from None
        readme = source / README_IN_FOLDER
        return parse_metadata(
            meta, source, torchscript=found.get("torchscript"), onnx=found.get("onnx"), export=found.get("export"),
            readme=readme if readme.is_file() else None,
        )
    meta = _single_file_metadata(source)
    return parse_metadata(meta, source, torchscript=source)


def _single_file_metadata(path: Path) -> dict[str, Any]:
    """The metadata.json extra file of a TorchScript archive, read with zipfile (nothing is executed)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if _is_extra_metadata(n)]
            if not names:
                raise ModelError(
                    f"model {path}: this TorchScript file carries no {EXTRA_METADATA} extra file "
                    "(use a bundle folder, or save it with _extra_files={'metadata.json': ...})"
                )
            raw = archive.read(names[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"model {path}: not a TorchScript file ({exc})") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model {path}: its {EXTRA_METADATA} is not readable JSON ({exc})") from None


def _is_extra_metadata(name: str) -> bool:
    parts = name.split("/")
    return len(parts) >= 2 and parts[-2] == "extra" and parts[-1] == EXTRA_METADATA


def _first(mapping: Any, preferred: str) -> Any:
    """mapping[preferred], else its only/first value: bundles name their input 'image', 'img', 'x'..."""
    if not isinstance(mapping, dict) or not mapping:
        return None
    if preferred in mapping:
        return mapping[preferred]
    return next(iter(mapping.values()))


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_pair(value: Any, cast=float) -> tuple | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return (cast(value[0]), cast(value[1]))
        except (TypeError, ValueError):
            return None
    return None


def parse_metadata(
    meta: Any,
    source: Path,
    *,
    torchscript: Path | None,
    onnx: Path | None = None,
    export: Path | None = None,
    readme: Path | None = None,
) -> ModelBundle:
    """The MONAI metadata + the "medview" object of SPEC section 4, leniently; all problems in one ModelError."""
    problems: list[str] = []
    if not isinstance(meta, dict):
        raise ModelError(f"model {source}: metadata.json is not a JSON object")
    ndf = meta.get("network_data_format") if isinstance(meta.get("network_data_format"), dict) else {}
    if not ndf:
        problems.append("missing network_data_format")
    image = _first(ndf.get("inputs"), "image") or {}
    pred = _first(ndf.get("outputs"), "pred") or {}
    mv = meta.get("medview")
    if not isinstance(mv, dict):
        problems.append('missing the "medview" object (modalities, preprocess, thresholds, sha256)')
        mv = {}

    # findings: outputs.pred.channel_def, keys "0", "1"... (ints tolerated), ordered by channel
    labels: list[str] = []
    channel_def = pred.get("channel_def") if isinstance(pred, dict) else None
    if isinstance(channel_def, dict) and channel_def:
        try:
            labels = [str(v) for _, v in sorted(channel_def.items(), key=lambda kv: int(kv[0]))]
        except (TypeError, ValueError):
            problems.append("network_data_format.outputs.pred.channel_def keys must be channel numbers")
    elif isinstance(channel_def, list) and channel_def:
        labels = [str(v) for v in channel_def]
    else:
        problems.append("missing network_data_format.outputs.pred.channel_def (the names of the findings)")
    if len(set(labels)) != len(labels):
        problems.append(f"duplicate finding names in channel_def: {labels}")

    modalities = mv.get("modalities")
    if isinstance(modalities, str):
        modalities = [modalities]
    if not isinstance(modalities, list) or not modalities:
        problems.append("missing medview.modalities (the modalities the model applies to)")
        modalities = []
    modalities = tuple(str(m).strip().upper() for m in modalities)

    pre = mv.get("preprocess") if isinstance(mv.get("preprocess"), dict) else {}
    window_raw = pre.get("window", "dicom")
    window: str | tuple[float, float] = "dicom"
    if isinstance(window_raw, str) and window_raw.strip().lower() in WINDOWS:
        window = window_raw.strip().lower()
    elif _as_pair(window_raw) is not None and _as_pair(window_raw)[1] >= 1:
        window = _as_pair(window_raw)
    else:
        problems.append(f'medview.preprocess.window must be "dicom", "minmax" or [center, width >= 1], '
                        f"not {window_raw!r}")
    spatial = image.get("spatial_shape") if isinstance(image, dict) else None
    resize = _as_pair(pre.get("resize"), int) or _as_pair(spatial, int)
    if resize is None or min(resize) < 1:
        problems.append("missing medview.preprocess.resize or inputs.image.spatial_shape ([H, W])")
        resize = (0, 0)

    num_channels = _as_int(image.get("num_channels", 1) if isinstance(image, dict) else 1)
    if num_channels not in (1, 3):
        problems.append(f"inputs.image.num_channels must be 1 or 3, not {image.get('num_channels')!r}")
        num_channels = 1
    value_range = _as_pair(image.get("value_range") if isinstance(image, dict) else None) or (0.0, 1.0)
    if not value_range[1] > value_range[0]:
        problems.append(f"inputs.image.value_range must rise, not {list(value_range)}")
    dtype = str(image.get("dtype", "float32")).lower() if isinstance(image, dict) else "float32"
    if dtype not in ("float32", "float", "torch.float32", "np.float32", "numpy.float32"):
        problems.append(f"inputs.image.dtype must be float32, not {dtype!r}")

    outputs = mv.get("outputs") if isinstance(mv.get("outputs"), dict) else {}
    scores = str(outputs.get("scores", "probabilities")).strip().lower()
    if scores in ("probability", "probs", "prob"):
        scores = "probabilities"
    if scores not in SCORE_KINDS:
        problems.append(f'medview.outputs.scores must be one of {", ".join(SCORE_KINDS)}, not {scores!r}')
    heatmap = bool(outputs.get("heatmap", False))

    thresholds: dict[str, float] = {}
    raw_thresholds = mv.get("thresholds", {})
    if not isinstance(raw_thresholds, dict):
        problems.append("medview.thresholds must map each finding to a number")
        raw_thresholds = {}
    for label in labels:
        value = raw_thresholds.get(label, 0.5)
        try:
            value = float(value)
        except (TypeError, ValueError):
            problems.append(f"medview.thresholds.{label} is not a number: {value!r}")
            continue
        if not 0.0 <= value <= 1.0:
            problems.append(f"medview.thresholds.{label} must lie in 0..1, not {value}")
        thresholds[label] = value
    unknown = sorted(set(raw_thresholds) - set(labels))
    if unknown:
        log.warning("model %s: thresholds for unknown findings ignored: %s", source, unknown)

    sha = str(mv.get("sha256", "")).strip().lower()
    if not sha:
        problems.append("missing medview.sha256 (the SHA-256 of the network file, models/model.ts where there is "
                        "one): unverified weights are refused")
    elif not _is_digest(sha):
        problems.append(f"medview.sha256 is not a SHA-256 hex digest: {sha!r}")
    onnx_sha = str(mv.get("onnx_sha256", "")).strip().lower() or None
    export_sha = str(mv.get("pt2_sha256", "")).strip().lower() or None
    for key, value in (("onnx_sha256", onnx_sha), ("pt2_sha256", export_sha)):
        if value is not None and not _is_digest(value):
            problems.append(f"medview.{key} is not a SHA-256 hex digest: {value!r}")

    intended_use = _intended_use(mv.get("intended_use"), problems)
    measurement = _measurement(mv.get("measurement"), labels, problems)

    if problems:
        raise ModelError(f"model {source} cannot be used: " + "; ".join(problems))
    return ModelBundle(
        source=source,
        name=str(meta.get("name") or source.stem),
        version=str(meta.get("version") or "0"),
        description=str(meta.get("description") or ""),
        labels=tuple(labels),
        modalities=modalities,
        window=window,
        resize=resize,
        num_channels=num_channels,
        value_range=value_range,
        scores=scores,
        heatmap=heatmap,
        thresholds=thresholds,
        sha256=sha,
        torchscript=torchscript,
        onnx=onnx,
        onnx_sha256=onnx_sha,
        export=export,
        export_sha256=export_sha,
        readme=readme,
        metadata=meta,
        intended_use=intended_use,
        measurement=measurement,
    )


def _intended_use(raw: Any, problems: list[str]) -> IntendedUse | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("medview.intended_use must be an object")
        return None
    words = lambda key: tuple(str(v).strip().upper() for v in (raw.get(key) or []))  # noqa: E731
    spacing = _as_pair(raw.get("pixel_spacing_mm"))
    return IntendedUse(body_parts=words("body_parts"), views=words("views"),
                       min_matrix=_as_int(raw.get("min_matrix", 0)) or 0, pixel_spacing_mm=spacing)


def _measurement(raw: Any, labels: list[str], problems: list[str]) -> MeasurementSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("medview.measurement must be an object")
        return None
    try:
        spec = MeasurementSpec(
            name=str(raw["name"]), finding=str(raw.get("finding") or (labels[0] if labels else "")),
            threshold=float(raw["threshold"]), masks=tuple(str(m) for m in raw["masks"]),
            score_scale=float(raw.get("score_scale", 0.02)), unsure_gain=float(raw.get("unsure_gain", 0.0)),
            mirror_average=bool(raw.get("mirror_average", False)))
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"medview.measurement needs name, threshold and masks ({short_reason(exc)})")
        return None
    if spec.name != ctr.NAME:
        problems.append(f"medview.measurement.name {spec.name!r} is not one medview measures ({ctr.NAME})")
    if spec.finding not in labels:
        problems.append(f"medview.measurement.finding {spec.finding!r} is not a finding of channel_def")
    if not spec.score_scale > 0:
        problems.append("medview.measurement.score_scale must be positive")
    return spec


def _is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload_sha256(data: bytes) -> str:
    """Digest of a TorchScript archive without its extra metadata.json: the single-file form's checksum.

    Each member except `*/extra/metadata.json` and the random `*/.data/serialization_id`, in archive order,
    contributes its name (without the top folder, which torch names after the file), length and bytes.
    """
    digest = hashlib.sha256()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if _is_extra_metadata(info.filename) or info.filename.endswith("/.data/serialization_id"):
                continue
            content = archive.read(info)
            inner = info.filename.split("/", 1)[-1]  # torch names the top folder after the file: ignored
            digest.update(inner.encode("utf-8") + b"\0")
            digest.update(len(content).to_bytes(8, "little"))
            digest.update(content)
    return digest.hexdigest()


def _read_weights(bundle: ModelBundle, path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {bundle.source}: cannot read {name} ({exc})") from None


def verified_network_bytes(bundle: ModelBundle, kind: str) -> bytes:
    """The bytes of the bundle's network file of this format ("torchscript", "export", "onnx"), read once and
    checked against the metadata; ModelError when the file is absent, has no checksum to check it against, or
    does not match. The first network file of the bundle is named by `sha256`, the others by their own key; a
    file whose digest is `sha256` is the one the metadata names either way."""
    path = {"torchscript": bundle.torchscript, "export": bundle.export, "onnx": bundle.onnx}[kind]
    name = bundle.torchscript.name if kind == "torchscript" and path is not None else NETWORK_FILES[kind]
    if path is None:
        raise ModelError(f"model {bundle.source}: has no {NETWORK_FILES[kind]}")
    data = _read_weights(bundle, path, name)
    own = {"torchscript": bundle.sha256, "export": bundle.export_sha256, "onnx": bundle.onnx_sha256}[kind]
    first = bundle.networks[0] == kind
    if kind == "torchscript" and bundle.single_file:
        try:
            actual = payload_sha256(data)
        except zipfile.BadZipFile:
            raise ModelError(f"model {bundle.source}: {name} is not a TorchScript file") from None
    else:
        actual = file_sha256(data)
    if actual == bundle.sha256 or (own is not None and actual == own):
        if kind == "torchscript" and not bundle.single_file and not zipfile.is_zipfile(io.BytesIO(data)):
            raise ModelError(f"model {bundle.source}: {name} is not a TorchScript file")
        if kind == "export":
            _refuse_pickles(bundle, data)
        return data
    if own is None and not first:
        raise ModelError(f"model {bundle.source}: the metadata gives no {_DIGEST_KEYS[kind]} for {name}, "
                         "so its weights cannot be checked and are refused")
    what = (f"{name} (the archive without its metadata.json)" if kind == "torchscript" and bundle.single_file
            else name)
    raise ModelError(
        f"model {bundle.source}: checksum mismatch, {what} has SHA-256 {actual} but the metadata says "
        f"{own or bundle.sha256}: the weights were changed or damaged and are refused"
    )


def verified_bytes(bundle: ModelBundle) -> bytes:
    """The TorchScript bytes, checked against the metadata (see `verified_network_bytes`)."""
    return verified_network_bytes(bundle, "torchscript")


def _refuse_pickles(bundle: ModelBundle, data: bytes) -> None:
    """A torch.export archive is JSON and raw tensor bytes, except where it stores pickled objects (tensor
    subclasses, custom or opaque constants, the legacy format): those would be unpickled by torch.export.load,
    so such a program is refused. Its sample inputs are always pickled: `export_archive_without_samples`
    drops them before loading."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                name = info.filename.split("/", 1)[-1]
                if name.startswith("data/") and name.endswith("_config.json"):
                    config = json.loads(archive.read(info)).get("config", {})
                    for key, entry in config.items():
                        path = str(entry.get("path_name", ""))
                        if entry.get("use_pickle") or not path.startswith(("weight_", "tensor_")):
                            raise ModelError(
                                f"model {bundle.source}: {EXPORT_IN_FOLDER} stores {key!r} as a pickled object; "
                                "medview never unpickles a model file (export plain tensors, or ship "
                                "model.onnx)")
                elif name.endswith(".pt") and not name.startswith("data/sample_inputs/"):
                    raise ModelError(f"model {bundle.source}: {EXPORT_IN_FOLDER} is in torch's legacy pickled "
                                     "format, which medview does not load (save it again with torch.export.save)")
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise ModelError(f"model {bundle.source}: {EXPORT_IN_FOLDER} is not a torch.export archive "
                         f"({short_reason(exc)})") from None


def export_archive_without_samples(data: bytes) -> bytes:
    """The archive with its pickled sample inputs emptied (an empty file reads as "no sample inputs")."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            sample = info.filename.split("/", 1)[-1].startswith("data/sample_inputs/")
            dst.writestr(info, b"" if sample else src.read(info))
    return out.getvalue()


def verified_onnx_bytes(bundle: ModelBundle) -> bytes | None:
    """models/model.onnx when present, checked against the metadata; None when the bundle has none."""
    return None if bundle.onnx is None else verified_network_bytes(bundle, "onnx")


def load_torchscript(bundle: ModelBundle, device: str = "cpu"):
    """`torch.jit.load` of the verified bytes (the checksum is checked first); ModelError if torch refuses."""
    data = verified_bytes(bundle)
    import torch

    try:
        module = torch.jit.load(io.BytesIO(data), map_location=device)
    except Exception as exc:  # torch raises RuntimeError and friends for a damaged archive
        raise ModelError(f"model {bundle.source}: TorchScript could not be loaded ({exc})") from None
    return module.eval()


def load_export(bundle: ModelBundle, device: str = "cpu"):
    """The torch.export program's module, from the verified bytes without anything pickled; ModelError if
    torch refuses it or this build lacks torch's export stack."""
    data = export_archive_without_samples(verified_network_bytes(bundle, "export"))
    try:
        import torch
        import torch.export

        program = torch.export.load(io.BytesIO(data))
        module = program.module()
    except ImportError as exc:
        raise ModelError(f"model {bundle.source}: {EXPORT_IN_FOLDER} needs torch's export stack, which this "
                         f"build of medview does not include ({exc.name}); use model.onnx or model.ts") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged or foreign program
        raise ModelError(f"model {bundle.source}: {EXPORT_IN_FOLDER} could not be loaded "
                         f"({short_reason(exc)})") from None
    return module.to(device)


def save_single_file(module, metadata: dict[str, Any], path: str | Path) -> str:
    """Save a TorchScript module as one file with `metadata.json` inside; fills in and returns its sha256."""
    import torch

    meta = json.loads(json.dumps(metadata))
    mv = meta.setdefault("medview", {})
    mv.pop("onnx_sha256", None)
    mv["sha256"] = ""
    draft = io.BytesIO()
    torch.jit.save(module, draft, _extra_files={EXTRA_METADATA: json.dumps(meta)})
    mv["sha256"] = digest = payload_sha256(draft.getvalue())  # the payload does not depend on the metadata
    torch.jit.save(module, str(path), _extra_files={EXTRA_METADATA: json.dumps(meta, indent=1)})
    if payload_sha256(Path(path).read_bytes()) != digest:  # pragma: no cover - would be a torch change
        raise ModelError(f"model {path}: TorchScript archive payload is not reproducible")
    return digest
