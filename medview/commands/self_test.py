"""`medview self-test`: the health check of an installed or frozen medview (exit 0 when healthy).

It proves what a frozen app most often gets wrong: decoder plugins that PyInstaller could not see (pydicom
imports them lazily by name), data files left behind (samples, the bundled model), torch or Qt plugins
missing. Each check prints one line; a failed check is one line on stderr naming what is wrong, the others
still run, and the exit code is 1. Only MEDVIEW_HOME/temp is written (the demo radiograph), and removed.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

JPEG_SAMPLE = "samples/jpeg_baseline_rgb.dcm"      # JPEG Baseline (1.2.840.10008.1.2.4.50): python-gdcm
J2K_SAMPLE = "samples/jpeg2000_lossless_mr.dcm"    # JPEG 2000 Lossless (1.2.840.10008.1.2.4.90): openjpeg


class CheckFailed(Exception):
    """A check failed for a reason already put in words."""


class CheckSkipped(Exception):
    """A check that cannot run because one it builds on failed (that one is the failure reported)."""


def _sample(relative: str) -> Path:
    from medview.resources import resource_path

    path = resource_path(relative)
    if not path.is_file():
        raise CheckFailed(f"sample {relative} is missing (looked in {path.parent})")
    return path


def check_decoders() -> str:
    """The plugins pydicom loads by name must be importable: PyInstaller cannot see them by itself."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, RLELossless

    wanted = {JPEGBaseline8Bit: "gdcm", JPEGLSLossless: "gdcm", JPEG2000Lossless: "pylibjpeg", RLELossless: "pylibjpeg"}
    found = []
    for uid, plugin in wanted.items():
        available = get_decoder(uid).available_plugins
        if plugin not in available:
            raise CheckFailed(f"no {plugin} decoder for {uid.name} (available: {', '.join(available) or 'none'})")
        found.append(f"{uid.name}: {plugin}")
    return "; ".join(found)


def _render(relative: str, transfer_syntax: str) -> str:
    from medview.core.dicom import pixels
    from medview.core.dicom.frame_reader import FrameReader
    from medview.core.dicom.source import SourceRef

    path = _sample(relative)
    ref = SourceRef(str(path))
    ds = pixels.read_dataset(ref)
    if ds.file_meta.TransferSyntaxUID != transfer_syntax:
        raise CheckFailed(f"sample {relative} is not {transfer_syntax} but {ds.file_meta.TransferSyntaxUID}")
    with FrameReader() as reader:  # decoded as the app decodes it: in a decoder process (this checks they start)
        image = pixels.display_frame(ds, 0, stored=reader.stored_frame(ds, ref, 0))
    if image.dtype.name != "uint8" or image.shape[:2] != (ds.Rows, ds.Columns):
        raise CheckFailed(f"{relative} rendered as {image.dtype} {image.shape}, expected uint8 {ds.Rows}x{ds.Columns}")
    if int(image.max()) == int(image.min()):
        raise CheckFailed(f"{relative} rendered as a blank image")
    return f"{ds.file_meta.TransferSyntaxUID.name}, {ds.Rows}x{ds.Columns} -> uint8 {'x'.join(map(str, image.shape))}"


def check_jpeg() -> str:
    return _render(JPEG_SAMPLE, "1.2.840.10008.1.2.4.50")


def check_jpeg2000() -> str:
    return _render(J2K_SAMPLE, "1.2.840.10008.1.2.4.90")


def check_model(model: str | None, workdir: Path, scored: dict) -> str:
    """Load the (bundled) model, check its checksum, score one freshly generated demo radiograph; the
    radiograph and its result are left in `scored` for the results check."""
    import pydicom

    from medview.core.inference.bundle import load_bundle
    from medview.core.inference.engine import Engine
    from medview.core.inference.results import NotApplicable
    from medview.resources import bundled_model_path

    source = Path(model) if model else bundled_model_path()
    bundle = load_bundle(source)
    engine = Engine(bundle, device="cpu")
    radiograph = _demo_radiograph(workdir)
    [result] = engine.predict_datasets([(pydicom.dcmread(radiograph), 0)])
    if isinstance(result, str):
        raise CheckFailed(f"model {bundle.ident} could not score the demo radiograph: {result}")
    if isinstance(result, NotApplicable):
        raise CheckFailed(f"model {bundle.ident} refused the demo radiograph: {result.reason}")
    scored.update(radiograph=radiograph, result=result, bundle=bundle)
    scores = ", ".join(f"{label} {p:.2f}" for label, p in result.scores.items())
    measured = "".join(f", {name.replace('_', ' ')} {m['value']:.3f}" for name, m in result.measurements.items())
    agreed = ""
    if engine.backend != "torchscript" and "torchscript" in bundle.networks:
        # the torch path runs user bundles without model.onnx: it must load and agree here too
        [other] = Engine(bundle, device="cpu", backend="torchscript").predict_datasets(
            [(pydicom.dcmread(radiograph), 0)])
        if isinstance(other, (str, NotApplicable)) or any(
                abs(other.scores[label] - p) > 1e-3 for label, p in result.scores.items()):
            raise CheckFailed(f"model {bundle.ident}: TorchScript and {engine.runs_on} disagree on the demo "
                              "radiograph")
        agreed = "; TorchScript agrees"
    return f"{bundle.ident} scored a demo radiograph on {engine.runs_on}: {scores}{measured}{agreed}"


def check_results(workdir: Path, scored: dict) -> str:
    """The review of the scored demo radiograph written as the SR, KOS and SEG that `export` and Ctrl+E write,
    and read back: highdicom's standard tables and templates are data files a frozen app can lose."""
    import pydicom

    from medview.core.dicom.scan import scan
    from medview.core.dicom.series import build_studies
    from medview.core.review.export import collect_cases, export_cases
    from medview.core.review.session import findings_from_results
    from medview.core.review.store import ReviewStore

    if "result" not in scored:
        raise CheckSkipped("the model check scored no radiograph to write results for")
    radiograph, result, bundle = scored["radiograph"], scored["result"], scored["bundle"]
    found = scan([str(radiograph)], use_cache=False)
    [study] = build_studies(found.instances)
    [instance] = [inst for series in study.series for inst in series.instances]
    uid = instance.sop_instance_uid
    with ReviewStore(workdir / "review.db", reviewer="Self^Test") as store:
        store.open_case(study.study_uid)
        findings = store.record_findings(study.study_uid, findings_from_results([{
            "sop_instance_uid": uid, "series_uid": instance.series_uid, "frame": 0, "scores": result.scores,
            "flagged": result.flagged, "model": result.model, "model_checksum": bundle.sha256}], bundle.thresholds))
        store.set_verdict(findings[0].id, "agree")
        store.toggle_key_image(study.study_uid, uid, 0, instance.series_uid)
        store.sign_off(study.study_uid)
        records = collect_cases([study], store)
    failures: list[str] = []
    written = export_cases(records, workdir / "results", ["sr"], predictions=lambda _record: {(uid, 0): result},
                           on_error=lambda _record, fmt, reason: failures.append(f"{fmt.upper()}: {reason}"))
    if failures:
        raise CheckFailed("; ".join(failures))
    kinds = sorted(pydicom.dcmread(path).SOPClassUID.name for path in written)
    wanted = {"Comprehensive 3D SR Storage", "Key Object Selection Document Storage", "Segmentation Storage"}
    if not wanted <= set(kinds):
        raise CheckFailed(f"wrote {', '.join(kinds) or 'nothing'}; expected {', '.join(sorted(wanted))}")
    return f"{len(written)} objects written and read back: {', '.join(kinds)}"


def _demo_radiograph(workdir: Path) -> Path:
    """One synthetic chest radiograph from medview.core.demo, written below `workdir`."""
    from medview.core import demo

    summary = demo.generate_demo(workdir / "demo", cases=1, seed=0, ct_slices=0)
    if not summary.radiographs:
        raise CheckFailed("medview.core.demo wrote no radiograph")
    return summary.radiographs[0]


def check_pacs(workdir: Path) -> str:
    """The network stack a frozen app most easily loses (pynetdicom's SOP classes and services, the DICOMweb
    client): C-ECHO and C-STORE of a sample to medview's own listener on 127.0.0.1, nothing beyond it."""
    import dicomweb_client  # noqa: F401 - imported for the check: DICOMweb servers need it

    from medview.core.net import LocalSettings, PacsCache, StorageListener, echo, resolve_server, send_paths

    local = LocalSettings(listen_port=0)  # a free port; servers.toml is not read
    cache = PacsCache(workdir / "pacs")
    with StorageListener(local, cache) as listener:
        port = listener.port
        server = resolve_server(f"dicom://{local.ae_title}@127.0.0.1:{port}", {})
        echo(server, local)
        (sent,) = send_paths(server, [str(_sample(JPEG_SAMPLE))], local=local)
    if sent.error:
        raise CheckFailed(f"C-STORE to its own listener failed: {sent.error}")
    stored = sum(len(cache.present(uid)) for uid in cache.studies())
    if stored != 1:
        raise CheckFailed(f"its own listener stored {stored} instances of the one sent")
    return f"C-ECHO and C-STORE to its own listener on 127.0.0.1:{port}; DICOMweb client loads"


def check_window() -> str:
    """The main window builds offscreen: Qt plugins, styles and icons are all where the app expects them."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    from medview.app import create_app

    # Qt's chatter (e.g. the offscreen plugin's "does not support propagateSizeHints()") goes to the log file,
    # so that stderr carries only the self-test's own lines: one per failure
    qt_log = logging.getLogger("qt")
    serious = (QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
    qInstallMessageHandler(lambda kind, _ctx, msg: qt_log.log(logging.WARNING if kind in serious else logging.INFO, msg))
    app, window = create_app(["medview", "gui"])
    window.show()
    app.processEvents()
    title = window.windowTitle()
    size = window.size()
    window.close()
    app.processEvents()
    return f"{title!r} {size.width()}x{size.height()} on the {app.platformName()} platform"


# what Qt's xcb platform plugin loads beyond Qt itself (Debian package names), absent on a fresh desktop install
XCB_LIBRARIES = {"libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
                 "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0"}


def check_display(platform: str | None, display: str | None) -> str:
    """The platform the app itself will use: where it is X11 (xcb), the libraries the xcb plugin needs must
    load, or the app aborts at start although the offscreen checks pass."""
    import ctypes

    if platform and platform not in ("xcb",):
        return f"the app uses the {platform} platform (QT_QPA_PLATFORM)"
    if not sys.platform.startswith("linux"):
        return "the system's own platform plugin"
    if not platform and not display:
        return "no display here (no DISPLAY): the app's X11 libraries are not needed to check"
    missing = []
    for library, package in XCB_LIBRARIES.items():
        try:
            ctypes.CDLL(library)
        except OSError:
            missing.append(package)
    if missing:
        raise CheckFailed("Qt's xcb platform plugin cannot start without " + ", ".join(missing) +
                          f" (install: apt-get install {' '.join(missing)}, or scripts/system-deps.sh)")
    return f"X11 (xcb) on {display or 'the default display'}: its libraries load"


def run(args) -> int:
    app_platform, display = os.environ.get("QT_QPA_PLATFORM"), os.environ.get("DISPLAY")
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # the checks below need no display, on a desktop or in CI
    from medview import __version__
    from medview.core.errors import MedviewError
    from medview.core.home import home_dir

    debug = bool(getattr(args, "debug", False))
    if not debug:  # progress notes of the app (INFO) belong in its log file, not on the console
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:
                handler.setLevel(logging.WARNING)
    model = getattr(args, "model", None)
    frozen = " (frozen)" if getattr(sys, "frozen", False) else ""
    print(f"medview {__version__}{frozen} self-test")
    failures = 0
    with tempfile.TemporaryDirectory(dir=home_dir("temp"), prefix="self-test-") as tmp:
        scored: dict = {}
        checks: list[tuple[str, Callable[[], str]]] = [
            ("decoder plugins", check_decoders),
            ("JPEG sample", check_jpeg),
            ("JPEG 2000 sample", check_jpeg2000),
            ("model", lambda: check_model(model, Path(tmp), scored)),
            ("AI results as DICOM", lambda: check_results(Path(tmp), scored)),
            ("PACS", lambda: check_pacs(Path(tmp))),
            ("main window", check_window),
            ("display platform", lambda: check_display(app_platform, display)),
        ]
        for name, check in checks:
            t0 = time.perf_counter()
            try:
                detail = check()
            except CheckSkipped as exc:
                print(f"skip  {name}: {exc}")
            except (CheckFailed, MedviewError) as exc:
                failures += 1
                _fail(name, str(exc))
            except Exception as exc:  # noqa: BLE001 - a health check reports every failure as one line
                failures += 1
                if debug:
                    traceback.print_exc()
                _fail(name, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": "))
            else:
                print(f"ok    {name}: {detail} ({(time.perf_counter() - t0) * 1e3:.0f} ms)")
    if failures:
        print(f"medview self-test: {failures} check(s) failed")
        return 1
    print("medview self-test: all checks passed")
    return 0


def _fail(name: str, reason: str) -> None:
    sys.stdout.flush()
    print(f"medview self-test: {name} failed: {reason}", file=sys.stderr, flush=True)
