"""AI results cached in SQLite under MEDVIEW_HOME, keyed by SOP Instance UID, frame and model checksum.

Reopening a scored folder runs nothing: a result is reused only for the same instance, the same weights
(another model, or retrained weights, have another checksum) *and* the same metadata (`results_key`: edited
findings, pre-processing or thresholds score again). The weights' checksum stays a key of its own because the
review database and its exports name a model by it (`cached_heatmaps`). Heatmaps are stored small (float16).
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
SCHEMA_VERSION = 2  # 2: results_key; a cache of an older version is emptied (it is only a cache)


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
                    conn.execute("DROP TABLE IF EXISTS results")
                    conn.execute(
                        "CREATE TABLE results ("
                        " sop_instance_uid TEXT NOT NULL, frame INTEGER NOT NULL, model_sha256 TEXT NOT NULL,"
                        " results_key TEXT NOT NULL, model TEXT NOT NULL, scores TEXT NOT NULL,"
                        " flagged TEXT NOT NULL, heatmap BLOB, heatmap_shape TEXT,"
                        " PRIMARY KEY (sop_instance_uid, frame, model_sha256))"
                    )
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._local.conn = conn
        return conn

    def get(self, sop_instance_uid: str, frame: int, model_sha256: str, results_key: str | None = None):
        """The cached Prediction, or None; with `results_key` (the bundle's), only one made under that metadata."""
        from medview.core.inference.results import Prediction

        query = ("SELECT model, scores, flagged, heatmap, heatmap_shape FROM results"
                 " WHERE sop_instance_uid=? AND frame=? AND model_sha256=?")
        params: tuple = (sop_instance_uid, int(frame), model_sha256)
        if results_key is not None:
            query += " AND results_key=?"
            params += (results_key,)
        row = self._connect().execute(query, params).fetchone()
        if row is None:
            return None
        model, scores, flagged, blob, shape = row
        heatmap = None
        if blob is not None:
            heatmap = np.frombuffer(blob, dtype=np.float16).reshape(json.loads(shape)).astype(np.float32)
        return Prediction(scores=json.loads(scores), flagged=json.loads(flagged), heatmap=heatmap, model=model)

    def put(self, sop_instance_uid: str, frame: int, model_sha256: str, results_key: str, prediction) -> None:
        """Store (or replace) one Prediction, made under the metadata whose `results_key` is given."""
        heatmap = prediction.heatmap
        blob = shape = None
        if heatmap is not None:
            blob = np.ascontiguousarray(heatmap, dtype=np.float16).tobytes()
            shape = json.dumps(list(heatmap.shape))
        conn = self._connect()
        with conn:
            conn.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sop_instance_uid, int(frame), model_sha256, results_key, prediction.model,
                 json.dumps(prediction.scores),
                 json.dumps(prediction.flagged), blob, shape),
            )

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
