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
