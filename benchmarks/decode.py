"""Compressed series: the decoder pool against SimpleITK, and against decoding one frame after another.

Data (`.bench/<size>/ct<n>_j2k`, `ct<n>_jls`, `ct<n>_htj2k`, written once): the benchmarks' minimal CT
writer's 512x512 int16 slices (300; quick 60), each compressed losslessly: JPEG 2000 (pydicom's encoder,
OpenJPEG), JPEG-LS (pydicom's encoder, CharLS) and HTJ2K (OpenJPH through imagecodecs, the one HTJ2K
encoder installable here; without it that figure is unavailable).

`decode_series_<kind>`: `load_stack` of the scanned stack (its frames decoded in the decoder pool's worker
processes, written into the stack's shared memory), pool started and warm, best of N runs that alternate
with the peers' (a shared machine's other work weighs on each alike). Peer: SimpleITK's
`ImageSeriesReader.Execute()` on the same sorted files; the goal is a speedup over it of at least 0.9 x the
cores. `also`: the same frames decoded one after another in this process (`pixels.read_dataset` +
`stored_frame` into a preallocated array: the loader before the pool). Where SimpleITK cannot read the
files (HTJ2K), the in-process decoding is the peer.
`decode_first_image_j2k`: from the `load_stack` call to its first `on_frame`, pool warm.
`decode_pool_start`: a fresh pool's first frame (forkserver and worker start included): what the first
compressed image costs once per process.
"""

from __future__ import annotations

import gc
import resource
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks import data
from benchmarks._common import BENCH_DIR, figure, log

SLICES = {False: 300, True: 60}


KINDS = {"j2k": "JPEG 2000 lossless", "jls": "JPEG-LS lossless", "htj2k": "HTJ2K lossless"}


class NoEncoder(RuntimeError):
    """No encoder for this kind is installed (the reason is the message)."""


def _series(kind: str, quick: bool) -> Path:
    """A folder of `SLICES` compressed CT slices of `kind` (a key of KINDS), written once."""
    compress = _encoder(kind)
    n = SLICES[quick]
    folder = BENCH_DIR / ("quick" if quick else "full") / f"ct{n}_{kind}"
    marker = folder.parent / f"{folder.name}.complete"
    if marker.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    plain = folder.parent / f"{folder.name}.plain"
    if plain.exists():
        shutil.rmtree(plain)
    plain.mkdir(parents=True)
    folder.mkdir(parents=True)
    log(f"[bench] writing a {n}-slice {KINDS[kind]} CT series to {folder} (once)")
    data.write_minimal_ct(plain, n, rows=512, cols=512, seed=3)
    for path in sorted(plain.iterdir()):
        compress(path, folder / path.name)
    shutil.rmtree(plain)
    marker.write_text("ok")
    return folder


def _encoder(kind: str):
    """A function (plain file, compressed file) for `kind`; raises NoEncoder where none is installed."""
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

    if kind in ("j2k", "jls"):
        def with_pydicom(src: Path, dest: Path) -> None:
            ds = dcmread(src)
            ds.compress(JPEG2000Lossless if kind == "j2k" else JPEGLSLossless)
            ds.save_as(dest, enforce_file_format=True)
        return with_pydicom
    try:
        import imagecodecs
        if not imagecodecs.HTJ2K.available:
            raise ImportError("imagecodecs was built without HTJ2K")
    except (ImportError, AttributeError) as exc:
        raise NoEncoder(f"no HTJ2K encoder installed (imagecodecs with OpenJPH: {exc})") from None

    def with_openjph(src: Path, dest: Path) -> None:
        ds = dcmread(src)
        ds.PixelData = encapsulate([imagecodecs.htj2k_encode(ds.pixel_array)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"  # HTJ2K lossless
        ds.save_as(dest, enforce_file_format=True)
    return with_openjph


def _stack(folder: Path):
    from medview.core.dicom.scan import scan
    from medview.core.dicom.series import build_studies

    result = scan([str(folder)], use_cache=False)
    stacks = [st for study in build_studies(result.instances) for st in study.stacks]
    return max(stacks, key=lambda st: st.frame_count)


def _one_after_another(stack) -> np.ndarray:
    """Every frame decoded in this process, in order, into one array (the loader before the pool)."""
    from medview.core.dicom import pixels

    out = None
    for k, (index, frame) in enumerate(stack.frames):
        values = pixels.stored_frame(pixels.read_dataset(stack.instances[index].ref), frame)
        if out is None:
            out = np.empty((len(stack.frames),) + values.shape, values.dtype)
        out[k] = values
    return out


def _pool_load(stack) -> tuple[float, float, np.ndarray]:
    from medview.core.dicom.loader import load_stack

    first: list[float] = []
    t0 = time.perf_counter()
    volume = load_stack(stack, on_frame=lambda k: first or first.append(time.perf_counter()))
    t1 = time.perf_counter()
    if volume.errors or not volume.loaded.all():
        raise RuntimeError(f"the pool left frames undecoded: {volume.errors[:1]}")
    return t1 - t0, first[0] - t0, volume.array


def _series_figure(kind: str, quick: bool, repeats: int) -> tuple[dict, float]:
    from medview.core.dicom.decoder_pool import decoder_pool

    folder = _series(kind, quick)
    stack = _stack(folder)
    n = stack.frame_count
    pool = decoder_pool()
    reference = _one_after_another(stack)
    if not np.array_equal(reference, _pool_load(stack)[2]):  # also the warm-up: workers started, decoders loaded
        raise RuntimeError("the pool's values differ from in-process decoding")
    files = [str(inst.ref.path) for inst in stack.instances]
    sitk_load, sitk_missing = _simpleitk_reader(files, reference)
    sitk_one_thread = _simpleitk_reader(files, reference, threads=1)[0]
    del reference

    # the three alternate, so that what else runs on the machine weighs on each alike; best of each kept
    runs, serial, peer, peer_one_thread = [], [], [], []
    for _ in range(max(1, repeats)):
        runs.append(_pool_load(stack)[:2])
        gc.collect()
        serial.append(_timed(lambda: _one_after_another(stack)))
        if sitk_load is not None:
            peer.append(_timed_with_cpu(sitk_load))
            peer_one_thread.append(_timed_with_cpu(sitk_one_thread))
    pool_s, first_s = min(r[0] for r in runs), min(r[1] for r in runs)
    serial_s = min(serial)
    cores = pool.max_workers
    goal = 0.9 * cores
    in_process = {"peer": f"the same {n} frames decoded one after another in this process",
                  "peer_value": round(serial_s * 1e3, 1), "ratio": round(pool_s / serial_s, 3),
                  "speedup_vs_peer": round(serial_s / pool_s, 2)}
    common = dict(slices=n, workers=cores, transfer_syntax=stack.instances[0].transfer_syntax,
                  fast_path_decoders=_fast_path_decoders(), load_average_1min=round(_load_average(), 2))
    if peer:
        sitk_s, sitk_cpu = min(peer)
        one_s, one_cpu = min(peer_one_thread)
        one_thread = {"peer": "SimpleITK with its threads set to 1 (ImageSeriesReader.SetNumberOfThreads(1))",
                      "peer_value": round(one_s * 1e3, 1), "ratio": round(pool_s / one_s, 3),
                      "speedup_vs_peer": round(one_s / pool_s, 2), "peer_cores_used": round(one_cpu / one_s, 2)}
        # the peer is not one core's work: ITK reads and GDCM's decoders run threads of their own, so the
        # speedup the pool can reach is its cores over the cores the peer already used
        fig = figure(pool_s * 1e3, "ms", peer="SimpleITK ImageSeriesReader.Execute, same files",
                     peer_value=sitk_s * 1e3, better="lower",
                     goal=f"speedup >= 0.9 x the pool's {cores} workers ({goal:.1f})", met=sitk_s / pool_s >= goal,
                     speedup_vs_peer=round(sitk_s / pool_s, 2), peer_cores_used=round(sitk_cpu / sitk_s, 2),
                     also=[in_process, one_thread], **common)
    else:
        fig = figure(pool_s * 1e3, "ms", peer=in_process["peer"], peer_value=serial_s * 1e3, better="lower",
                     goal=f"speedup >= 0.9 x the pool's {cores} workers ({goal:.1f})", met=serial_s / pool_s >= goal,
                     speedup_vs_peer=in_process["speedup_vs_peer"], simpleitk=sitk_missing, **common)
    return fig, first_s


def _simpleitk_reader(files: list[str], reference: np.ndarray, threads: int | None = None):
    """(a function timing nothing but SimpleITK's series read, None) or (None, why it cannot be the peer);
    `threads`: the reader's thread count (None: SimpleITK's default, all cores)."""
    try:
        import SimpleITK as sitk
    except ImportError:
        return None, "SimpleITK is not installed"

    def load() -> None:
        reader = sitk.ImageSeriesReader()
        if threads is not None:
            reader.SetNumberOfThreads(threads)
        reader.SetFileNames(files)
        sitk.GetArrayViewFromImage(reader.Execute())

    try:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files[:2])
        first = sitk.GetArrayFromImage(reader.Execute())
    except RuntimeError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return None, f"SimpleITK cannot read these files ({lines[-1][:160] if lines else 'error'})"
    if first.shape[1:] != reference.shape[1:]:
        return None, f"SimpleITK reads {first.shape[1:]}, not {reference.shape[1:]}"
    return load, None


def _fast_path_decoders() -> dict:
    """Which decoder the pool's fast path uses per syntax (`fragments`), as installed here."""
    from medview.core.dicom import fragments

    def name(fn) -> str | None:
        return None if fn is None else f"{fn.__module__}.{fn.__name__}"

    return {"jpeg2000": name(fragments._openjpeg), "htj2k": name(fragments._htj2k),
            "jpeg_ls": name(fragments._imagecodecs_jpegls or fragments._charls)}


def _load_average() -> float:
    import os

    return os.getloadavg()[0]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _timed_with_cpu(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process's threads) of one call."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = _timed(fn)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cold_start(quick: bool) -> float:
    """A fresh pool's first frame, in a fresh process (the forkserver is per process)."""
    from benchmarks._common import run_python_json

    folder = _series("j2k", quick)
    code = r"""
import json, sys, time
from medview.core.dicom.frame_reader import FrameReader
from medview.core.dicom import pixels
from medview.core.dicom.source import SourceRef
ref = SourceRef(sys.argv[1])
ds = pixels.read_dataset(ref)
t0 = time.perf_counter()
with FrameReader() as reader:
    reader.stored_frame(ds, ref, 0)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""
    first = sorted(folder.iterdir())[0]
    return run_python_json(code, str(first))["seconds"]


def run(quick: bool, repeats: int) -> dict:
    from benchmarks._common import unavailable

    figures = {}
    j2k, first_s = _series_figure("j2k", quick, repeats)
    figures["decode_series_j2k"] = j2k
    figures["decode_first_image_j2k"] = figure(first_s * 1e3, "ms", peer=None, better="lower",
                                               goal="value < 100 ms", met=first_s < 0.1)
    figures["decode_series_jls"] = _series_figure("jls", quick, repeats)[0]
    try:
        figures["decode_series_htj2k"] = _series_figure("htj2k", quick, repeats)[0]
    except NoEncoder as exc:
        figures["decode_series_htj2k"] = unavailable(str(exc))
    start_s = min(_cold_start(quick) for _ in range(max(1, min(repeats, 2))))
    figures["decode_pool_start"] = figure(start_s * 1e3, "ms", peer=None, better="lower",
                                          goal="(reported: once per process, at the first compressed image)",
                                          met=None)
    return figures
