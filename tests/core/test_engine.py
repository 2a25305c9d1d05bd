"""The engine: device choice, pre-processing through the display pipeline, batching, refusals, backends."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medview.core.dicom import pixels
from medview.core.errors import ModelError, UsageError
from medview.core.inference import engine as engine_module
from medview.core.inference.bundle import load_bundle
from medview.core.inference.engine import Engine, block_mean, frame_for_model, select_device, to_batch
from medview.core.inference.network import CamNet
from tests.factories import write_image
from tests.inference_factory import BrightNet, LogitNet, NaNNet, WideNet, make_bundle


def _ramp(rows=64, cols=48, lo=100, hi=3000):
    return np.linspace(lo, hi, rows * cols).reshape(rows, cols).astype(np.uint16)


def test_device_selection(monkeypatch):
    monkeypatch.setattr(engine_module, "cuda_available", lambda: False)
    monkeypatch.setattr(engine_module, "mps_available", lambda: False)
    assert select_device("auto") == "cpu" and select_device(None) == "cpu" and select_device("cpu") == "cpu"
    with pytest.raises(UsageError, match="no CUDA GPU"):
        select_device("cuda")
    with pytest.raises(UsageError, match="MPS"):
        select_device("mps")
    with pytest.raises(UsageError, match="unknown device"):
        select_device("tpu")
    monkeypatch.setattr(engine_module, "mps_available", lambda: True)
    assert select_device("auto") == "mps"
    monkeypatch.setattr(engine_module, "cuda_available", lambda: True)
    assert select_device("auto") == "cuda"  # CUDA first, then MPS


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "m", CamNet(1)))
    images = [np.random.default_rng(i).integers(0, 256, (300, 280), dtype=np.uint8) for i in range(5)]
    cpu = Engine(bundle, device="cpu").predict_images(images)
    gpu = Engine(bundle, device="cuda").predict_images(images)
    assert Engine(bundle, device="auto").device == "cuda"
    for a, b in zip(cpu, gpu):
        assert a.scores["cardiomegaly"] == pytest.approx(b.scores["cardiomegaly"], abs=1e-4)


def test_preprocessing_is_the_display_pipeline(tmp_path):
    """"dicom" = exactly what the viewer shows, so MONOCHROME1 CR and MONOCHROME2 DX look alike."""
    bundle = load_bundle(make_bundle(tmp_path / "m"))
    stored = _ramp()
    dx = write_image(tmp_path / "dx.dcm", modality="DX", pixels=stored, bits_stored=12, window=(1550, 2900))
    cr = write_image(tmp_path / "cr.dcm", modality="CR", pixels=(4095 - stored).astype(np.uint16),
                     bits_stored=12, window=(4095 - 1550, 2900), photometric="MONOCHROME1")
    ds_dx, ds_cr = pixels.read_dataset(dx), pixels.read_dataset(cr)
    assert np.array_equal(frame_for_model(bundle.window, ds_dx), pixels.display_frame(ds_dx))
    a, b = frame_for_model(bundle.window, ds_dx), frame_for_model(bundle.window, ds_cr)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    engine = Engine(bundle, device="cpu")
    p_dx, p_cr = engine.predict_datasets([(ds_dx, 0), (ds_cr, 0)])
    assert p_dx.scores["cardiomegaly"] == pytest.approx(p_cr.scores["cardiomegaly"], abs=1e-3)


def test_wrong_modality_is_refused(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "m"))
    ct = pixels.read_dataset(write_image(tmp_path / "ct.dcm", modality="CT"))
    with pytest.raises(ModelError, match="applies to CR, DX images, not CT"):
        Engine(bundle, device="cpu").predict_datasets([(ct, 0)])


def test_explicit_and_minmax_windows(tmp_path):
    stored = _ramp(lo=1000, hi=2000)
    path = write_image(tmp_path / "dx.dcm", modality="DX", pixels=stored, bits_stored=12, window=(500, 100))
    ds = pixels.read_dataset(path)
    minmax = load_bundle(make_bundle(tmp_path / "a", window="minmax"))
    img = frame_for_model(minmax.window, ds)
    assert img.min() == 0 and img.max() == 255  # spans the values, whatever the file's window says
    assert frame_for_model("dicom", ds).min() == 255  # file window: all white
    fixed = load_bundle(make_bundle(tmp_path / "b", window=[1500, 1000]))
    assert np.array_equal(frame_for_model(fixed.window, ds), pixels.display_frame(ds, window=pixels.Window(1500, 1000)))


def test_to_batch_sizes_channels_and_range():
    images = [np.full((40, 30), 255, np.uint8), np.zeros((50, 60), np.uint8), np.full((40, 30), 51, np.uint8),
              np.dstack([np.full((20, 20), 255, np.uint8), np.zeros((20, 20), np.uint8),
                         np.zeros((20, 20), np.uint8)])]
    x = to_batch(images, (16, 24))
    assert x.shape == (4, 1, 16, 24) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.ones(1)) and torch.allclose(x[1], torch.zeros(1))
    assert torch.allclose(x[2], torch.full((1,), 0.2))
    assert torch.allclose(x[3], torch.full((1,), 0.299), atol=1e-3)  # luminance of pure red
    x3 = to_batch(images[:1], (8, 8), channels=3, value_range=(-1.0, 1.0))
    assert x3.shape == (1, 3, 8, 8) and torch.allclose(x3, torch.ones(1))


def test_large_images_are_shrunk_in_whole_steps_to_nearly_the_same_picture():
    """A radiograph many times the network's size is block-averaged before the smooth resize: within a few
    grey levels of resizing it in one antialiased step, the same for odd sizes (a partial last block), and
    a bright square stays where it is."""
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    for shape in ((2500, 2048), (1001, 777), (300, 260)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        rows, cols = shape
        image[rows // 4: rows // 2, cols // 2: 3 * cols // 4] = 255
        direct = F.interpolate(torch.from_numpy(image).float()[None, None] / 255, size=(128, 128),
                               mode="bilinear", align_corners=False, antialias=True)
        stepped = to_batch([image], (128, 128))
        assert float((stepped - direct).abs().mean()) < 2 / 255, shape
        assert float((stepped - direct).abs().max()) < 12 / 255, shape
        bright = (stepped[0, 0] > 0.9).nonzero().float().mean(0)
        assert torch.allclose(bright, torch.tensor([47.5, 79.5]), atol=1.0), shape


def test_block_mean_is_torchs_block_average_to_the_bit():
    """The shrink on the bytes gives exactly avg_pool2d's numbers on the image as floats: whole and partial
    last blocks, steps whose block sums need more than 16 bits, and an image smaller than one block."""
    import torch.nn.functional as F

    rng = np.random.default_rng(2)
    for shape, step in (((1001, 777), 3), ((1280, 1174), 4), ((300, 260), 2), ((999, 1003), 17), ((700, 650), 40),
                        ((30, 50), 40)):
        for image in (rng.integers(0, 256, shape, dtype=np.uint8), np.full(shape, 255, np.uint8)):
            expected = F.avg_pool2d(torch.from_numpy(image).float()[None, None], step, ceil_mode=True)[0, 0]
            assert np.array_equal(block_mean(image, step), expected.numpy()), (shape, step)


def test_batching_keeps_order_and_results(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "m", thresholds={"cardiomegaly": 0.5}))
    levels = [10, 250, 120, 200, 30, 180, 90]
    images = [np.full((30 + i, 40), v, np.uint8) for i, v in enumerate(levels)]
    engine = Engine(bundle, device="cpu", batch_size=3)
    small = engine.predict_images(images)
    large = Engine(bundle, device="cpu", batch_size=16).predict_images(images)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one image per network call instead of one per intra-op thread
    try:
        single = [p.scores["cardiomegaly"] for p in engine.predict_images(images)]
    finally:
        torch.set_num_threads(threads)
    assert single == pytest.approx([p.scores["cardiomegaly"] for p in small], abs=1e-6)
    scores = [p.scores["cardiomegaly"] for p in small]
    assert np.argsort(scores).tolist() == np.argsort(levels).tolist()
    assert scores == pytest.approx([p.scores["cardiomegaly"] for p in large], abs=1e-6)
    assert [p.flagged for p in small] == [["cardiomegaly"] if v / 255 >= 0.5 else [] for v in levels]
    assert all(p.model == "tiny@0.1" for p in small)


def test_heatmap_shows_where_the_bright_region_is(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "m"))
    img = np.zeros((64, 64), np.uint8)
    img[40:64, 0:16] = 255  # bottom-left
    (pred,) = Engine(bundle, device="cpu").predict_images([img])
    assert pred.heatmap.shape == (1, 8, 8) and pred.heatmap.min() == 0.0 and pred.heatmap.max() == 1.0
    row, col = np.unravel_index(np.argmax(pred.heatmap[0]), (8, 8))
    assert row >= 5 and col <= 1


class FlatHeatmapNet(BrightNet):
    """A heatmap without its finding axis: [N, h, w]."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.cam(x)
        return torch.sigmoid(cam.mean(dim=(2, 3))), cam[:, 0]


class NoHeatmapNet(BrightNet):
    """Scores only, while the metadata promises a heatmap."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.cam(x).mean(dim=(2, 3)))


@pytest.mark.parametrize(
    "net, scores, words",
    [
        (NaNNet(), "probabilities", "NaN"),
        (WideNet(), "probabilities", "expected [1, 1]"),
        (LogitNet(), "probabilities", "outside 0..1"),
        (FlatHeatmapNet(), "probabilities", "heatmap has shape [1, 8, 8], expected [1, 1 or 1, h, w]"),
        (NoHeatmapNet(), "probabilities", "heatmap is true but the network returns no heatmap"),
    ],
)
def test_broken_networks_are_refused_at_warm_up(tmp_path, net, scores, words):
    bundle = load_bundle(make_bundle(tmp_path / "m", net, scores=scores))
    engine = Engine(bundle, device="cpu")
    with pytest.raises(ModelError, match="model .* ") as err:
        engine.warm_up()
    assert words in str(err.value) and str(bundle.source) in str(err.value)


@pytest.mark.parametrize("case", ["optimised kept", "optimised fails", "not optimised"])
def test_warm_up_gives_the_module_in_use_its_passes_and_no_more(tmp_path, monkeypatch, case):
    """The profiling executor compiles on the second pass, so the module that will infer must have run
    WARM_UP_PASSES times on the warm-up shape (_check_optimised's runs count); beyond those, only the checked
    blank pass: each extra pass costs a batch's time."""
    bundle = load_bundle(make_bundle(tmp_path / "m"))
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # two images per fused call: the plain module's 1-image check is told apart
    try:
        engine = Engine(bundle, device="cpu", optimize=case != "not optimised")
        optimised, shape = engine._module, (engine._chunk() or 1, 1, 32, 32)
        runs = []
        real = engine_module._run

        def counted(module, x, **kwargs):
            runs.append((module, tuple(x.shape)))
            if case == "optimised fails" and module is optimised:
                raise RuntimeError("an optimiser's limit")
            return real(module, x, **kwargs)

        monkeypatch.setattr(engine_module, "_run", counted)
        engine.warm_up()
    finally:
        torch.set_num_threads(before)
    in_use = sum(1 for module, x_shape in runs if module is engine._module and x_shape == shape)
    passes = engine_module.WARM_UP_PASSES
    assert in_use == {"optimised kept": passes + 1, "optimised fails": passes, "not optimised": passes}[case]
    assert (engine._module is optimised) == (case != "optimised fails")


def test_logits_declared_as_sigmoid(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "m", LogitNet(), scores="sigmoid"))
    (pred,) = Engine(bundle, device="cpu").predict_images([np.full((10, 10), 255, np.uint8)])
    expected = 1 / (1 + np.exp(-(8.0 * 0.5 * 10 + 5)))  # cam = 8 * (1 - 0.5)
    assert pred.scores["cardiomegaly"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_optimised_torchscript_and_onnxruntime_agree(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(3)
    net = CamNet(1).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so freezing really folds something
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    bundle = load_bundle(make_bundle(tmp_path / "m", net, size=(256, 256), onnx=True))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (300, 260), dtype=np.uint8) for _ in range(4)]
    ref = Engine(bundle, device="cpu", optimize=False).predict_images(images)
    for other in (Engine(bundle, device="cpu", optimize=True), Engine(bundle, device="cpu", backend="onnxruntime")):
        for a, b in zip(ref, other.predict_images(images)):
            assert a.scores["cardiomegaly"] == pytest.approx(b.scores["cardiomegaly"], abs=1e-4)
            assert np.abs(a.heatmap - b.heatmap).max() < 1e-3


def test_onnxruntime_splits_a_batch_over_concurrent_calls_with_the_same_answers(tmp_path):
    """On the CPU an engine built in a thread with several intra-op threads runs a batch as that many
    single-threaded ONNX Runtime calls at once: every image's scores and heatmap as from one call."""
    pytest.importorskip("onnxruntime")
    bundle = load_bundle(make_bundle(tmp_path / "m", CamNet(1).eval(), size=(64, 64), onnx=True))
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (80, 70), dtype=np.uint8) for _ in range(7)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = Engine(bundle, device="cpu", backend="onnxruntime", batch_size=7)
        torch.set_num_threads(3)
        split = Engine(bundle, device="cpu", backend="onnxruntime", batch_size=7)
    finally:
        torch.set_num_threads(threads)
    split.warm_up()
    calls = []
    run = split._session.run
    split._session.run = lambda names, feed: calls.append(len(next(iter(feed.values())))) or run(names, feed)
    for a, b in zip(single.predict_images(images), split.predict_images(images)):
        assert a.scores == b.scores and np.array_equal(a.heatmap, b.heatmap)
    assert sorted(calls) == [2, 2, 3]


def test_onnxruntime_needs_the_onnx_file(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "m"))
    with pytest.raises(ModelError, match="no models/model.onnx"):
        Engine(bundle, device="cpu", backend="onnxruntime")


def test_onnx_weights_are_checked_like_torchscript_weights(tmp_path):
    """models/model.onnx is used only against the metadata's onnx_sha256: a changed file, or one the metadata
    gives no checksum for, is refused by name (never run unchecked)."""
    pytest.importorskip("onnxruntime")
    folder = make_bundle(tmp_path / "m", CamNet(1).eval(), size=(64, 64), onnx=True)
    Engine(load_bundle(folder), device="cpu", backend="onnxruntime")  # as written: accepted
    onnx = folder / "models" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch, models/model.onnx"):
        Engine(load_bundle(folder), device="cpu", backend="onnxruntime")
    meta_file = folder / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    del meta["medview"]["onnx_sha256"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="no onnx_sha256"):
        Engine(load_bundle(folder), device="cpu", backend="onnxruntime")


def _cam_net(seed: int = 3) -> CamNet:
    torch.manual_seed(seed)
    net = CamNet(1).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net


def test_onnx_runtime_is_the_default_on_the_cpu_and_torch_runs_what_it_cannot(tmp_path, monkeypatch):
    """auto: ONNX Runtime where the bundle has model.onnx; TorchScript, then torch.export, where it has not;
    ONNX Runtime also where model.onnx is the only network; a missing runtime for an ONNX-only bundle is named."""
    pytest.importorskip("onnxruntime")
    both = load_bundle(make_bundle(tmp_path / "both", CamNet(1).eval(), size=(64, 64), onnx=True))
    assert both.networks == ("torchscript", "onnx")
    assert Engine(both, device="cpu").backend == "onnxruntime"
    assert Engine(both, device="cpu", backend="torchscript").backend == "torchscript"
    assert Engine(load_bundle(make_bundle(tmp_path / "ts")), device="cpu").backend == "torchscript"
    only_onnx = load_bundle(make_bundle(tmp_path / "onnx", CamNet(1).eval(), size=(64, 64), formats=("onnx",)))
    assert only_onnx.networks == ("onnx",) and only_onnx.torchscript is None
    engine = Engine(only_onnx, device="cpu")
    assert engine.backend == "onnxruntime" and engine.runs_on == "ONNX Runtime"
    with pytest.raises(ModelError, match="no models/model.ts for the torchscript backend"):
        Engine(only_onnx, device="cpu", backend="torchscript")
    monkeypatch.setattr(engine_module, "onnxruntime_available", lambda: False)
    with pytest.raises(ModelError, match="only network is models/model.onnx.*not installed"):
        Engine(only_onnx, device="cpu")
    assert Engine(both, device="cpu").backend == "torchscript"  # falls back to what torch runs


@pytest.mark.slow
def test_every_backend_gives_the_same_answer(tmp_path):
    """One network as TorchScript, a torch.export program and ONNX: the same scores and heatmaps on the same
    images, through every backend (ONNX-only and export-only bundles included)."""
    pytest.importorskip("onnxruntime")
    net = _cam_net()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (300, 260), dtype=np.uint8) for _ in range(3)]
    full = load_bundle(make_bundle(tmp_path / "all", net, size=(128, 128),
                                   formats=("torchscript", "export", "onnx")))
    assert full.networks == ("torchscript", "export", "onnx") and full.export_sha256 and full.onnx_sha256
    reference = Engine(full, device="cpu", backend="torchscript", optimize=False).predict_images(images)
    engines = [Engine(full, device="cpu", backend=b) for b in ("onnxruntime", "torchscript", "export")]
    engines.append(Engine(load_bundle(make_bundle(tmp_path / "pt2", net, size=(128, 128), formats=("export",))),
                          device="cpu"))
    assert engines[-1].backend == "export" and "torch.export" in engines[-1].runs_on
    for engine in engines:
        for a, b in zip(reference, engine.predict_images(images)):
            assert a.scores["cardiomegaly"] == pytest.approx(b.scores["cardiomegaly"], abs=1e-4), engine.backend
            assert np.abs(a.heatmap - b.heatmap).max() < 1e-3, engine.backend


def test_export_programs_are_checked_and_never_unpickled(tmp_path, monkeypatch):
    """A torch.export program runs only when its bytes match the metadata, and never when it stores a pickled
    object: the archive is refused before torch sees it (torch.export.load would unpickle it)."""
    import io
    import zipfile

    import medview.core.inference.bundle as bundle_module
    from medview.core.inference.bundle import file_sha256

    folder = make_bundle(tmp_path / "m", BrightNet(1), formats=("export",))
    program = folder / "models" / "model.pt2"
    meta_file = folder / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    assert meta["medview"]["sha256"] == file_sha256(program.read_bytes())  # the only network names sha256
    Engine(load_bundle(folder), device="cpu").warm_up()

    loads = []
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: loads.append(a) or pytest.fail("loaded"))
    original = program.read_bytes()
    program.write_bytes(original[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="checksum mismatch, models/model.pt2"):
        Engine(load_bundle(folder), device="cpu")

    # the same archive with a weight marked as pickled, its checksum updated: refused by name, not loaded
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data/weights/model_weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"].values()))
                first["use_pickle"] = True
                data = json.dumps(config).encode()
            dst.writestr(info, data)
    program.write_bytes(out.getvalue())
    meta["medview"]["sha256"] = file_sha256(out.getvalue())
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="pickled object; medview never unpickles"):
        Engine(load_bundle(folder), device="cpu")
    assert loads == []
    # the pickled sample inputs every program carries are emptied before torch reads the archive
    emptied = bundle_module.export_archive_without_samples(original)
    with zipfile.ZipFile(io.BytesIO(emptied)) as archive:
        samples = [i for i in archive.infolist() if "/data/sample_inputs/" in i.filename]
        assert samples and all(i.file_size == 0 for i in samples)


def test_a_bundle_with_any_changed_network_file_is_refused_whichever_engine_runs(tmp_path):
    """The default engine runs model.onnx, but a changed model.ts beside it still makes the bundle refused:
    one damaged or tampered file is a damaged bundle."""
    pytest.importorskip("onnxruntime")
    folder = make_bundle(tmp_path / "m", CamNet(1).eval(), size=(64, 64), onnx=True)
    weights = folder / "models" / "model.ts"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    for backend in ("auto", "onnxruntime"):
        with pytest.raises(ModelError, match="checksum mismatch, model.ts"):
            Engine(load_bundle(folder), device="cpu", backend=backend)
