"""Stable pseudonyms for `medview export --anonymize`.

HMAC-SHA256 of the identifier with a per-install secret kept under MEDVIEW_HOME: the same patient always
maps to the same pseudonym on this install (exports can be joined), but without the secret the mapping
cannot be reversed or recomputed from a guessed ID, as a plain hash could.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import date, timedelta
from pathlib import Path

SECRET_NAME = "anonymize.key"


def install_secret(path: Path | None = None) -> bytes:
    """The per-install secret, created (owner-only, 32 random bytes) on first use."""
    if path is None:
        from medview.core.home import home_file

        path = home_file(SECRET_NAME)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = Path(path).read_bytes()
        if len(data) >= 32:
            return data
        raise
    else:  # we created it: no other process can have read a partial key, it did not exist
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        return key


class Pseudonymizer:
    """Maps identifiers to stable pseudonyms, UIDs to stable `2.25.` UIDs, and shifts dates per patient."""

    def __init__(self, secret: bytes | None = None):
        self._secret = install_secret() if secret is None else secret

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def patient(self, patient_id: str, patient_name: str = "") -> str:
        """"ANON-" + 12 hex digits; keyed on the Patient ID (the name only when there is no ID)."""
        key = patient_id or f"name:{patient_name}"
        return "ANON-" + self._digest("patient", key).hex()[:12].upper()

    def accession(self, accession: str) -> str:
        return "" if not accession else "ACC-" + self._digest("accession", accession).hex()[:12].upper()

    def uid(self, uid: str) -> str:
        """A UID derived from `uid` (PS3.5 B.2: "2.25." + a 128-bit integer), the same on every export."""
        if not uid:
            return uid
        return "2.25." + str(int.from_bytes(self._digest("uid", uid)[:16], "big"))

    def day_shift(self, patient_key: str) -> int:
        """Days to move this patient's dates back (1-10 years): intervals between studies are kept."""
        return 365 + int.from_bytes(self._digest("dates", patient_key)[:4], "big") % (3650 - 365)

    def date(self, value: str, patient_key: str) -> str:
        """A DICOM date (YYYYMMDD) shifted by the patient's offset; "" stays ""; unparsable dates are dropped."""
        value = (value or "").strip()
        if not value:
            return ""
        try:
            d = date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        except (ValueError, IndexError):
            return ""
        return (d - timedelta(days=self.day_shift(patient_key))).strftime("%Y%m%d")
