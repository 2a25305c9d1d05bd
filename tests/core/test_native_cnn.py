"""The engine's own CPU kernels (Winograd convolutions): the same answer as TorchScript, taken only for the
networks they run, checked before use, and the engine falls back to TorchScript when they disagree."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medview.core.inference import native_cnn
from medview.core.inference.bundle import load_bundle, load_torchscript
from medview.core.inference.engine import Engine
from medview.core.inference.native_cnn import NativeCnn, winograd_weights
from medview.core.inference.network import CamNet
from medview.resources import bundled_model_path
from tests.inference_factory import make_bundle


def _cpu_has_avx2_fma() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


# where the kernels can run they must have been built (`pip install -e .` compiles them): a missing build is
# a failure here, not a skip
needs_kernels = pytest.mark.skipif(
    not (platform.system() == "Linux" and platform.machine() == "x86_64" and _cpu_has_avx2_fma()),
    reason="the compiled kernels are for x86-64 CPUs with AVX2 and FMA")


class Plain(nn.Module):
    """A conv-ReLU(-pool) stack with a CAM head, of any of the shapes the kernels take."""

    def __init__(self, cin=1, widths=(8, 16, 16), pools=(True, False), stem=(5, 2), labels=1, sigmoid=True):
        super().__init__()
        k, s, pad = (*stem, stem[0] // 2) if len(stem) == 2 else stem
        layers: list[nn.Module] = [nn.Conv2d(cin, widths[0], k, stride=s, padding=pad), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU()]
        for a, b, pool in zip(widths, widths[1:], pools):
            layers += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], labels, 1)
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.head(self.features(x))
        logits = cam.mean(dim=(2, 3))
        return (torch.sigmoid(logits) if self.sigmoid else logits), cam


def _randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """Weights and batch-norm statistics all random, so a swapped channel or tap cannot go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return net.eval()


def _frozen(net: nn.Module) -> torch.jit.ScriptModule:
    return torch.jit.freeze(torch.jit.script(net))


def _assert_same(native_out, reference_out) -> None:
    assert len(native_out) == len(reference_out) == 2
    for got, want in zip(native_out, reference_out):
        want = want.numpy()
        scale = max(1.0, float(np.abs(want).max()))
        assert got.shape == want.shape
        assert float(np.abs(got - want).max()) <= 1e-5 * scale


def test_winograd_weights_give_the_direct_convolution():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((5, 3, 3, 3))      # [cout, cin, 3, 3]
    d = rng.standard_normal((3, 4, 4))         # one 4x4 tile of 3 channels
    bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)
    at = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)
    u = winograd_weights(g).reshape(4, 4, 3, 5).astype(np.float64)  # [4, 4, cin, cout]
    v = np.einsum("ik,ckl,jl->ijc", bt, d, bt)
    y = np.einsum("ri,ijo,sj->ors", at, np.einsum("ijc,ijco->ijo", v, u), at)
    direct = np.array([[[np.sum(d[:, a:a + 3, b:b + 3] * g[o]) for b in range(2)] for a in range(2)] for o in range(5)])
    np.testing.assert_allclose(y, direct, rtol=1e-5, atol=1e-5)


@needs_kernels
def test_the_kernels_are_built_here():
    lib, why = native_cnn.library()
    assert lib is not None, why


@needs_kernels
@pytest.mark.parametrize("net,shape", [
    (CamNet(1), (1, 256, 256)),                                                    # the bundled network
    (CamNet(2, width=16), (1, 64, 96)),                                            # two findings, wider, oblong
    (Plain(cin=3, widths=(8, 24, 16), pools=(False, True)), (3, 40, 56)),        # colour; pooling last
    (Plain(stem=(3, 1), widths=(16, 8), pools=(True,), sigmoid=False), (1, 30, 34)),  # stride 1; logits out
    (Plain(stem=(7, 2), widths=(8, 8, 8, 8), pools=(True, True, True)), (1, 80, 80)),  # blocks of tiles cut short
    (Plain(stem=(4, 2, 1), widths=(8, 16)), (1, 36, 40)),                        # even stem kernel
    (Plain(stem=(3, 2, 0), widths=(8, 8)), (1, 33, 37)),                         # no padding, odd input
    (Plain(stem=(3, 1, 2), widths=(8, 8)), (1, 26, 30)),                         # padding wider than the kernel
])
def test_same_answer_as_torchscript(net, shape):
    module = _frozen(_randomised(net))
    native, why = NativeCnn.from_frozen(module, shape, max_threads=2)
    assert native is not None, why
    x = torch.rand((5, *shape), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = module(x)
    for threads in (1, 2):  # 5 images over 2 threads: uneven shares
        _assert_same(native(x.numpy(), threads), expected)
    one = native(x[3:4].numpy(), 1)
    _assert_same(one, [t[3:4] for t in expected])  # an image's answer does not depend on its batch


class Grouped(Plain):
    def __init__(self):
        super().__init__()
        self.features[3] = nn.Conv2d(8, 16, 3, padding=1, groups=2)


class AveragePooled(Plain):
    def __init__(self):
        super().__init__()
        self.features[6] = nn.AvgPool2d(2)


class WideMiddle(Plain):
    def __init__(self):
        super().__init__()
        self.features[3] = nn.Conv2d(8, 16, 5, padding=2)


class NoHeatmap(Plain):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.features(x)).mean(dim=(2, 3)))


class OddChannels(Plain):
    def __init__(self):
        super().__init__(widths=(8, 12, 16))


@needs_kernels
@pytest.mark.parametrize("net,why", [
    (Grouped(), "grouped"),
    (AveragePooled(), "expected a convolution"),
    (WideMiddle(), "not 3x3"),
    (NoHeatmap(), "not returned beside its mean"),
    (OddChannels(), "do not run these layer shapes"),
])
def test_other_networks_are_left_to_torchscript(net, why):
    native, reason = NativeCnn.from_frozen(_frozen(_randomised(net)), (1, 32, 32), max_threads=1)
    assert native is None and why in reason


@needs_kernels
def test_the_bundled_model_runs_on_them_with_the_same_scores(caplog):
    bundle = load_bundle(bundled_model_path())
    engine = Engine(bundle, device="cpu")
    engine.warm_up()
    assert engine._native is not None  # kept after the warm-up comparison
    reference = load_torchscript(bundle)
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (300, 280), dtype=np.uint8) for _ in range(6)]
    x = engine.prepare(images)
    scores, heatmaps, _masks = engine.forward(x)
    with torch.inference_mode():
        want_scores, want_maps = reference(x)
    np.testing.assert_allclose(scores, want_scores.numpy(), atol=1e-5)
    np.testing.assert_allclose(heatmaps, want_maps.numpy(), atol=1e-5 * float(want_maps.abs().max()))


@needs_kernels
def test_kernels_that_disagree_are_dropped_for_torchscript(tmp_path, monkeypatch, caplog):
    torch.manual_seed(3)
    bundle = load_bundle(make_bundle(tmp_path / "m", CamNet(1), size=(64, 64)))
    real = NativeCnn.__call__

    def off_by_a_little(self, x, threads=1):
        scores, cam = real(self, x, threads)
        return [scores, cam + 1e-2]

    monkeypatch.setattr(NativeCnn, "__call__", off_by_a_little)
    engine = Engine(bundle, device="cpu")
    assert engine._native is not None
    (pred,) = engine.predict_images([np.full((64, 64), 128, np.uint8)])
    assert engine._native is None and engine._fused
    assert "own kernels are not used (its output differs from the plain module's" in caplog.text
    plain = Engine(bundle, device="cpu", optimize=False).predict_images([np.full((64, 64), 128, np.uint8)])[0]
    assert pred.scores["cardiomegaly"] == pytest.approx(plain.scores["cardiomegaly"], abs=1e-5)


def test_without_the_compiled_kernels_the_engine_runs_torchscript(tmp_path, monkeypatch):
    monkeypatch.setattr(native_cnn, "_library", None)
    monkeypatch.setattr(native_cnn, "_library_reason", f"{native_cnn.NOT_INSTALLED} (test)")
    bundle = load_bundle(make_bundle(tmp_path / "m", CamNet(1), size=(64, 64)))
    engine = Engine(bundle, device="cpu")
    (pred,) = engine.predict_images([np.full((64, 64), 90, np.uint8)])
    assert engine._native is None and engine._fused
    plain = Engine(bundle, device="cpu", optimize=False).predict_images([np.full((64, 64), 90, np.uint8)])[0]
    assert pred.scores["cardiomegaly"] == pytest.approx(plain.scores["cardiomegaly"], abs=1e-5)


@needs_kernels
def test_wrong_input_shape_is_refused():
    native, _ = NativeCnn.from_frozen(_frozen(_randomised(CamNet(1))), (1, 64, 64), max_threads=1)
    with pytest.raises(ValueError, match="expected"):
        native(np.zeros((1, 1, 32, 32), np.float32))



class ListStride(nn.Module):
    """Valid TorchScript with one-element stride and padding lists, which torch broadcasts."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 1, 3, 3))
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.head(F.relu(F.conv2d(x, self.w, None, [1], [1])))
        return torch.sigmoid(cam.mean(dim=(2, 3))), cam


@needs_kernels
def test_a_graph_the_reader_did_not_foresee_is_left_to_torchscript():
    native, reason = NativeCnn.from_frozen(_frozen(ListStride().eval()), (1, 32, 32), max_threads=1)
    assert native is None and reason


@needs_kernels
@pytest.mark.parametrize("shape", [(1, 2, 2), (1, 3, 40), (1, 30, 30)])
def test_shapes_the_kernels_cannot_run_are_refused(shape):
    """Too small for the stem; too narrow for a 2x2 tile; 15x15 after the first pooling (odd)."""
    native, reason = NativeCnn.from_frozen(_frozen(_randomised(CamNet(1))), shape, max_threads=1)
    assert native is None and "do not run these layer shapes" in reason


@needs_kernels
def test_nan_stays_nan_as_in_torch():
    module = _frozen(_randomised(CamNet(1)))
    native, _ = NativeCnn.from_frozen(module, (1, 64, 64), max_threads=1)
    x = torch.rand(2, 1, 64, 64)
    x[1, 0, 20, 30] = float("nan")
    with torch.inference_mode():
        want = module(x)[0].numpy()
    got = native(x.numpy())[0]
    assert np.isnan(want[1]).all() and np.isnan(got[1]).all()
    assert np.isfinite(got[0]).all() and abs(float(got[0, 0] - want[0, 0])) < 1e-5


@needs_kernels
def test_kernels_that_fail_later_hand_over_to_torchscript(tmp_path, monkeypatch, caplog):
    torch.manual_seed(4)
    bundle = load_bundle(make_bundle(tmp_path / "m", CamNet(1), size=(64, 64)))
    engine = Engine(bundle, device="cpu")
    engine.warm_up()
    assert engine._native is not None

    def out_of_memory(self, x, threads=1):
        raise RuntimeError("the compiled kernels failed")

    monkeypatch.setattr(NativeCnn, "__call__", out_of_memory)
    image = np.full((64, 64), 150, np.uint8)
    (pred,) = engine.predict_images([image])
    assert engine._native is None and "running TorchScript from now on" in caplog.text
    plain = Engine(bundle, device="cpu", optimize=False).predict_images([image])[0]
    assert pred.scores["cardiomegaly"] == pytest.approx(plain.scores["cardiomegaly"], abs=1e-5)
