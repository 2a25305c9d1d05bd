"""The commands of SPEC section 1.

Imports lazily: `index`, `render` and `demo-data` must start fast and never import Qt or torch, so each
command lives in `medview.commands.<name>` and is imported only when chosen. Bad input never prints a
traceback (unless --debug): a MedviewError becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from medview import __version__
from medview.core.settings import DEVICES

COMMANDS = ("gui", "demo", "demo-data", "index", "render", "infer", "export", "pacs", "listen", "self-test")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medview",
        description="Offline DICOM reading workstation with on-device AI findings "
        "(research use only, not for diagnosis).",
    )
    parser.add_argument("--version", action="store_true", help="print the version and build information")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gui", help="the desktop app (default)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="a folder, files, a .zip or a DICOMDIR")
    p.add_argument("--model", help="model bundle folder or TorchScript file (default: the bundled model)")
    p.add_argument("--device", choices=DEVICES, default="auto")

    p = sub.add_parser("demo", help="the app on the built-in demo studies with the bundled model")
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--device", choices=DEVICES, default="auto")

    p = sub.add_parser("demo-data", help="write synthetic studies")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--cases", type=int, default=20, help="number of chest radiographs (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ct-slices", type=int, default=200, help="slices of the demo CT (0: no CT)")

    p = sub.add_parser("index", help="scan studies; --json prints one JSON document")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the index cache")

    p = sub.add_parser("render", help="each image as the viewer shows it, to PNG")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--frame", type=int, default=0)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--window", nargs=2, type=float, metavar=("CENTER", "WIDTH"))
    group.add_argument("--preset", metavar="NAME", help="a window preset, e.g. lung, bone, soft-tissue")
    p.add_argument("--plane", choices=("axial", "coronal", "sagittal"),
                   help="one reformatted plane of one series (PATH: its folder or files)")
    p.add_argument("--at", nargs=3, type=float, metavar=("X", "Y", "Z"),
                   help="with --plane: the patient point (mm, DICOM patient coordinates) it goes through")
    p.add_argument("--slab", type=float, metavar="MM", help="with --plane: a slab this thick (mm)")
    p.add_argument("--mode", choices=("mip", "minip", "avg"),
                   help="with --slab: maximum (default), minimum or mean intensity")

    p = sub.add_parser("infer", help="run the model; --json prints one JSON line per image")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-cache", action="store_true", help="do not read or write the AI results cache")

    p = sub.add_parser("export", help="review results out of the app")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--format", default="csv,json", help="comma-separated: csv,json,pdf,sr")
    p.add_argument("--anonymize", action="store_true")

    p = sub.add_parser("pacs", help="PACS query/retrieve and sending (DIMSE or DICOMweb)")
    pacs = p.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    server_help = "a name from MEDVIEW_HOME/servers.toml, dicom://CALLED_AE@host:port or http(s)://host/path"
    q = pacs.add_parser("echo", help="C-ECHO or a QIDO-RS probe; exit 0 when the server answers")
    q.add_argument("server", metavar="SERVER", help=server_help)
    q = pacs.add_parser("find", help="study-level query")
    q.add_argument("server", metavar="SERVER", help=server_help)
    q.add_argument("--patient-id", default="", metavar="ID")
    q.add_argument("--patient-name", default="", metavar="N", help="wildcards * and ? allowed")
    q.add_argument("--study-date", default="", metavar="RANGE", help="YYYYMMDD or YYYYMMDD-YYYYMMDD")
    q.add_argument("--modality", default="", metavar="M")
    q.add_argument("--accession", default="", metavar="A")
    q.add_argument("--json", action="store_true", help="one JSON line per study")
    q = pacs.add_parser("get", help="retrieve studies into medview's cache (resumes, never duplicates)")
    q.add_argument("server", metavar="SERVER", help=server_help)
    q.add_argument("study_uids", nargs="+", metavar="STUDY_UID")
    q.add_argument("--json", action="store_true", help="one JSON line per study")
    q = pacs.add_parser("send", help="send DICOM files (C-STORE or STOW-RS)")
    q.add_argument("server", metavar="SERVER", help=server_help)
    q.add_argument("paths", nargs="+", metavar="PATH")

    p = sub.add_parser("listen", help="receive studies pushed by a PACS or modality (C-STORE)")
    p.add_argument("--ae", help="medview's AE title (default: servers.toml, else MEDVIEW)")
    p.add_argument("--port", type=int, help="port to listen on (default: servers.toml, else 11112)")
    p.add_argument("--model", help="model bundle that scores what arrives (default: the bundled model)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--no-ai", action="store_true", help="receive and index only")

    p = sub.add_parser("self-test", help="health check of the (packaged) app; exit 0 when healthy")
    p.add_argument("--model", help="model bundle to check (default: the bundled model)")
    return parser


def normalise_argv(argv: list[str]) -> list[str]:
    """`medview` and `medview PATH` mean `medview gui [PATH]`."""
    flags = [a for a in argv if a in ("--debug",)]
    rest = [a for a in argv if a not in flags]
    if not rest:
        return flags + ["gui"]
    first = rest[0]
    if first in COMMANDS or first in ("-h", "--help", "--version"):
        return flags + rest
    return flags + ["gui"] + rest


def version_text() -> str:
    import platform

    text = f"medview {__version__} (Python {platform.python_version()}, {platform.system()} {platform.machine()})"
    return text + _build_text()


def _build_text() -> str:
    """A second line "build <commit> <date> <variant> (<platform>)" from resources/build-info.json, which only
    the frozen app has (packaging/medview.spec writes it); empty from source."""
    import json

    from medview.resources import resource_path

    try:
        info = json.loads(resource_path("build-info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""  # running from source: no build
    commit = (info.get("commit") or "unknown") + ("+dirty" if info.get("dirty") else "")
    return f"\nbuild {commit} {info.get('built_utc', '')} {info.get('variant', '')} ({info.get('platform', '')})"


class OneLineFormatter(logging.Formatter):
    """Console records without tracebacks (SPEC: bad input never prints one); --debug and the log file keep
    them. Why here: libraries log decoder failures with `logger.exception` (pydicom does), and those records
    reach the console whatever medview catches."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved

def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(normalise_argv(argv))
    console = logging.StreamHandler()
    fmt = "%(levelname)s %(name)s: %(message)s"
    console.setFormatter(logging.Formatter(fmt) if args.debug else OneLineFormatter(fmt))
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, handlers=[console])
    if args.version:
        print(version_text())
        return 0
    module_name = args.command.replace("-", "_")
    from importlib import import_module

    from medview.core.errors import MedviewError

    try:
        module = import_module(f"medview.commands.{module_name}")
        return int(module.run(args) or 0)
    except MedviewError as exc:
        if args.debug:
            raise
        from medview.core.dicom.source import printable

        print(printable(f"medview {args.command}: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `medview index --json | head`: the reader left; say nothing more (Python's documented recipe)
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
