"""The exact graph rewrites: same answer as the plain network, applied only where they are exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medview.core.inference.bundle import load_bundle
from medview.core.inference.engine import Engine
from medview.core.inference.network import CamNet
from medview.core.inference.optimise import split_column_phases
from tests.inference_factory import make_bundle


class Stem(nn.Module):
    def __init__(self, cin: int, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(cin, 6, kernel, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = F.relu(self.conv(x))
        return torch.sigmoid(y.mean(dim=(1, 2, 3)))[:, None], y


class TwiceUsed(Stem):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = F.relu(self.conv(x)) + x.mean()
        return torch.sigmoid(y.mean(dim=(1, 2, 3)))[:, None], y


def _frozen(net: nn.Module) -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    for p in net.parameters():
        nn.init.normal_(p)
    return torch.jit.freeze(torch.jit.script(net.eval()))


@pytest.mark.parametrize("kernel,stride,padding", [
    ((5, 5), (2, 2), (2, 2)),   # the bundled model's stem
    ((3, 3), (2, 2), (1, 1)),
    ((4, 4), (2, 2), (1, 1)),   # even kernel
    ((7, 7), (2, 2), (3, 3)),
    ((3, 5), (1, 2), (1, 2)),   # vertical stride 1
    ((1, 2), (2, 2), (0, 0)),   # no padding, a tap in each phase
])
def test_split_column_phases_keeps_the_answer(kernel, stride, padding):
    plain = _frozen(Stem(1, kernel, stride, padding))
    rewritten = _frozen(Stem(1, kernel, stride, padding))
    assert split_column_phases(rewritten, (40, 48))
    assert "aten::permute" in str(rewritten.graph)
    x = torch.rand(3, 1, 40, 48)
    with torch.inference_mode():
        for a, b in zip(plain(x), rewritten(x)):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("net,size", [
    (Stem(3, (5, 5), (2, 2), (2, 2)), (40, 48)),   # colour input: columns are not contiguous per channel
    (Stem(1, (3, 3), (1, 1), (1, 1)), (40, 48)),   # no horizontal stride to split
    (Stem(1, (5, 5), (2, 2), (2, 2)), (40, 47)),   # odd width
    (TwiceUsed(1, (5, 5), (2, 2), (2, 2)), (40, 48)),  # the image feeds more than the convolution
])
def test_split_column_phases_leaves_other_graphs_alone(net, size):
    module = _frozen(net)
    before = str(module.graph)
    assert not split_column_phases(module, size)
    assert str(module.graph) == before


@pytest.mark.slow
def test_engine_runs_the_rewritten_bundled_network_like_the_plain_one(tmp_path):
    torch.manual_seed(5)
    bundle = load_bundle(make_bundle(tmp_path / "m", CamNet(1), size=(256, 256)))
    optimised = Engine(bundle, device="cpu")
    assert "aten::permute" in str(optimised._module.graph)  # the stem was rewritten
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (300, 260), dtype=np.uint8) for _ in range(5)]
    plain = Engine(bundle, device="cpu", optimize=False).predict_images(images)
    for a, b in zip(plain, optimised.predict_images(images)):
        assert b.scores["cardiomegaly"] == pytest.approx(a.scores["cardiomegaly"], abs=1e-5)
        assert np.abs(a.heatmap - b.heatmap).max() < 1e-4
    assert optimised._fused  # the warm-up check kept the optimised graph


def test_an_optimised_graph_that_fails_falls_back_to_the_plain_module(tmp_path, monkeypatch, caplog):
    bundle = load_bundle(make_bundle(tmp_path / "m", CamNet(1), size=(64, 64)))

    def break_it(module, size):
        conv = next(n for n in module.graph.nodes() if n.kind() == "aten::conv2d")
        with module.graph.insert_point_guard(conv):  # a width that cannot be: fails when run
            conv.replaceInput(1, module.graph.insertConstant(torch.zeros(8, 3, 5, 5)))
        return True

    monkeypatch.setattr("medview.core.inference.engine.split_column_phases", break_it)
    caplog.set_level("INFO", logger="medview.core.inference.engine")  # a graph it cannot run: an info line
    engine = Engine(bundle, device="cpu")
    (pred,) = engine.predict_images([np.full((64, 64), 128, np.uint8)])
    assert 0.0 <= pred.scores["cardiomegaly"] <= 1.0
    assert not engine._fused and "running it unoptimised" in caplog.text
