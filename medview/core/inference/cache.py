"""AI results cached in SQLite under MEDVIEW_HOME, keyed by SOP Instance UID, frame and model checksum.

Reopening a scored folder runs nothing: a result is reused only for the same instance *and* the same weights
(another model, or retrained weights, have another checksum). Heatmaps are stored small (float16).
One connection per thread (sqlite3 objects must stay in the thread that made them); WAL lets the app's
worker write while `medview infer` or the GUI thread read.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np

from medview.core.home import home_file

CACHE_FILE = "ai_results.sqlite"
SCHEMA_VERSION = 1


class ResultCache:
    """Scores, flagged findings and heatmaps per (SOP Instance UID, frame, model checksum)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else home_file(CACHE_FILE)
        self._local = threading.local()
        self._connect()  # create the schema now, in the constructing thread

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                with conn:
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS results ("
                        " sop_instance_uid TEXT NOT NULL, frame INTEGER NOT NULL, model_sha256 TEXT NOT NULL,"
                        " model TEXT NOT NULL, scores TEXT NOT NULL, flagged TEXT NOT NULL,"
                        " heatmap BLOB, heatmap_shape TEXT,"
                        " PRIMARY KEY (sop_instance_uid, frame, model_sha256))"
                    )
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._local.conn = conn
        return conn

    def get(self, sop_instance_uid: str, frame: int, model_sha256: str):
        """The cached Prediction, or None."""
        from medview.core.inference.results import Prediction

        row = self._connect().execute(
            "SELECT model, scores, flagged, heatmap, heatmap_shape FROM results"
            " WHERE sop_instance_uid=? AND frame=? AND model_sha256=?",
            (sop_instance_uid, int(frame), model_sha256),
        ).fetchone()
        if row is None:
            return None
        model, scores, flagged, blob, shape = row
        heatmap = None
        if blob is not None:
            heatmap = np.frombuffer(blob, dtype=np.float16).reshape(json.loads(shape)).astype(np.float32)
        return Prediction(scores=json.loads(scores), flagged=json.loads(flagged), heatmap=heatmap, model=model)

    def put(self, sop_instance_uid: str, frame: int, model_sha256: str, prediction) -> None:
        """Store (or replace) one Prediction."""
        heatmap = prediction.heatmap
        blob = shape = None
        if heatmap is not None:
            blob = np.ascontiguousarray(heatmap, dtype=np.float16).tobytes()
            shape = json.dumps(list(heatmap.shape))
        conn = self._connect()
        with conn:
            conn.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sop_instance_uid, int(frame), model_sha256, prediction.model, json.dumps(prediction.scores),
                 json.dumps(prediction.flagged), blob, shape),
            )

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
