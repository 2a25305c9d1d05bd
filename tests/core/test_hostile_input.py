"""Hostile inputs: odd file names, zip bombs, FIFOs, huge files, lying headers, paths leaving the folder.

Each gives one clear line on stderr naming the file and the reason, no traceback, and every other input is
still processed (exit 1).
"""

from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medview.cli import main
from tests.factories import copy_testdata, write_dicomdir


def _medview(*argv, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medview", *map(os.fsdecode, argv)], capture_output=True,
                          env=env, timeout=60)


def _odd_names_folder(tmp_path):
    """CT_small.dcm under a name that is not UTF-8, and a broken file with a newline in its name."""
    folder = tmp_path / "odd"
    folder.mkdir()
    ct = copy_testdata("CT_small.dcm", tmp_path / "ct.dcm").read_bytes()
    with open(os.path.join(os.fsencode(folder), b"bad\xff.dcm"), "wb") as fh:
        fh.write(ct)
    (folder / "broken\nname.dcm").write_bytes(bytes(128) + b"DICM" + b"\x02\x00")
    return folder


def test_file_names_that_are_not_utf8_or_hold_a_newline(tmp_path):
    folder = _odd_names_folder(tmp_path)
    for cache in ([], ["--no-cache"], []):  # the second cached run reads the names back from the cache
        done = _medview("index", folder, "--json", *cache)
        assert done.returncode == 1, done.stderr
        doc = json.loads(done.stdout.decode("utf-8"))  # valid UTF-8
        assert [s["series"][0]["instances"] for s in doc["studies"]] == [1]
        assert doc["errors"] == [{"file": f"{folder}/broken\\nname.dcm",
                                  "error": "broken DICOM file (no data elements; cut short?)"}]
        assert done.stderr.decode("utf-8").splitlines() == [
            f"{folder}/broken\\nname.dcm: broken DICOM file (no data elements; cut short?)"]

    done = _medview("render", folder, "--out-dir", tmp_path / "out")
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    lines = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    ok = next(line for line in lines if line["status"] == "ok")
    assert ok["input"] == f"{folder}/bad\\xff.dcm" and os.path.exists(ok["output"])
    assert len(done.stderr.decode("utf-8").splitlines()) == 1


def _zip_of_zeros(path, name: str, size: int) -> None:
    """A valid zip whose one deflated member expands to `size` zero bytes (a zip bomb of ~size/1000 bytes).

    Written by hand: deflating gigabytes through zipfile takes many seconds, while the raw deflate blocks of
    zeros after a full flush are all alike and can simply be repeated.
    """
    chunk = bytes(1 << 24)
    assert size % len(chunk) == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = block * (size // len(chunk)) + compressor.flush()
    crc = 0
    for _ in range(size // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    encoded = name.encode()
    fields = struct.pack("<HHHHHIIIH", 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded))
    local = b"PK\x03\x04" + fields + b"\x00\x00" + encoded
    central = (b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHHII", 0, 0, 0, 0, 0, 0)
               + encoded)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    with open(path, "wb") as fh:
        fh.write(local + data + central + end)


def test_zip_member_that_expands_past_the_limit_is_refused_unread(tmp_path, capsys):
    archive = tmp_path / "export.zip"
    _zip_of_zeros(archive, "bomb.dcm", 2 << 30)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.write(copy_testdata("CT_small.dcm", tmp_path / "ct.dcm"), "ct.dcm")
    reason = "zip member expands to 2.0 GiB, over the limit of 1.0 GiB (a zip bomb?)"

    assert main(["index", str(archive), "--json"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["errors"] == [{"file": f"{archive}!bomb.dcm", "error": reason}]
    assert doc["studies"][0]["series"][0]["instances"] == 1
    assert err == f"{archive}!bomb.dcm: {reason}\n"

    assert main(["render", str(archive), "--out-dir", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["error", "ok"]
    assert err == f"{archive}!bomb.dcm: {reason}\n"


def test_named_pipes_are_never_opened(tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    ct = copy_testdata("CT_small.dcm", folder / "ct.dcm")
    os.mkfifo(folder / "pipe.dcm")  # no writer: opening it for reading would block forever
    os.mkfifo(tmp_path / "x.dcm")
    reason = "not a file but a named pipe"

    done = _medview("render", tmp_path / "x.dcm", folder, "--out-dir", tmp_path / "out")
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["input"], line["status"]) for line in lines] == [
        (str(tmp_path / "x.dcm"), "error"), (str(folder / "pipe.dcm"), "error"), (str(ct), "ok")]
    assert done.stderr.decode().splitlines() == [f"{tmp_path / 'x.dcm'}: {reason}",
                                                 f"{folder / 'pipe.dcm'}: {reason}"]

    assert main(["index", str(tmp_path / "x.dcm"), str(folder), "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["errors"] == [{"file": str(tmp_path / "x.dcm"), "error": reason},
                                         {"file": str(folder / "pipe.dcm"), "error": reason}]


def test_gigabytes_of_zeros_are_refused_from_their_first_bytes(tmp_path, capsys):
    """Zeros after a DICM marker, or after a real file meta, parse as empty elements 8 bytes at a time."""
    folder = tmp_path / "big"
    folder.mkdir()
    ct = copy_testdata("CT_small.dcm", folder / "ct.dcm").read_bytes()
    meta_end = 144 + struct.unpack_from("<I", ct, 140)[0]  # after (0002,0000) File Meta Group Length
    for name, head in (("zeros.dcm", bytes(128) + b"DICM"), ("meta_then_zeros.dcm", ct[:meta_end])):
        with open(folder / name, "wb") as fh:
            fh.write(head)
            fh.truncate(3 << 30)  # sparse: 3 GiB that cost no disk
    reasons = {"zeros.dcm": "not a DICOM file (only zero bytes from byte 132)",
               "meta_then_zeros.dcm": f"not a DICOM file (only zero bytes from byte {meta_end})"}

    # the reasons name the first zero byte: the file was refused from its first bytes, not parsed for minutes
    # (how long that takes is for benchmarks, not asserted here)
    assert main(["index", str(folder), "--json", "--no-cache"]) == 1
    out, err = capsys.readouterr()
    assert {os.path.basename(e["file"]): e["error"] for e in json.loads(out)["errors"]} == reasons
    assert main(["render", str(folder / "zeros.dcm"), str(folder / "meta_then_zeros.dcm"), str(folder / "ct.dcm"),
                 "--out-dir", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line).get("error") for line in out.splitlines()] == [
        reasons["zeros.dcm"], reasons["meta_then_zeros.dcm"], None]


def test_a_frame_over_a_gigabyte_is_an_error_before_anything_is_decoded(tmp_path, capsys):
    """A colour JPEG 2000 whose header and codestream agree on 30000 x 30000 pixels (2.7 GB a frame): refused
    by the scan, so neither `render` nor the viewer nor the AI allocates or decodes it; the file beside it
    renders."""
    from tests.core.decoder_reproducers import jpeg2000_huge

    folder = tmp_path / "in"
    huge = jpeg2000_huge(folder / "huge.dcm", size=30000, Rows=30000, Columns=30000)
    copy_testdata("US1_J2KI.dcm", folder / "us.dcm")
    reason = "declared image size 30000 x 30000 x 3 samples x 8 bits is too large"
    assert main(["index", str(folder), "--json", "--no-cache"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["errors"] == [{"file": str(huge), "error": reason}]
    assert main(["render", str(huge), str(folder / "us.dcm"), "--out-dir", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line).get("error") for line in out.splitlines()] == [reason, None]
    assert err.splitlines() == [f"{huge}: {reason}"]


def test_frames_beyond_the_compressed_data_make_the_file_an_error(tmp_path, capsys):
    """NumberOfFrames 2147483647 over 10 frames of JPEG 2000 would be a job per frame for `infer`."""
    folder = tmp_path / "mr"
    liar = copy_testdata("emri_small_jpeg_2k_lossless.dcm", folder / "liar.dcm", NumberOfFrames=2147483647)
    copy_testdata("emri_small_jpeg_2k_lossless.dcm", folder / "honest.dcm", SOPInstanceUID="1.2.3.4")
    reason = "declares 2147483647 frames, but its compressed pixel data holds only 10 fragments"

    assert main(["index", str(folder), "--json"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["errors"] == [{"file": str(liar), "error": reason}]
    assert doc["studies"][0]["series"][0]["frames"] == 10
    assert err == f"{liar}: {reason}\n"


def test_dicomdir_references_and_links_never_leave_the_opened_folder(tmp_path, capsys):
    outside = copy_testdata("CT_small.dcm", tmp_path / "outside.dcm", SOPInstanceUID="1.2.3.5")
    media = tmp_path / "media"
    dicomdir = write_dicomdir(media, [copy_testdata("CT_small.dcm", tmp_path / "src" / "ct.dcm")])
    ds = pydicom.dcmread(dicomdir)
    image = next(r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r)
    for path in (["..", "outside.dcm"], [".."] * 40 + ["etc", "passwd"]):
        escape = copy.deepcopy(image)
        escape.ReferencedFileID = path
        ds.DirectoryRecordSequence.append(escape)
    ds.save_as(dicomdir)
    reason = "listed in the DICOMDIR but outside its folder; not read"

    assert main(["index", str(dicomdir), "--json"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [s["series"][0]["instances"] for s in doc["studies"]] == [1]
    assert doc["errors"] == [{"file": os.path.join(media, "..", "outside.dcm"), "error": reason},
                             {"file": os.path.join(media, *[".."] * 40, "etc", "passwd"), "error": reason}]

    folder = tmp_path / "folder"
    copy_testdata("CT_small.dcm", folder / "ct.dcm")
    os.symlink("..", folder / "up")  # to tmp_path, which holds outside.dcm and more
    os.symlink(".", folder / "here")  # stays inside: no loop, no error
    assert main(["index", str(folder), "--json"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["files"] == 1 and [s["series"][0]["instances"] for s in doc["studies"]] == [1]
    assert doc["errors"] == [{"file": str(folder / "up"), "error": f"a link leading out of {folder}; not followed"}]


def test_files_sharing_a_sop_instance_uid_are_listed_as_duplicates(tmp_path, capsys):
    folder = tmp_path / "export"
    first = copy_testdata("CT_small.dcm", folder / "a" / "ct.dcm")
    again = copy_testdata("CT_small.dcm", folder / "b" / "ct.dcm")
    renumbered = copy_testdata("CT_small.dcm", folder / "c" / "ct.dcm", InstanceNumber=7)  # same UID, other file

    assert main(["index", str(folder), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["studies"][0]["series"][0]["instances"] == 1 and err == ""
    assert doc["duplicates"] == [{"file": str(again), "same_as": str(first)},
                                 {"file": str(renumbered), "same_as": str(first)}]
    assert main(["index", str(folder)]) == 0
    assert "2 duplicates" in capsys.readouterr().out


def _presentation_lut(path) -> None:
    """A standalone Presentation LUT (print management, PS3.4 H.4.3): its SOP class only in the file meta."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.1.23"  # Presentation LUT SOP Class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PresentationLUTShape = "IDENTITY"
    ds.save_as(path, enforce_file_format=True)


def test_valid_objects_without_an_image_say_what_they_are(tmp_path, capsys):
    folder = tmp_path / "objects"
    folder.mkdir()
    _presentation_lut(folder / "plut.dcm")
    copy_testdata("CT_small.dcm", folder / "ct.dcm")

    assert main(["index", str(folder), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["errors"] == [] and sum(s["instances"] for st in doc["studies"] for s in st["series"]) == 2

    assert main(["render", str(folder / "plut.dcm"), "--out-dir", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["error"] == "no image: a Presentation LUT object"
    assert err == f"{folder / 'plut.dcm'}: no image: a Presentation LUT object\n"


def test_a_preset_the_images_modality_lacks_is_an_error_for_that_image(tmp_path, capsys):
    ct = copy_testdata("CT_small.dcm", tmp_path / "ct.dcm")
    mr = copy_testdata("MR_small.dcm", tmp_path / "mr.dcm")
    assert main(["render", str(ct), str(mr), "--preset", "lung", "--out-dir", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    ct_line, mr_line = (json.loads(line) for line in out.splitlines())
    assert ct_line["status"] == "ok" and ct_line["window"] == [-600.0, 1500.0]
    assert mr_line == {"input": str(mr), "status": "error", "error": "no window preset 'lung' for MR (it has no presets)"}
    assert err == f"{mr}: no window preset 'lung' for MR (it has no presets)\n"


def test_big_endian_palette_colour_renders_as_its_little_endian_twin(tmp_path, capsys):
    """pydicom's OBXXXX1A_expb.dcm is OBXXXX1A.dcm in explicit VR big endian, palette data included."""
    from medview.core.png import read_png

    little = copy_testdata("OBXXXX1A.dcm", tmp_path / "little.dcm")
    big = copy_testdata("OBXXXX1A_expb.dcm", tmp_path / "big.dcm")
    assert main(["render", str(little), str(big), "--out-dir", str(tmp_path / "out")]) == 0
    outputs = [json.loads(line)["output"] for line in capsys.readouterr().out.splitlines()]
    shown_little, shown_big = (read_png(path) for path in outputs)
    assert shown_little.shape == (600, 800, 3) and shown_little.mean() > 10
    assert (shown_big == shown_little).all()


def test_a_supplemental_palette_shows_its_range_in_colour_and_the_rest_in_grey(tmp_path, capsys):
    """Enhanced CT with Pixel Presentation COLOR (pydicom-data's eCT_Supplemental.dcm): stored values from the
    palette's first mapped value on are shown in its colours, the others in grey, in `render` and the viewer."""
    import numpy as np
    import pydicom

    from medview.core.dicom import pixels
    from medview.core.png import read_png
    from medview.core.viewing.display import StackDisplay

    path = copy_testdata("eCT_Supplemental.dcm", tmp_path / "ect.dcm")
    assert main(["render", str(path), "--out-dir", str(tmp_path / "out")]) == 0
    shown = read_png(json.loads(capsys.readouterr().out)["output"])
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array[0]
    first = int(ds.RedPaletteColorLookupTableDescriptor[1])
    coloured = stored >= first
    assert shown.shape == (512, 512, 3) and 0.1 < coloured.mean() < 0.9
    grey = shown[~coloured]
    assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()
    chroma = shown[coloured].max(axis=1).astype(int) - shown[coloured].min(axis=1)
    assert (chroma > 30).mean() > 0.5  # most mapped pixels really are in colour
    # the viewer's lookup-table path shows the same pixels
    display = StackDisplay(stored[None], [(0, 0)], [pixels.read_dataset(str(path), stop_before_pixels=True)])
    assert np.array_equal(display.display_values(0, None, False), shown)


def _multiframe(path, frames: int, rows: int = 512, big_endian: bool = False):
    """A native 16-bit multi-frame secondary capture whose frame k holds k + (pixel index mod 4096)."""
    import numpy as np

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.2" if big_endian else ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.PatientID = generate_uid(), generate_uid(), "OT", "MF"
    ds.Rows = ds.Columns = rows
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.NumberOfFrames = frames
    base = np.arange(rows * rows, dtype=np.uint16).reshape(rows, rows) % 4096
    stack = (base[None] + np.arange(frames, dtype=np.uint16)[:, None, None]) % 4096
    ds.PixelData = stack.astype(">u2" if big_endian else "<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_one_frame_of_a_large_multiframe_is_read_without_the_rest(tmp_path):
    """Frame 450 of a 472 MB multi-frame file renders in the memory of a few frames (a 3 GB file peaked at
    9 GB when the whole pixel data was read), and is exactly the frame pydicom reads."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("reads the peak memory from /proc (Linux)")
    path = _multiframe(tmp_path / "big.dcm", 900)
    size = os.path.getsize(path)
    # the child's own high-water mark (VmHWM starts afresh at exec, unlike getrusage's maxrss)
    child = ("import re, sys\nfrom medview.cli import main\nrc = main(sys.argv[1:])\n"
             "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1), file=sys.stderr)\n"
             "sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", child, "render", str(path), "--frame", "450", "--out-dir",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    peak = int(out.stderr.split()[-1]) * 1024
    assert peak < size / 2, f"render peaked at {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"


def test_native_frames_read_at_their_offset_match_pydicom(tmp_path, capsys):
    import numpy as np

    from medview.core.dicom import pixels
    from medview.core.png import read_png

    for big_endian in (False, True):
        path = _multiframe(tmp_path / f"mf{int(big_endian)}.dcm", 5, rows=64, big_endian=big_endian)
        assert main(["render", str(path), "--frame", "3", "--out-dir", str(tmp_path / f"o{int(big_endian)}")]) == 0
        shown = read_png(json.loads(capsys.readouterr().out)["output"])
        assert np.array_equal(shown, pixels.display_frame(pydicom.dcmread(path), 3))


def test_render_of_a_dicomdir_prints_a_row_per_image_it_lists(tmp_path, capsys):
    images = [copy_testdata("CT_small.dcm", tmp_path / "src" / f"ct{i}.dcm", SOPInstanceUID=f"1.2.3.{i}")
              for i in range(2)]
    dicomdir = write_dicomdir(tmp_path / "media", images)
    assert main(["render", str(dicomdir), "--out-dir", str(tmp_path / "out")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["status"] == "ok" and os.path.exists(r["output"]) for r in rows)
    assert len({r["output"] for r in rows}) == 2


def test_a_dicomdir_under_another_name_is_followed_like_one(tmp_path, capsys):
    """A CD's index copied as INDEX.DCM is a DICOMDIR by its meta information: named on the command line,
    index, render and infer read the images it lists (not one line saying it is no image), and --out-dir may
    not lie in its folder."""
    images = [copy_testdata("CT_small.dcm", tmp_path / "src" / f"ct{i}.dcm", SOPInstanceUID=f"1.2.3.{i}")
              for i in range(2)]
    renamed = write_dicomdir(tmp_path / "media", images).rename(tmp_path / "media" / "INDEX.DCM")
    assert main(["index", str(renamed), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["files"] == 2 and not found["errors"]
    assert sum(s["instances"] for st in found["studies"] for s in st["series"]) == 2
    assert main(["render", str(renamed), "--out-dir", str(tmp_path / "out")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert main(["infer", str(renamed), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(r["status"] == "skipped" and "other modality" in r["reason"] for r in lines)
    assert main(["render", str(renamed), "--out-dir", str(tmp_path / "media" / "out")]) == 2
    assert not (tmp_path / "media" / "out").exists()


def test_a_codestream_no_decoder_reads_is_said_to_be_damaged_not_in_a_decoders_words(tmp_path, capsys):
    """pydicom's JPEG2000-embedded-sequence-delimiter.dcm (four codestream bytes overwritten, the SIZ's among
    them): every installed decoder refuses it, GDCM with a Python AttributeError; the line says the data is
    damaged, with the size it declares, before any decoder is asked."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPEG2000-embedded-sequence-delimiter.dcm")
    assert main(["render", path, "--out-dir", str(tmp_path / "out")]) == 1
    out, err = capsys.readouterr()
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["status"] == "error" and row["error"] == (
        "the compressed data is damaged or not what the header declares (a 3722445056 x 1024 image, the header "
        "256 x 1024)")
    assert "NoneType" not in err and len(err.splitlines()) == 1
