"""Tiny TorchScript networks and model bundles built to order for the inference tests.

`BrightNet` scores an image by its mean brightness (so a test knows which image must score higher) and
returns the brightness map as its CAM; the broken variants exercise the engine's refusals.
`count_pixel_reads` checks that scoring reads a multi-frame file once, not once per frame.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from medview.core.inference.training import bundle_metadata, write_bundle


class BrightNet(nn.Module):
    """scores [N, K] = sigmoid(gain * (mean - 0.5)) per label; heatmap [N, K, 8, 8] = pooled brightness."""

    def __init__(self, labels: int = 1, gain: float = 8.0) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(8)
        self.head = nn.Conv2d(1, labels, 1)
        with torch.no_grad():
            self.head.weight.fill_(gain)
            self.head.bias.fill_(-gain / 2)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(x[:, :1]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.cam(x)
        return torch.sigmoid(cam.mean(dim=(2, 3))), cam


class NaNNet(BrightNet):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.cam(x)
        return torch.sigmoid(cam.mean(dim=(2, 3))) * float("nan"), cam


class WideNet(BrightNet):
    """One score too many for its channel_def."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.cam(x)
        scores = torch.sigmoid(cam.mean(dim=(2, 3)))
        return torch.cat([scores, scores], dim=1), cam


class LogitNet(BrightNet):
    """Returns logits (outside 0..1), so its metadata must say "sigmoid"."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.cam(x)
        return cam.mean(dim=(2, 3)) * 10.0 + 5.0, cam


def make_bundle(
    folder: Path,
    net: nn.Module | None = None,
    *,
    labels: tuple[str, ...] = ("cardiomegaly",),
    modalities: tuple[str, ...] = ("CR", "DX"),
    size: tuple[int, int] = (32, 32),
    thresholds: dict[str, float] | None = None,
    window="dicom",
    scores: str = "probabilities",
    onnx: bool = False,
    name: str = "tiny",
    version: str = "0.1",
    formats: tuple[str, ...] = ("torchscript",),
) -> Path:
    """A bundle folder with `net` (default BrightNet) in `formats` ("torchscript", "export", "onnx"; `onnx=True`
    adds "onnx") and consistent metadata and checksums."""
    net = (net or BrightNet(len(labels))).eval()
    meta = bundle_metadata(
        name=name, version=version, description="test network; research use only, not for diagnosis",
        labels=list(labels), modalities=list(modalities), size=size,
        thresholds=thresholds or {label: 0.5 for label in labels}, window=window, scores=scores,
    )
    formats = (*formats, "onnx") if onnx else formats
    return write_bundle(torch.jit.script(net) if "torchscript" in formats else None, meta, folder,
                        onnx_from=net if "onnx" in formats else None,
                        export_from=net if "export" in formats else None,
                        readme="# tiny\nResearch use only, not for diagnosis.\n")


def count_pixel_reads(monkeypatch) -> list:
    """From now on, the file of every pydicom read that includes pixel data (header-only reads, as the scan's,
    are not listed), in order."""
    import pydicom

    reads = []
    real = pydicom.dcmread

    def counted(fp, *args, **kwargs):
        if not kwargs.get("stop_before_pixels"):
            reads.append(getattr(fp, "name", fp))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counted)
    return reads
