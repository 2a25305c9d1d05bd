"""`medview render` (SPEC section 1): JSON lines, PNGs equal to the display pipeline, errors per input, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medview.cli import main
from medview.core.dicom import pixels as px
from medview.core.png import decode_png, encode_png, read_png
from tests.core.broken_copies import NO_DATA_ELEMENTS, cut_short, garbage_after_preamble
from tests.factories import copy_testdata, make_zip, write_image, write_junk


def _render(capsys, *argv):
    rc = main(["render", *map(str, argv)])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    return rc, lines, err


def _png_header(path):
    with open(path, "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return width, height, data[24], data[25]  # bit depth, colour type


@pytest.fixture
def studies(tmp_path):
    folder = tmp_path / "studies"
    pixels = (np.arange(20 * 24, dtype=np.int16).reshape(20, 24) * 7 - 1500)
    ct = write_image(folder / "ct.dcm", pixels=pixels, rows=20, cols=24, signed=True, rescale=(1.0, -1024.0),
                     window=(40, 400))
    rgb = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    colour = write_image(folder / "colour.dcm", pixels=rgb, samples_per_pixel=3, bits_allocated=8,
                         planar_configuration=1, modality="US")
    frames = np.stack([np.full((8, 9), 100 * (i + 1), dtype=np.uint16) for i in range(3)])
    frames[:, 0, 0] = 0
    multi = write_image(folder / "multi.dcm", pixels=frames, modality="OT")
    return {"folder": folder, "ct": ct, "colour": colour, "multi": multi, "rgb": rgb}


def test_render_ok_pngs_equal_the_display_pipeline(tmp_path, studies, capsys):
    out = tmp_path / "out"
    rc, lines, err = _render(capsys, studies["ct"], studies["colour"], "--out-dir", out)
    assert rc == 0 and err == ""
    assert [line["status"] for line in lines] == ["ok", "ok"]
    ct_line, colour_line = lines
    assert ct_line["input"] == str(studies["ct"]) and ct_line["frame"] == 0 and ct_line["window"] == [40.0, 400.0]
    assert os.path.dirname(ct_line["output"]) == str(out)
    assert _png_header(ct_line["output"]) == (24, 20, 8, 0)  # native size, 8-bit grey
    expected = px.display_frame(px.read_dataset(studies["ct"]))
    np.testing.assert_array_equal(read_png(ct_line["output"]), expected)
    assert _png_header(colour_line["output"]) == (12, 10, 8, 2)  # RGB
    np.testing.assert_array_equal(read_png(colour_line["output"]), studies["rgb"])
    assert colour_line["window"] is None


def test_png_is_readable_by_an_independent_decoder(tmp_path, studies, capsys):
    image_module = pytest.importorskip("PIL.Image")
    rc, lines, _ = _render(capsys, studies["ct"], studies["colour"], "--out-dir", tmp_path / "o")
    with image_module.open(lines[0]["output"]) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), read_png(lines[0]["output"]))
    with image_module.open(lines[1]["output"]) as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), studies["rgb"])


def test_png_writer_round_trip_and_raw_zlib():
    img = np.random.default_rng(0).integers(0, 256, (5, 3), dtype=np.uint8)
    data = encode_png(img)
    np.testing.assert_array_equal(decode_png(data), img)
    idat_start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[idat_start - 8:idat_start - 4], "big")
    raw = np.frombuffer(zlib.decompress(data[idat_start:idat_start + length]), np.uint8).reshape(5, 4)
    rows = np.cumsum(raw[:, 1:].astype(int), axis=0) % 256  # every row uses filter 2 (Up)
    assert set(raw[:, 0]) == {2}
    np.testing.assert_array_equal(rows, img)
    with pytest.raises(ValueError):
        encode_png(img.astype(np.uint16))


def test_window_and_preset(tmp_path, studies, capsys):
    ds = px.read_dataset(studies["ct"])
    rc, lines, _ = _render(capsys, studies["ct"], "--out-dir", tmp_path / "w", "--window", "-100", "50")
    assert rc == 0 and lines[0]["window"] == [-100.0, 50.0]
    np.testing.assert_array_equal(read_png(lines[0]["output"]), px.display_frame(ds, window=px.Window(-100, 50)))
    rc, lines, _ = _render(capsys, studies["ct"], "--out-dir", tmp_path / "p", "--preset", "lung")
    assert rc == 0 and lines[0]["window"] == [-600.0, 1500.0]
    np.testing.assert_array_equal(read_png(lines[0]["output"]), px.display_frame(ds, window=px.Window(-600, 1500)))
    rc, lines, _ = _render(capsys, studies["ct"], "--out-dir", tmp_path / "s", "--preset", "soft-tissue")
    assert lines[0]["window"] == [40.0, 400.0]


@pytest.mark.parametrize("argv", [["--preset", "nonsense"], ["--window", "40", "0"], ["--frame", "-1"]])
def test_bad_arguments_exit_2(tmp_path, studies, capsys, argv):
    rc = main(["render", str(studies["ct"]), "--out-dir", str(tmp_path / "o"), *argv])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and "medview render:" in err


def test_frame_n_and_out_of_range_is_an_error_for_that_input_only(tmp_path, studies, capsys):
    rc, lines, err = _render(capsys, studies["multi"], studies["ct"], "--out-dir", tmp_path / "f", "--frame", "2")
    assert rc == 1
    multi, ct = lines
    assert multi["status"] == "ok" and multi["frame"] == 2
    assert multi["output"].endswith("multi_frame2.png")
    np.testing.assert_array_equal(read_png(multi["output"]), px.display_frame(px.read_dataset(studies["multi"]), 2))
    assert ct["status"] == "error" and "frame 2 does not exist" in ct["error"]
    assert err.strip() == f"{studies['ct']}: {ct['error']}"


def test_missing_non_dicom_and_broken_inputs(tmp_path, studies, capsys):
    junk = write_junk(tmp_path / "junk")
    short = write_image(tmp_path / "junk" / "short.dcm", rows=32, cols=32)
    short.write_bytes(short.read_bytes()[:-200])
    missing = tmp_path / "missing.dcm"
    inputs = [missing, junk["random"], junk["empty"], junk["text"], short, studies["ct"]]
    rc, lines, err = _render(capsys, *inputs, "--out-dir", tmp_path / "o")
    assert rc == 1
    assert [line["input"] for line in lines] == [str(p) for p in inputs]
    assert [line["status"] for line in lines] == ["error"] * 5 + ["ok"]
    reasons = [line["error"] for line in lines[:5]]
    assert reasons[0] == "file not found"
    assert reasons[1] == reasons[3] == "not a DICOM file" and reasons[2] == "empty file"
    assert "shorter" in reasons[4]
    assert len(err.splitlines()) == 5 and "Traceback" not in err
    assert os.listdir(tmp_path / "o") == ["ct.png"]


def test_cut_short_file_gets_the_reason_index_gives(tmp_path, capsys):
    cut = cut_short(tmp_path)  # pydicom reads it without an error and without Pixel Data
    reason = "file is cut short (inside an element header at byte 2994; 3000 bytes)"
    rc, lines, err = _render(capsys, cut, "--out-dir", tmp_path / "o")
    assert rc == 1 and lines == [{"input": str(cut), "status": "error", "error": reason}]
    assert err.splitlines() == [f"{cut}: {reason}"]
    assert main(["index", str(cut), "--json", "--no-cache"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == [{"file": str(cut), "error": reason}]


@pytest.mark.slow
def test_real_process_stderr_holds_only_medview_lines(tmp_path):
    """A fresh process (pydicom imported after render starts): pydicom's warnings never reach stderr."""
    broken = garbage_after_preamble(tmp_path / "in")  # pydicom: "End of file reached before delimiter"
    padded = copy_testdata("MR_small_padded.dcm", tmp_path / "in" / "MR_small_padded.dcm")  # pydicom: "... bytes of excess padding"
    proc = subprocess.run([sys.executable, "-m", "medview", "render", str(broken), str(padded), "--out-dir",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert [json.loads(line)["status"] for line in proc.stdout.splitlines()] == ["error", "ok"]
    assert proc.stderr.splitlines() == [f"{broken}: {NO_DATA_ELEMENTS}"]


def test_same_file_names_get_unique_outputs(tmp_path, capsys):
    a = write_image(tmp_path / "a" / "IM0001", window=(40, 400))
    b = write_image(tmp_path / "b" / "IM0001", window=(40, 400), seed=5)
    rc, lines, _ = _render(capsys, a, b, "--out-dir", tmp_path / "o")
    assert rc == 0
    outputs = [line["output"] for line in lines]
    assert len(set(outputs)) == 2 and all(os.path.basename(o).startswith("IM0001") for o in outputs)
    assert not np.array_equal(read_png(outputs[0]), read_png(outputs[1]))


def test_folder_input_renders_its_images_and_passes_over_junk(tmp_path, studies, capsys):
    write_junk(studies["folder"] / "junk")
    rc, lines, err = _render(capsys, studies["folder"], "--out-dir", tmp_path / "o")
    assert rc == 0, err
    assert sorted(os.path.basename(line["input"]) for line in lines) == ["colour.dcm", "ct.dcm", "multi.dcm"]
    assert all(line["status"] == "ok" for line in lines)


def test_never_writes_into_the_folder_studies_are_read_from(tmp_path, studies, capsys):
    before = sorted(os.listdir(studies["folder"]))
    for out in (studies["folder"], studies["folder"] / "png"):
        rc = main(["render", str(studies["folder"]), "--out-dir", str(out)])
        assert rc == 2 and "never writes there" in capsys.readouterr().err
    rc = main(["render", str(studies["ct"]), "--out-dir", str(studies["folder"])])
    assert rc == 2
    capsys.readouterr()
    assert sorted(os.listdir(studies["folder"])) == before


def test_real_process_no_traceback_no_qt_no_torch(tmp_path, studies):
    code = (
        "import sys; from medview.cli import main; rc = main(sys.argv[1:]); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'torch', 'pyqtgraph')); "
        "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc)"
    )
    argv = ["render", str(studies["ct"]), get_testdata_file("JPEG2000.dcm"), str(tmp_path / "nope"),
            "--out-dir", str(tmp_path / "o")]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "HEAVY []" in proc.stderr
    statuses = [json.loads(line)["status"] for line in proc.stdout.splitlines()]
    assert statuses == ["ok", "ok", "error"]
    proc = subprocess.run([sys.executable, "-m", "medview", "render", str(studies["ct"]), "--out-dir",
                           str(tmp_path / "o2")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "" and json.loads(proc.stdout)["status"] == "ok"


def test_zip_members_and_relative_folder_inputs(tmp_path, studies, capsys, monkeypatch):
    archive = make_zip(tmp_path / "export.zip", [studies["ct"], studies["colour"]], studies["folder"])
    rc, lines, _ = _render(capsys, archive, "--out-dir", tmp_path / "z")
    assert rc == 0
    assert sorted(line["input"] for line in lines) == [f"{archive}!colour.dcm", f"{archive}!ct.dcm"]
    ct_line = next(line for line in lines if line["input"].endswith("ct.dcm"))
    np.testing.assert_array_equal(read_png(ct_line["output"]), px.display_frame(px.read_dataset(studies["ct"])))
    monkeypatch.chdir(tmp_path)
    rc, lines, _ = _render(capsys, "studies", "--out-dir", "rel_out")
    assert rc == 0 and sorted(line["input"] for line in lines) == [
        os.path.join("studies", n) for n in ("colour.dcm", "ct.dcm", "multi.dcm")]


_LOGS_AN_EXCEPTION = """
import logging, sys
from medview.cli import main
main(sys.argv[1:] + ["--version"])
try:
    raise ValueError("GDCM does not support 'JPEG Extended' for samples with 12-bit precision")
except ValueError:
    logging.getLogger("pydicom").exception("Unable to decode the pixel data")
"""


@pytest.mark.parametrize("debug", [False, True])
def test_console_log_lines_carry_no_traceback_unless_debugging(debug):
    """A library's `logger.exception` (pydicom's decoders do this) is one line on the console; --debug shows
    the traceback."""
    args = [sys.executable, "-c", _LOGS_AN_EXCEPTION] + (["--debug"] if debug else [])
    err = subprocess.run(args, capture_output=True, text=True, timeout=60).stderr
    assert "ERROR pydicom: Unable to decode the pixel data" in err
    assert ("Traceback" in err) is debug
