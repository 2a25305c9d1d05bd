"""`medview infer`: JSON lines of SPEC section 4, skipped modalities, per-file errors, exit codes, the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medview.cli import main
from medview.core.inference.engine import Engine
from tests.factories import truncate, write_image
from tests.inference_factory import BrightNet, LogitNet, NaNNet, WideNet, count_pixel_reads, make_bundle

LEVELS = {"bright_dx": ("DX", 3600), "dark_dx": ("DX", 400), "bright_cr": ("CR", 3600), "dark_cr": ("CR", 400)}


@pytest.fixture()
def study(tmp_path):
    """Four radiographs of known brightness (CR stored MONOCHROME1), one CT slice, one cut-short DX."""
    folder = tmp_path / "study"
    for i, (name, (modality, level)) in enumerate(LEVELS.items()):
        stored = np.full((40, 36), level, np.uint16)
        stored[:4] = 0
        if modality == "CR":
            stored = (4095 - stored).astype(np.uint16)
        write_image(folder / f"{name}.dcm", modality=modality, pixels=stored, bits_stored=12,
                    window=(2048, 4096), photometric="MONOCHROME1" if modality == "CR" else "MONOCHROME2",
                    sop_uid=f"1.2.3.{i}")
    write_image(folder / "ct.dcm", modality="CT", rows=32, cols=32)
    broken = write_image(folder / "broken.dcm", modality="DX", rows=64, cols=64)
    truncate(broken, -2000)
    return folder


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_infer_json_lines(tmp_path, study, capsys):
    model = make_bundle(tmp_path / "model")
    code = main(["infer", str(study), "--model", str(model), "--json"])
    captured = capsys.readouterr()
    lines = _lines(captured.out)
    assert code == 1  # the cut-short file failed, every other image was still processed
    by_file = {line["file"].rsplit("/", 1)[-1]: line for line in lines}
    assert set(by_file) == {*(f"{n}.dcm" for n in LEVELS), "ct.dcm", "broken.dcm"}

    for i, name in enumerate(LEVELS):
        line = by_file[f"{name}.dcm"]
        assert line["status"] == "ok" and line["frame"] == 0 and line["model"] == "tiny@0.1"
        assert set(line) == {"status", "file", "frame", "study_uid", "series_uid", "sop_instance_uid", "model",
                             "scores", "flagged"}
        assert line["sop_instance_uid"] == f"1.2.3.{i}"
        assert line["flagged"] == (["cardiomegaly"] if name.startswith("bright") else [])
    # CR (stored MONOCHROME1, inverted values) is seen as displayed: it scores like the same DX image
    for level in ("bright", "dark"):
        cr, dx = by_file[f"{level}_cr.dcm"]["scores"], by_file[f"{level}_dx.dcm"]["scores"]
        assert cr["cardiomegaly"] == pytest.approx(dx["cardiomegaly"], abs=0.01)

    assert by_file["ct.dcm"]["status"] == "skipped" and "CT" in by_file["ct.dcm"]["reason"]
    err = by_file["broken.dcm"]
    assert err["status"] == "error" and err["error"]
    assert "broken.dcm" in captured.err and "Traceback" not in captured.err


def test_cache_hit_runs_no_model(tmp_path, study, capsys, monkeypatch):
    model = make_bundle(tmp_path / "model")
    main(["infer", str(study), "--model", str(model), "--json"])
    first = sorted(_lines(capsys.readouterr().out), key=lambda d: d["file"])

    def refuse(*args, **kwargs):
        raise AssertionError("the model ran although every result was cached")

    monkeypatch.setattr(Engine, "forward", refuse)
    assert main(["infer", str(study), "--model", str(model), "--json"]) == 1
    assert sorted(_lines(capsys.readouterr().out), key=lambda d: d["file"]) == first

    # other weights (another checksum) are not served from the cache
    other = make_bundle(tmp_path / "other", BrightNet(gain=6.0), version="0.2")
    with pytest.raises(AssertionError, match="model ran"):
        main(["infer", str(study), "--model", str(other), "--json"])
    # --no-cache neither reads nor writes it
    with pytest.raises(AssertionError, match="model ran"):
        main(["infer", str(study), "--model", str(model), "--json", "--no-cache"])



def test_a_file_whose_pixels_changed_under_the_same_uid_scores_again(tmp_path, study, capsys):
    """The cache answers only for the same pixels: a file rewritten with other pixels (same SOP Instance UID)
    is scored anew, not answered from the cache."""
    import os

    model = make_bundle(tmp_path / "model")
    target = study / "bright_dx.dcm"
    main(["infer", str(target), "--model", str(model), "--json"])
    [first] = _lines(capsys.readouterr().out)
    stored = np.full((40, 36), 400, np.uint16)
    write_image(target, modality="DX", pixels=stored, bits_stored=12, window=(2048, 4096), sop_uid="1.2.3.0")
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))  # even a clock that did not move: the size or mtime differs
    main(["infer", str(target), "--model", str(model), "--json"])
    [second] = _lines(capsys.readouterr().out)
    assert second["sop_instance_uid"] == first["sop_instance_uid"] == "1.2.3.0"
    assert second["flagged"] == [] and first["flagged"] == ["cardiomegaly"]


def test_edited_metadata_scores_again_and_is_checked_again(tmp_path, study, capsys):
    """Same weights, other metadata: a cached result is not reused, so the new window scores the images anew
    and a metadata that no longer fits the network is refused instead of answered from the cache."""
    model = make_bundle(tmp_path / "model")
    main(["infer", str(study / "bright_dx.dcm"), "--model", str(model), "--json"])
    [first] = _lines(capsys.readouterr().out)
    meta_file = model / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())

    meta["medview"]["preprocess"]["window"] = [3000, 10]  # the weights' checksum is unchanged
    meta_file.write_text(json.dumps(meta))
    main(["infer", str(study / "bright_dx.dcm"), "--model", str(model), "--json"])
    [windowed] = _lines(capsys.readouterr().out)
    assert windowed["scores"]["cardiomegaly"] != pytest.approx(first["scores"]["cardiomegaly"], abs=1e-4)

    meta["network_data_format"]["outputs"]["pred"]["channel_def"] = {"0": "cardiomegaly", "1": "effusion"}
    meta_file.write_text(json.dumps(meta))
    assert main(["infer", str(study / "bright_dx.dcm"), "--model", str(model), "--json"]) == 2
    assert "expected [1, 2]" in capsys.readouterr().err


def test_human_output(tmp_path, study, capsys):
    model = make_bundle(tmp_path / "model")
    main(["infer", str(study / "bright_dx.dcm"), str(study / "ct.dcm"), "--model", str(model)])
    out = capsys.readouterr().out
    assert "bright_dx.dcm: cardiomegaly" in out and "FLAGGED" in out and "tiny@0.1" in out
    assert "ct.dcm: skipped" in out


def test_unusable_model_is_exit_2(tmp_path, study, capsys):
    missing = tmp_path / "no-such-model"
    assert main(["infer", str(study), "--model", str(missing), "--json"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not found" in err and "Traceback" not in err

    model = make_bundle(tmp_path / "model")
    (model / "models" / "model.ts").write_bytes(b"PK\x03\x04 damaged")
    assert main(["infer", str(study), "--model", str(model)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


@pytest.mark.parametrize("net", [NaNNet(), WideNet(), LogitNet()], ids=["nan", "wrong-shape", "logits"])
def test_a_network_that_answers_wrongly_is_exit_2_before_any_line(tmp_path, study, capsys, net):
    """The network is checked up front: no skipped, error or score line is printed for a model that is then
    refused, and the refusal is the one line on stderr."""
    model = make_bundle(tmp_path / "model", net)
    assert main(["infer", str(study), "--model", str(model), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert str(model) in line and "Traceback" not in line


def test_missing_input_is_exit_2(tmp_path, capsys):
    model = make_bundle(tmp_path / "model")
    assert main(["infer", str(tmp_path / "nowhere"), "--model", str(model)]) == 2
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.slow
def test_infer_demo_data_against_ground_truth(tmp_path, capsys):
    """The bundled model on `demo-data` output (a seed training never used), checked against ground_truth.csv."""
    import csv

    from medview.core.inference import metrics

    out = tmp_path / "demo"
    assert main(["demo-data", str(out), "--cases", "16", "--seed", "5005", "--ct-slices", "2"]) == 0
    capsys.readouterr()
    assert main(["infer", str(out), "--json"]) == 0
    lines = _lines(capsys.readouterr().out)
    truth = {row["sop_instance_uid"]: int(row["label"])
             for row in csv.DictReader((out / "ground_truth.csv").open(encoding="utf-8"))}
    ok = [line for line in lines if line["status"] == "ok"]
    assert {line["sop_instance_uid"] for line in ok} == set(truth)
    assert all(line["model"] == "medview-cardiomegaly-phantom@2.1.0" for line in ok)
    true_ctr = {row["sop_instance_uid"]: float(row["ctr"])
                for row in csv.DictReader((out / "ground_truth.csv").open(encoding="utf-8"))}
    errors = []
    for line in ok:
        ctr = line["measurements"]["cardiothoracic_ratio"]
        assert ctr["unit"] == "1" and ctr["threshold"] == 0.5
        for name in ("heart", "thorax"):
            (c0, r0), (c1, r1) = ctr[name]
            assert r0 == r1 and c0 < c1  # a horizontal line, left to right, in image pixels
        assert ctr["heart"][1][0] - ctr["heart"][0][0] < ctr["thorax"][1][0] - ctr["thorax"][0][0]
        assert ("cardiomegaly" in line["flagged"]) == (ctr["value"] >= 0.5)
        errors.append(abs(ctr["value"] - true_ctr[line["sop_instance_uid"]]))
    assert np.mean(errors) <= 0.03  # the model README: 0.02-0.025 measured on fresh phantoms
    skipped = [line for line in lines if line["status"] == "skipped"]
    assert len(skipped) >= 2 and {line["modality"] for line in skipped} == {"CT"}
    scores = [line["scores"]["cardiomegaly"] for line in ok]
    labels = [truth[line["sop_instance_uid"]] for line in ok]
    assert metrics.roc_auc(scores, labels) >= 0.9
    agree = sum(("cardiomegaly" in line["flagged"]) == bool(truth[line["sop_instance_uid"]]) for line in ok)
    assert agree >= 13  # of 16, at the shipped threshold


def test_images_outside_the_intended_use_are_skipped_with_the_reason(tmp_path, capsys):
    """A lateral view, another body part and a 16x16 radiograph are skipped, each with its reason in words,
    never answered; the frontal chest beside them is measured."""
    import pydicom

    out = tmp_path / "demo"
    assert main(["demo-data", str(out), "--cases", "1", "--seed", "5006", "--ct-slices", "0"]) == 0
    capsys.readouterr()
    frontal = sorted(out.rglob("*.dcm"))[0]
    folder = tmp_path / "in"
    folder.mkdir()
    for name, tags in (("frontal", {}), ("lateral", {"ViewPosition": "LL"}),
                       ("abdomen", {"BodyPartExamined": "ABDOMEN"})):
        ds = pydicom.dcmread(frontal)
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{len(name)}"
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.save_as(folder / f"{name}.dcm")
    write_image(folder / "tiny.dcm", modality="DX", rows=16, cols=16, pixels=np.arange(256, dtype=np.uint16).reshape(16, 16))
    assert main(["infer", str(folder), "--json"]) == 0
    by_file = {line["file"].rsplit("/", 1)[-1]: line for line in _lines(capsys.readouterr().out)}
    assert by_file["frontal.dcm"]["status"] == "ok"
    assert by_file["lateral.dcm"]["status"] == "skipped" and by_file["lateral.dcm"]["reason"] == "lateral view"
    assert by_file["abdomen.dcm"]["reason"] == "other body part (abdomen)"
    assert by_file["tiny.dcm"]["status"] == "skipped" and by_file["tiny.dcm"]["reason"].startswith("too small")


def test_multi_frame_file_is_read_once_and_scored_per_frame(tmp_path, capsys, monkeypatch):
    """One ok line per frame, each frame read at its offset (pydicom never reads the pixel data, the scan's
    header facts say where each frame lies); a multi-frame file the model does not apply to is one skipped
    line, and is not read at all."""
    import shutil

    from pydicom.data import get_testdata_file

    folder = tmp_path / "study"
    folder.mkdir()
    mr = shutil.copy(get_testdata_file("emri_small.dcm"), folder / "mr.dcm")  # MR, 10 frames
    write_image(folder / "ct.dcm", modality="CT", pixels=np.zeros((3, 16, 16), np.uint16))
    model = make_bundle(tmp_path / "model", modalities=("MR",))
    pixel_reads = count_pixel_reads(monkeypatch)
    assert main(["infer", str(folder), "--model", str(model), "--json", "--batch-size", "4"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert pixel_reads == []
    ok = [line for line in lines if line["status"] == "ok"]
    assert [(line["file"], line["frame"]) for line in ok] == [(str(mr), f) for f in range(10)]
    assert len({line["scores"]["cardiomegaly"] for line in ok}) > 1  # each frame scored on its own pixels
    assert [line["file"] for line in lines if line["status"] == "skipped"] == [str(folder / "ct.dcm")]


def test_a_file_pydicom_warns_about_is_one_line_naming_it_and_no_library_warning(tmp_path, capsys):
    """An RGB radiograph whose halved Columns leave pixel data for two frames where one is declared: pydicom
    warns (and logs) in its own words without naming the file; infer says it once, naming the file."""
    import warnings

    from tests.factories import copy_testdata

    folder = tmp_path / "in"
    odd = copy_testdata("US1_UNCR.dcm", folder / "odd.dcm", Modality="DX", Columns=320)
    write_image(folder / "plain.dcm", modality="DX", rows=40, cols=36, sop_uid="1.2.826.0.1.3680043.8.498.95")
    model = make_bundle(tmp_path / "model")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["infer", str(folder), "--model", str(model), "--json", "--no-cache"]) == 1
    captured = capsys.readouterr()
    # the test model is TorchScript, whose deprecation torch states on loading it
    assert [str(w.message) for w in seen if not str(w.message).startswith("`torch.jit.")] == []
    by_file = {line["file"].rsplit("/", 1)[-1]: line for line in _lines(captured.out)}
    assert by_file["plain.dcm"]["status"] == "ok" and by_file["odd.dcm"]["status"] == "error"
    assert captured.err.splitlines() == [f"{odd}: {by_file['odd.dcm']['error']}"]
