"""A real Orthanc for the PACS tests: on 127.0.0.1 only, free ports, storage in the test's tmp_path.

`OrthancServer(tmp_path, ...)` writes a JSON configuration (DICOM and HTTP ports, the DICOMweb plugin,
medview's AE among the known modalities, optional HTTP users), `start()` waits (bounded) until both ports
answer, `kill()` ends it at once (a PACS going away), `start()` again brings it back on the same ports and
storage, `stop()` tears it down. Tests skip with the reason when Orthanc is not installed.
"""

from __future__ import annotations

import glob
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ORTHANC = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
START_TIMEOUT_S = 30
ORTHANC_AE = "ORTHANC"


def dicomweb_plugin() -> str | None:
    """The orthanc-dicomweb plugin's shared library (`dpkg -L orthanc-dicomweb` puts it here on Debian)."""
    found = sorted(glob.glob("/usr/share/orthanc/plugins/libOrthancDicomWeb*.so*")
                   + glob.glob("/usr/lib/orthanc/libOrthancDicomWeb.so*"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancServer:
    def __init__(self, root: Path, *, medview_port: int = 0, users: dict[str, str] | None = None,
                 medview_ae: str = "MEDVIEW", tls: tuple[Path, Path] | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.medview_port = medview_port or free_port()
        self.process: subprocess.Popen | None = None
        config = {
            "Name": "medview-test",
            "DicomAet": ORTHANC_AE,
            "DicomPort": self.dicom_port,
            "DicomServerEnabled": True,
            "HttpPort": self.http_port,
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "index"),
            "RemoteAccessAllowed": False,
            "HttpBindAddress": "127.0.0.1",
            "DicomBindAddress": "127.0.0.1",
            "AuthenticationEnabled": bool(users),
            "RegisteredUsers": users or {},
            "DicomModalities": {"medview": [medview_ae, "127.0.0.1", self.medview_port]},
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "ConcurrentJobs": 1,
            "StableAge": 1,
            "SaveJobs": False,
            "Plugins": [p for p in [dicomweb_plugin()] if p],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        if tls:  # (certificate, key) PEM files: DICOM TLS (Debian's Orthanc 1.10 crashes serving HTTPS)
            cert, key = tls
            config.update(DicomTlsEnabled=True,
                          DicomTlsCertificate=str(cert), DicomTlsPrivateKey=str(key),
                          DicomTlsTrustedCertificates=str(cert), DicomTlsRemoteCertificateRequired=False)
        self.config_path = self.root / "orthanc.json"
        self.config_path.write_text(json.dumps(config, indent=1), encoding="utf-8")

    @property
    def dimse_url(self) -> str:
        return f"dicom://{ORTHANC_AE}@127.0.0.1:{self.dicom_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def start(self) -> "OrthancServer":
        log = open(self.root / "orthanc.log", "ab")
        self.process = subprocess.Popen([ORTHANC, str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.root)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start; see {self.root / 'orthanc.log'}")
            if self._answers():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT_S} s")

    def _answers(self) -> bool:
        # HTTP only: Orthanc opens its DICOM port first, and a bare connect to its DICOM TLS port ends it
        try:
            urllib.request.urlopen(f"{self.web_url}/studies", timeout=1).close()
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, and asking for credentials
        except OSError:
            return False
        return True

    def kill(self) -> None:
        """The PACS going away: SIGKILL, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def instance_count(self) -> int:
        """How many instances Orthanc holds (its REST API; only without authentication)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/statistics", timeout=5) as answer:
            return int(json.load(answer)["CountInstances"])
