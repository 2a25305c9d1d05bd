"""`medview render PATH --plane axial|coronal|sagittal --at X Y Z [--slab MM --mode mip|minip|avg]`.

PATH is one series (a folder or its files): it is scanned, its stack loaded as the viewer loads it, and one
plane through the patient point reformatted (`medview.core.viewing.mpr`), windowed through the display
pipeline and written as one PNG. The JSON line adds the plane's geometry (SPEC section 1). Files of the series
that cannot be read are reported one per line and become gaps; the plane is still written (exit 1).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass

from medview.commands._output import print_json_line, report_failure
from medview.core.dicom.source import printable
from medview.core.errors import MedviewError, UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlaneOptions:
    plane: str
    point: tuple[float, float, float]
    slab_mm: float
    mode: str


def plane_options(args) -> PlaneOptions | None:
    """The --plane options, or None without --plane; UsageError (exit 2) for options that do not fit."""
    plane = getattr(args, "plane", None)
    at, slab, mode = getattr(args, "at", None), getattr(args, "slab", None), getattr(args, "mode", None)
    if plane is None:
        given = [name for name, value in (("--at", at), ("--slab", slab), ("--mode", mode)) if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only go with --plane axial|coronal|sagittal")
        return None
    if at is None:
        raise UsageError("--plane needs the patient point it goes through: --at X Y Z (mm)")
    if not all(math.isfinite(v) for v in at):
        raise UsageError(f"--at needs three numbers (mm), not {' '.join(map(str, at))}")
    if getattr(args, "frame", 0):
        raise UsageError("--frame does not go with --plane (the plane is reformatted from the whole series)")
    if slab is not None and not (math.isfinite(slab) and slab > 0):
        raise UsageError(f"--slab must be a thickness in mm greater than 0, not {slab}")
    if mode is not None and slab is None:
        raise UsageError("--mode needs --slab MM (the thickness the maximum, minimum or mean is taken over)")
    return PlaneOptions(plane, (float(at[0]), float(at[1]), float(at[2])), float(slab or 0.0), mode or "mip")


def _shown(paths: list[str]) -> str:
    """The input as the JSON line names it: the path given, or the folder the given files share."""
    if len(paths) == 1:
        return paths[0]
    try:
        return os.path.commonpath(paths)
    except ValueError:
        return paths[0]


def _png_name(shown: str, options: PlaneOptions) -> str:
    base = printable(os.path.basename(os.path.normpath(shown))) or "series"
    name = f"{base}_{options.plane}"
    if options.slab_mm:
        name += f"_{options.mode}{options.slab_mm:g}mm"
    return name + ".png"


def render_plane(paths: list[str], out_dir: str, options: PlaneOptions, window, debug: bool) -> int:
    """Reformat and write the plane; its JSON line (and one per unreadable file); 0, or 1 on any failure."""
    from medview.core.dicom.scan import quiet_pydicom

    shown = _shown(list(paths))
    failures = 0

    def fail(name: str, reason: str) -> None:
        nonlocal failures
        failures += 1
        print_json_line({"input": name, "status": "error", "error": reason})
        report_failure(name, reason)

    with contextlib.nullcontext() if debug else quiet_pydicom():
        try:
            line = _render(paths, shown, out_dir, options, window, fail)
        except MedviewError as exc:
            fail(shown, str(exc))
            return 1
        except OSError as exc:
            fail(shown, f"PNG cannot be written ({exc.strerror or exc})")
            return 1
        except Exception as exc:  # no traceback for bad input (SPEC section 1)
            if debug:
                raise
            log.debug("plane rendering failed for %s", shown, exc_info=True)
            fail(shown, f"cannot be reformatted ({type(exc).__name__}: {exc})")
            return 1
    print_json_line(line)
    return 1 if failures else 0


def _render(paths: list[str], shown: str, out_dir: str, options: PlaneOptions, window, fail) -> dict:
    import numpy as np

    from medview.core.dicom import pixels
    from medview.core.dicom.loader import load_stack
    from medview.core.dicom.scan import scan
    from medview.core.dicom.series import build_studies
    from medview.core.png import write_png
    from medview.core.viewing import mpr

    found = scan([os.path.expanduser(p) for p in paths])
    for err in found.errors:
        fail(err.file, err.error)
    series = [s for study in build_studies(found.instances) for s in study.series if s.has_images]
    if not series:
        raise mpr.ReformatError("no DICOM images found")
    if len(series) > 1:
        raise mpr.ReformatError(f"{len(series)} series found; --plane reformats one series "
                                "(give the folder or the files of one series)")
    stack = series[0].stacks[0]  # the largest stack of one orientation: a localizer is left out
    mpr.volume_geometry(stack)  # no geometry: said before any pixel is read
    volume = load_stack(stack)
    for err in volume.errors:
        fail(err.file, err.error)
    geometry = mpr.volume_geometry(stack, volume.loaded)
    x, y, z = options.point
    if not geometry.contains(options.point):
        raise mpr.ReformatError(f"the point ({x:g}, {y:g}, {z:g}) mm is outside the volume")
    headers = []
    for inst in stack.instances:
        try:
            headers.append(pixels.read_dataset(inst.ref, stop_before_pixels=True))
        except MedviewError:
            headers.append(None)
    plane = mpr.plane_through(geometry, options.plane, options.point)
    values = mpr.reformat(volume.array, geometry, plane, mpr.stack_transforms(headers, stack.frames),
                          options.slab_mm, options.mode)
    gap = geometry.gap_at(options.point)
    if gap is not None and not np.isfinite(values).any():  # nothing to show: said, not a black picture
        raise mpr.ReformatError(
            f"the point ({x:g}, {y:g}, {z:g}) mm lies in a gap of the series: no slice between {gap[0]:g} and "
            f"{gap[1]:g} mm along the slice normal (the slices are {geometry.slice_spacing:g} mm apart elsewhere)")
    nearest = int(geometry.frame_index[np.argmin(np.abs(geometry.offsets - np.dot(options.point, geometry.normal)))])
    instance, frame = stack.frames[nearest]
    header = headers[instance]
    voi = window
    if voi is None and header is not None:  # the window of the acquired image nearest the point
        voi = pixels.display_voi(header, frame, volume.array[nearest])
    if voi is None:
        voi = pixels.default_window(values)
    invert = bool(header is not None and pixels.is_inverted(header))
    out_path = os.path.join(out_dir, _png_name(shown, options))
    write_png(out_path, mpr.display_plane(values, voi, invert))
    line = {"input": shown, "status": "ok", "output": out_path, "frame": 0,
            "window": [float(voi.center), float(voi.width)] if isinstance(voi, pixels.Window) else None}
    line.update(plane.to_json())
    if options.slab_mm:
        line.update({"slab": options.slab_mm, "mode": options.mode})
    return line
