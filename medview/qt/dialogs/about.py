"""The About dialog: version, build, the research-use line and the third-party licences.

The licence list is what the frozen app bundles (packaging/README.md, "Licences"); no GPL component is
shipped (python-gdcm instead of the GPLv3 pylibjpeg-libjpeg). Wire it with
`menu.addAction("About medview", lambda: show_about(window))`.
"""

from __future__ import annotations

import html
from importlib import metadata

from PySide6.QtWidgets import QMessageBox, QWidget

# (distribution, shown name, licence, what it does in medview)
THIRD_PARTY = (
    ("PySide6-Essentials", "Qt for Python / Qt 6", "LGPLv3 (dynamically linked)", "user interface"),
    ("pyqtgraph", "pyqtgraph", "MIT", "image view"),
    ("torch", "PyTorch", "BSD-3-Clause", "on-device AI"),
    ("numpy", "NumPy", "BSD-3-Clause", "arrays"),
    ("pydicom", "pydicom", "MIT", "DICOM reading"),
    ("python-gdcm", "GDCM", "BSD-style", "JPEG baseline/extended/lossless, JPEG-LS"),
    ("pylibjpeg", "pylibjpeg", "MIT", "decoder plugins"),
    ("pylibjpeg-openjpeg", "OpenJPEG", "MIT / BSD-2-Clause", "JPEG 2000, HTJ2K"),
    ("pylibjpeg-rle", "pylibjpeg-rle", "MIT", "RLE Lossless"),
    ("pyjpegls", "CharLS", "MIT / BSD-3-Clause", "JPEG-LS"),
    ("highdicom", "highdicom", "MIT", "DICOM SR export"),
    ("pillow", "Pillow", "MIT-CMU", "images"),
    ("platformdirs", "platformdirs", "MIT", "user folders"),
)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def about_html() -> str:
    """The dialog's text: version and build (as `medview --version`), research-use line, licences."""
    from medview.cli import version_text

    rows = "".join(
        f"<tr><td>{html.escape(name)} {html.escape(_version(dist))}</td><td>{html.escape(licence)}</td>"
        f"<td>{html.escape(role)}</td></tr>"
        for dist, name, licence, role in THIRD_PARTY
    )
    version = "<br>".join(html.escape(line) for line in version_text().splitlines())
    return (
        f"<h3>medview</h3><p>{version}</p>"
        "<p><b>Research use only, not for diagnosis.</b> The bundled model is trained on synthetic phantoms.</p>"
        "<p>medview is MIT-licensed. It includes:</p>"
        f"<table cellspacing='4'><tr><th align='left'>component</th><th align='left'>licence</th>"
        f"<th align='left'>used for</th></tr>{rows}</table>"
        "<p>No GPL-licensed component is bundled.</p>"
    )


def show_about(parent: QWidget | None = None) -> None:
    QMessageBox.about(parent, "About medview", about_html())
