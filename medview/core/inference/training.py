"""Training and exporting a model bundle (used by scripts/train_model.py and by the tests' tiny bundles).

`write_bundle` lays out the folder of SPEC section 4 and fills in the checksums; `train` fits a network on
images already pre-processed by `engine.to_batch`, the very function inference uses. Seeds are fixed and
torch runs deterministically, so the same data gives the same weights.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from medview.core.inference.bundle import (
    METADATA_IN_FOLDER,
    ONNX_IN_FOLDER,
    README_IN_FOLDER,
    TORCHSCRIPT_IN_FOLDER,
    file_sha256,
)

log = logging.getLogger(__name__)


def bundle_metadata(
    *,
    name: str,
    version: str,
    description: str,
    labels: list[str],
    modalities: list[str],
    size: tuple[int, int],
    thresholds: dict[str, float],
    window: Any = "dicom",
    heatmap: bool = True,
    channels: int = 1,
    scores: str = "probabilities",
) -> dict[str, Any]:
    """MONAI bundle metadata with network_data_format, plus the "medview" object (sha256 filled by writing)."""
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/"
                  "0.8.1/meta_schema_20220324.json",
        "version": version,
        "changelog": {version: "first release"},
        "monai_version": "n/a (plain TorchScript)",
        "pytorch_version": torch.__version__.split("+")[0],
        "name": name,
        "task": "image classification with class activation map",
        "description": description,
        "authors": "medview",
        "copyright": "medview contributors",
        "intended_use": "research use only, not for diagnosis",
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image", "format": "magnitude", "modality": "/".join(modalities),
                    "num_channels": channels, "spatial_shape": list(size), "dtype": "float32",
                    "value_range": [0, 1], "is_patch_data": False,
                    "channel_def": {"0": "image"},
                }
            },
            "outputs": {
                "pred": {
                    "type": "probabilities", "format": "classes", "num_channels": len(labels),
                    "spatial_shape": [len(labels)], "dtype": "float32", "value_range": [0, 1],
                    "is_onehot": False, "channel_def": {str(i): label for i, label in enumerate(labels)},
                }
            },
        },
        "medview": {
            "modalities": modalities,
            "preprocess": {"window": window, "resize": list(size)},
            "outputs": {"scores": scores, "heatmap": heatmap},
            "thresholds": thresholds,
            "sha256": "",
        },
    }


def write_bundle(
    scripted: torch.jit.ScriptModule,
    metadata: dict[str, Any],
    folder: str | Path,
    *,
    onnx_from: nn.Module | None = None,
    readme: str | None = None,
) -> Path:
    """Write `folder/{configs,models,docs}`: model.ts, optional model.onnx (exported from `onnx_from`, the
    same network in eval mode), metadata.json with their SHA-256 digests, and docs/README.md."""
    folder = Path(folder)
    for sub in ("configs", "models", "docs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    meta = copy.deepcopy(metadata)
    ts_path = folder / TORCHSCRIPT_IN_FOLDER
    torch.jit.save(scripted, str(ts_path))
    meta["medview"]["sha256"] = file_sha256(ts_path.read_bytes())
    onnx_path = folder / ONNX_IN_FOLDER
    if onnx_from is not None:
        export_onnx(onnx_from, metadata, onnx_path)
        meta["medview"]["onnx_sha256"] = file_sha256(onnx_path.read_bytes())
    elif onnx_path.exists():
        onnx_path.unlink()
    (folder / METADATA_IN_FOLDER).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if readme is not None:
        (folder / README_IN_FOLDER).write_text(readme, encoding="utf-8")
    return folder


def export_onnx(module: nn.Module, metadata: dict[str, Any], path: Path) -> None:
    """The same network as ONNX (TorchScript exporter, opset 17) with a dynamic batch axis."""
    image = metadata["network_data_format"]["inputs"]["image"]
    outputs = ["masks"] if metadata["medview"].get("measurement") else ["scores", "heatmap"]
    h, w = image["spatial_shape"]
    example = torch.zeros(1, int(image["num_channels"]), int(h), int(w))
    module = copy.deepcopy(module).eval()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated, but it handles this plain CNN without onnxscript's extras
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module, (example,), str(path), dynamo=False, opset_version=17,
            input_names=["image"], output_names=outputs,
            dynamic_axes={"image": {0: "n"}, **{name: {0: "n"} for name in outputs}},
        )


def seed_everything(seed: int) -> torch.Generator:
    """Fixed seeds and deterministic kernels: the same data gives the same weights."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 12,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    progress: Callable[[str], None] | None = None,
) -> nn.Module:
    """Fit `model` ([N, C, H, W] float inputs, [N, K] 0/1 targets) with AdamW, BCE and a cosine schedule."""
    gen = seed_everything(seed)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    loss_fn = nn.BCELoss()
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb, gen)
            scores, _cam = model(xb)
            loss = loss_fn(scores.clamp(1e-6, 1 - 1e-6), yb)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
        if progress:
            progress(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f} "
                     f"({time.perf_counter() - started:.0f} s)")
    return model.eval()


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Scores [N, K] of an eval-mode network."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            out.append(model(x[start:start + batch_size])[0].numpy())
    return np.concatenate(out)


# ------------------------------------------------------------------------------------------------ data

SYNTHETIC_PATIENT = {"name": "PHANTOM^TRAINING", "id": "PHANTOM", "birth_date": "19700101", "sex": "O",
                     "age": "050Y", "kvp": 120, "exposure_ms": 10, "ma": 200}


def synthetic_radiographs(
    n: int,
    seed: int,
    folder: str | Path,
    *,
    window: Any = "dicom",
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Cases 0..n-1 of `medview demo-data --seed seed` (same labels, CTRs, CR/DX mix and pixels), each written
    as its Part-10 file into `folder`, read back and rendered through the display pipeline exactly as
    inference does: (uint8 images, labels, measured CTRs).

    Training, validation and the tests use different seeds, so no validation image was seen in training.
    """
    from medview.core.demo import case_spec, radiograph_for_case
    from medview.core.demo.writer import demo_uid, write_radiograph
    from medview.core.dicom import pixels
    from medview.core.inference.engine import frame_for_model

    folder = Path(folder)
    images, labels, ctrs = [], [], []
    for i in range(n):
        spec = case_spec(seed, i)
        arr, params = radiograph_for_case(seed, i)
        study = {"uid": demo_uid("train", seed, i), "date": "20240101", "time": "120000", "id": str(i),
                 "accession": f"T{i}", "description": "CHEST PA"}
        path = write_radiograph(
            folder / f"{seed}_{i}.dcm", arr, modality=spec.modality, pixel_spacing=params["pixel_spacing"],
            patient=SYNTHETIC_PATIENT, study=study, series_uid=demo_uid("train", seed, i, "series"),
            sop_uid=demo_uid("train", seed, i, "sop"),
        )
        images.append(frame_for_model(window, pixels.read_dataset(path)))
        labels.append(params["label"])
        ctrs.append(params["ctr"])
        path.unlink()
    return images, np.asarray(labels, dtype=np.int64), np.asarray(ctrs, dtype=np.float64)
