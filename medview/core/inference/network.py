"""The bundled model's network: a small conv-pool stack ending in global average pooling, so its CAM is free.

The classifier is a 1x1 convolution applied *before* the average pooling. Because both are linear, the mean
of its map equals "global average pooling, then linear" (Zhou et al. 2016, class activation mapping), and the
map itself, returned beside the scores, is the heatmap of where the model looked. Only the training script
and the tests import this module; medview runs the exported TorchScript, never this code.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class CamNet(nn.Module):
    """[N, 1, 256, 256] in 0..1 -> (probabilities [N, K], class activation map [N, K, 16, 16] in logits)."""

    def __init__(self, num_labels: int = 1, width: int = 8) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(1, w, kernel=5, stride=2),          # 128: a strided stem keeps the cost low on CPU
            *_block(w, 2 * w), nn.MaxPool2d(2),         # 64
            *_block(2 * w, 4 * w), nn.MaxPool2d(2),     # 32
            *_block(4 * w, 8 * w), nn.MaxPool2d(2),     # 16
            *_block(8 * w, 8 * w),
        )
        self.classifier = nn.Conv2d(8 * w, num_labels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.classifier(self.features(x))
        logits = cam.mean(dim=(2, 3))
        return torch.sigmoid(logits), cam


def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*_block(cin, cout), *_block(cout, cout))


class CtrSegNet(nn.Module):
    """[N, 1, S, S] in 0..1 -> probabilities [N, 2, S, S] of the heart and the lungs (a small U-Net).

    Why segmentation: the cardiothoracic ratio is a measurement, so the network draws what is measured and
    medview measures it (`core.inference.ctr`), which also shows the reader where the model measured. Four
    conv-pool levels down and bilinear upsampling with skip connections back up, about 0.3 M parameters.
    """

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        w = width
        self.enc = nn.ModuleList([_double(1, w), _double(w, 2 * w), _double(2 * w, 4 * w), _double(4 * w, 8 * w)])
        self.bottom = _double(8 * w, 8 * w)
        self.dec = nn.ModuleList([_double(16 * w, 4 * w), _double(8 * w, 2 * w), _double(4 * w, w),
                                  _double(2 * w, w)])
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Conv2d(w, 2, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for i, block in enumerate(self.dec):
            skip = skips[len(skips) - 1 - i]
            x = torch.nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return torch.sigmoid(self.head(x))
