"""Model bundles: folder and single-file forms, lenient metadata, and refusals that name what is wrong."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from medview.core.errors import ModelError
from medview.core.inference.bundle import load_bundle, load_torchscript, save_single_file
from tests.inference_factory import BrightNet, make_bundle


def _edit_metadata(folder, edit):
    path = folder / "configs" / "metadata.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_folder_bundle_is_read(tmp_path):
    folder = make_bundle(tmp_path / "m", labels=("cardiomegaly", "effusion"),
                         thresholds={"cardiomegaly": 0.7, "effusion": 0.3}, size=(48, 40))
    b = load_bundle(folder)
    assert b.ident == "tiny@0.1"
    assert b.labels == ("cardiomegaly", "effusion")
    assert b.resize == (48, 40) and b.num_channels == 1 and b.value_range == (0.0, 1.0)
    assert b.window == "dicom" and b.heatmap is True and b.scores == "probabilities"
    assert b.applies_to("cr") and b.applies_to("DX") and not b.applies_to("CT")
    # at or above the threshold is flagged; user thresholds override the bundle's
    assert b.flagged({"cardiomegaly": 0.7, "effusion": 0.29}) == ["cardiomegaly"]
    assert b.flagged({"cardiomegaly": 0.7, "effusion": 0.29}, {"cardiomegaly": 0.8}) == []
    assert b.readme is not None and "not for diagnosis" in b.readme.read_text()
    net = load_torchscript(b)
    with torch.no_grad():
        scores, cam = net(torch.full((2, 1, 48, 40), 0.9))
    assert scores.shape == (2, 2) and float(scores[0, 0]) > 0.9


def test_lenient_metadata(tmp_path):
    folder = make_bundle(tmp_path / "m")

    def sloppy(meta):
        ndf = meta["network_data_format"]
        ndf["inputs"] = {"img": {**ndf["inputs"]["image"], "type": "Image", "format": "hounsfield",
                                 "num_channels": "1"}}
        ndf["outputs"]["pred"]["channel_def"] = {0: "cardiomegaly"}
        meta["medview"]["modalities"] = "dx"
        meta["medview"]["outputs"]["scores"] = "Probability"
        del meta["medview"]["preprocess"]["resize"]  # falls back to spatial_shape
        del meta["version"]

    _edit_metadata(folder, sloppy)
    b = load_bundle(folder)
    assert b.modalities == ("DX",) and b.labels == ("cardiomegaly",) and b.scores == "probabilities"
    assert b.resize == (32, 32) and b.version == "0"


def test_missing_keys_are_all_named(tmp_path):
    folder = make_bundle(tmp_path / "m")

    def strip(meta):
        del meta["medview"]["sha256"]
        del meta["medview"]["modalities"]
        del meta["network_data_format"]["outputs"]["pred"]["channel_def"]

    _edit_metadata(folder, strip)
    with pytest.raises(ModelError) as err:
        load_bundle(folder)
    msg = str(err.value)
    assert str(folder) in msg
    assert "medview.sha256" in msg and "medview.modalities" in msg and "channel_def" in msg


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda m: m["medview"]["thresholds"].update(cardiomegaly=1.5), "thresholds.cardiomegaly must lie in 0..1"),
        (lambda m: m["medview"]["preprocess"].update(window="bone"), "preprocess.window"),
        (lambda m: m["medview"]["outputs"].update(scores="logits"), "outputs.scores"),
        (lambda m: m["network_data_format"]["inputs"]["image"].update(num_channels=4), "num_channels"),
        (lambda m: m["medview"].update(sha256="abc"), "not a SHA-256"),
        (lambda m: m.pop("medview"), '"medview" object'),
    ],
)
def test_bad_values_are_refused(tmp_path, edit, words):
    folder = make_bundle(tmp_path / "m")
    _edit_metadata(folder, edit)
    with pytest.raises(ModelError, match="cannot be used") as err:
        load_bundle(folder)
    assert words in str(err.value)


def test_not_a_bundle(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="configs/metadata.json"):
        load_bundle(tmp_path / "empty")
    folder = make_bundle(tmp_path / "m")
    (folder / "configs" / "metadata.json").write_text("{not json")
    with pytest.raises(ModelError, match="not readable JSON"):
        load_bundle(folder)
    plain = tmp_path / "plain.ts"
    torch.jit.save(torch.jit.script(BrightNet()), str(plain))
    with pytest.raises(ModelError, match="no metadata.json extra file"):
        load_bundle(plain)
    text = tmp_path / "notes.ts"
    text.write_text("hello")
    with pytest.raises(ModelError, match="not a TorchScript file"):
        load_bundle(text)


def test_checksum_mismatch_is_refused_before_loading(tmp_path, monkeypatch):
    good = make_bundle(tmp_path / "good")
    other = make_bundle(tmp_path / "other", BrightNet(gain=-3.0))
    shutil.copy(other / "models" / "model.ts", good / "models" / "model.ts")  # weights swapped
    bundle = load_bundle(good)

    def never(*args, **kwargs):
        raise AssertionError("torch.jit.load called on unverified weights")

    monkeypatch.setattr(torch.jit, "load", never)
    with pytest.raises(ModelError, match="checksum mismatch") as err:
        load_torchscript(bundle)
    assert str(good) in str(err.value)


def test_single_file_form(tmp_path):
    folder = make_bundle(tmp_path / "m", thresholds={"cardiomegaly": 0.6})
    meta = json.loads((folder / "configs" / "metadata.json").read_text())
    single = tmp_path / "single.ts"
    digest = save_single_file(torch.jit.script(BrightNet()), meta, single)
    b = load_bundle(single)
    assert b.single_file and b.sha256 == digest and b.thresholds == {"cardiomegaly": 0.6} and b.onnx is None
    with torch.no_grad():
        scores, _ = load_torchscript(b)(torch.zeros(1, 1, 32, 32))
    assert float(scores[0, 0]) < 0.1

    # another network carrying the first one's metadata (and digest) is refused
    tampered = tmp_path / "tampered.ts"
    torch.jit.save(torch.jit.script(BrightNet(gain=-8.0)), str(tampered),
                   _extra_files={"metadata.json": json.dumps({**meta, "medview": {**meta["medview"],
                                                                                 "sha256": digest}})})
    single = r"checksum mismatch, tampered.ts \(the archive without its metadata.json\) has SHA-256"
    with pytest.raises(ModelError, match=single):
        load_torchscript(load_bundle(tampered))
