"""Training and exporting a model bundle (used by scripts/train_ctr_model.py and by the tests' tiny bundles).

`write_bundle` lays out the folder of SPEC section 4 and fills in the checksums; `seed_everything` fixes the
seeds and makes torch deterministic, so the same data gives the same weights (scripts/train_ctr_model.py
trains the bundled model with `ctr_training`).
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medview.core.inference.bundle import (
    EXPORT_IN_FOLDER,
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
    scripted: torch.jit.ScriptModule | None,
    metadata: dict[str, Any],
    folder: str | Path,
    *,
    onnx_from: nn.Module | None = None,
    export_from: nn.Module | None = None,
    readme: str | None = None,
) -> Path:
    """Write `folder/{configs,models,docs}`: model.ts (from `scripted`), model.pt2 (a torch.export program of
    `export_from`) and model.onnx (exported from `onnx_from`), each optional as long as one is written, the
    same network in eval mode; metadata.json with their SHA-256 digests (the first file's as `sha256`), and
    docs/README.md. Network files not asked for are removed."""
    folder = Path(folder)
    for sub in ("configs", "models", "docs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    meta = copy.deepcopy(metadata)
    mv = meta["medview"]
    for key in ("sha256", "pt2_sha256", "onnx_sha256"):
        mv.pop(key, None)
    writers = [
        (TORCHSCRIPT_IN_FOLDER, "sha256", scripted, lambda path: torch.jit.save(scripted, str(path))),
        (EXPORT_IN_FOLDER, "pt2_sha256", export_from, lambda path: export_program(export_from, metadata, path)),
        (ONNX_IN_FOLDER, "onnx_sha256", onnx_from, lambda path: export_onnx(onnx_from, metadata, path)),
    ]
    if all(source is None for _, _, source, _ in writers):
        raise ValueError("write_bundle needs a network to write")
    for name, key, source, write in writers:
        path = folder / name
        if source is None:
            path.unlink(missing_ok=True)
            continue
        write(path)
        mv["sha256" if "sha256" not in mv else key] = file_sha256(path.read_bytes())
    (folder / METADATA_IN_FOLDER).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if readme is not None:
        (folder / README_IN_FOLDER).write_text(readme, encoding="utf-8")
    return folder


def export_program(module: nn.Module, metadata: dict[str, Any], path: Path) -> None:
    """The same network as a torch.export program with a dynamic batch axis, weights as plain tensors."""
    image = metadata["network_data_format"]["inputs"]["image"]
    h, w = image["spatial_shape"]
    example = torch.zeros(2, int(image["num_channels"]), int(h), int(w))
    module = copy.deepcopy(module).eval()
    program = torch.export.export(module, (example,),
                                  dynamic_shapes=({0: torch.export.Dim("n", min=1, max=1024)},))
    torch.export.save(program, str(path))


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
