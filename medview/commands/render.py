"""`medview render PATH... --out-dir DIR [--frame N] [--window CENTER WIDTH | --preset NAME]` (SPEC section 1).

With `--plane axial|coronal|sagittal --at X Y Z [--slab MM --mode M]`, PATH is one series and the output one
reformatted plane (`medview.commands._render_plane`).

Each image as the viewer shows it (the display pipeline of SPEC section 3, `medview.core.dicom.pixels`) to a
PNG of its native matrix size: 8-bit grey for monochrome, RGB for colour. One JSON line per image on stdout,
one line per failure on stderr; exit 0 when every input rendered, 1 when some failed (the others are still
rendered), 2 for unusable arguments. Imports neither Qt nor torch.

A file given by name is rendered or reported; folders, zips and DICOMDIRs are scanned
(`medview.core.dicom.scan`): their image instances are rendered, files that are not DICOM and instances
without pixels (reports, presentation states) are passed over. PNGs are never written into a folder the
studies are read from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import zipfile

from medview.commands._output import print_json_line, report_failure
from medview.commands._render_plane import plane_options, render_plane
from medview.core.dicom.scan import is_dicomdir
from medview.core.dicom.source import SourceRef, printable
from medview.core.errors import MedviewError, UsageError, without_file
from medview.core.output_folder import check_output_folder, make_output_folder

log = logging.getLogger(__name__)

_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")


def _is_container(path: str) -> bool:
    """Folders, zips and DICOMDIRs are scanned; anything else is one file."""
    if os.path.isdir(path):
        return True
    if is_dicomdir(path):
        return True
    return path.lower().endswith(".zip") and os.path.isfile(path) and zipfile.is_zipfile(path)


def _check_out_dir(out_dir: str, paths: list[str]) -> str:
    """Create --out-dir; refused where studies are read from (SPEC section 7). UsageError (exit 2)."""
    real_out = check_output_folder(out_dir, paths, option="--out-dir", below_files=False)  # beside a zip: fine
    make_output_folder(real_out, f"--out-dir {out_dir}")
    return real_out


def _window_arg(args):
    """The window asked for on the command line, or None for the file's own."""
    from medview.core.dicom.pixels import Window, preset_window

    if getattr(args, "window", None):
        center, width = (float(v) for v in args.window)
        if not width > 0 or width != width or center != center:
            raise UsageError(f"--window width must be a number greater than 0, not {args.window[1]}")
        return Window(center, width)
    if getattr(args, "preset", None):
        try:
            return preset_window(args.preset)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    return None


class _Names:
    """PNG names derived from the input file names, unique within one run."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def next(self, ref: SourceRef, frame: int) -> str:
        # printable: the PNG's name is the one the JSON line can show
        base = printable(os.path.basename((ref.member or ref.path).rstrip("/\\"))) or "image"
        if base.lower().endswith(_DICOM_SUFFIXES):
            base = base[: base.rfind(".")] or base
        if frame:
            base += f"_frame{frame}"
        name, k = base, 1
        while name.lower() in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name.lower())
        return name + ".png"


def _shown(given: str, ref: SourceRef) -> str:
    """The input as the user would write it: relative inputs give relative paths below them."""
    if os.path.isabs(given) or ref.member is not None:
        return ref.display()
    try:
        rel = os.path.relpath(ref.path)
    except ValueError:
        return ref.display()
    return rel


def _expand(given: str):
    """(input shown, SourceRef or None, error or None, InstanceInfo or None) for each image below one input."""
    path = os.path.expanduser(given)
    if not _is_container(path):
        yield given, SourceRef(path), None, None
        return
    from medview.core.dicom.scan import scan

    result = scan([path])
    found = False
    for err in result.errors:
        found = True
        yield err.file, None, err.error, None
    for inst in result.instances:
        if not inst.has_pixels:
            continue
        found = True
        yield _shown(given, inst.ref), inst.ref, None, inst
    if not found:
        yield given, None, "no DICOM images found", None


def _render_one(ref: SourceRef, out_path: str, frame: int, window, preset: str | None = None,
                reader=None, info=None) -> list[float] | None:
    """Render one image to `out_path`; the window used as [center, width] (None: colour or VOI LUT).

    `preset`: a window preset's name, looked up in the presets of the image's modality only. `reader`: the
    run's `FrameReader` (compressed frames are decoded in the decoder pool, never in this process). `info`:
    the scan's header facts of the file, where it was found by a scan.
    """
    from medview.core.dicom.frame_reader import FrameReader
    from medview.core.dicom.loader import read_native_frame
    from medview.core.dicom.pixels import Window, display_frame_voi, preset_window, read_dataset
    from medview.core.png import write_png

    stored = read_native_frame(ref, frame, info)  # uncompressed: only this frame's bytes are read
    ds = read_dataset(ref, stop_before_pixels=stored is not None)
    if preset:
        modality = str(ds.get("Modality", "") or "")
        try:
            window = preset_window(preset, modality, only_modality=True)
        except KeyError as exc:
            raise MedviewError(exc.args[0]) from None
    if stored is None and reader is None:
        with FrameReader() as own:
            stored = own.stored_frame(ds, ref, frame)
    elif stored is None:
        stored = reader.stored_frame(ds, ref, frame)
    image, voi = display_frame_voi(ds, frame, window, stored=stored)
    write_png(out_path, image)
    if isinstance(voi, Window):
        return [float(voi.center), float(voi.width)]
    return None


def _reason(exc: Exception, ref: SourceRef | None) -> str:
    """The message without the file name prefix (the JSON line names the input already)."""
    return without_file(str(exc), ref.display() if ref is not None else None)


def run(args) -> int:
    """Render every input; 0 when all rendered, 1 when some failed, UsageError (2) for bad arguments."""
    debug = bool(getattr(args, "debug", False))
    frame = int(getattr(args, "frame", 0) or 0)
    if frame < 0:
        raise UsageError(f"--frame must be 0 or more, not {frame}")
    window = _window_arg(args)
    plane = plane_options(args)
    out_dir = _check_out_dir(args.out_dir, list(args.paths))
    if plane is not None:  # one reformatted plane of one series
        return render_plane(list(args.paths), out_dir, plane, window, debug)
    failures = _render_all(args, out_dir, frame, window, debug)  # a closed pipe: handled in cli.main
    return 1 if failures else 0


def _render_all(args, out_dir: str, frame: int, window, debug: bool) -> int:
    """Render every input, printing its JSON line(s); the number of failures."""
    from medview.core.dicom.frame_reader import FrameReader
    from medview.core.dicom.scan import quiet_pydicom

    names = _Names()
    failures = 0
    # pydicom's warnings about messy values are not failures: each failure is one line of our own (SPEC 1)
    with contextlib.nullcontext() if debug else quiet_pydicom(), FrameReader() as reader:
        items = [item for given in args.paths for item in _expand(given)]
        # compressed frames of the next files decode in the pool while this one is written
        reader.plan((ref, frame, info) for _, ref, error, info in items if error is None)
        for shown, ref, error, info in items:
            if error is None:
                try:
                    out_path = os.path.join(out_dir, names.next(ref, frame))
                    used = _render_one(ref, out_path, frame, window, getattr(args, "preset", None), reader, info)
                except MedviewError as exc:
                    error = _reason(exc, ref)
                except OSError as exc:
                    error = f"PNG cannot be written ({exc.strerror or exc})"
                except Exception as exc:  # one odd file must not stop the others (SPEC section 1)
                    if debug:
                        raise
                    log.debug("render failed for %s", shown, exc_info=True)
                    error = f"cannot be rendered ({type(exc).__name__}: {exc})"
            if error is not None:
                failures += 1
                print_json_line({"input": shown, "status": "error", "error": error})
                report_failure(shown, error)
                continue
            print_json_line({"input": shown, "status": "ok", "output": out_path, "frame": frame,
                             "window": used})
    return failures
