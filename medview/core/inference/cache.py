"""AI results cached in SQLite under MEDVIEW_HOME, keyed by SOP Instance UID, frame and model checksum.

Reopening a scored folder runs nothing: a result is reused only for the same instance and pixels (the file's
size and modification time, `pixel_key`: a file rewritten under the same UID scores again), the same weights
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
SCHEMA_VERSION = 3  # 2: results_key; 3: pixel_key, not-applicable answers, measurements and masks;
# a cache of an older version is emptied (it is only a cache)


_OPENING = threading.Lock()


class ResultCache:
    """Scores, flagged findings and heatmaps per (SOP Instance UID, frame, model checksum)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else home_file(CACHE_FILE)
        self._local = threading.local()
        self._connect()  # create the schema now, in the constructing thread

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with _OPENING:  # switching to WAL is not covered by the busy timeout: one thread at a time
                conn = sqlite3.connect(self.path, timeout=10.0)
                conn.execute("PRAGMA journal_mode=WAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    self._create_schema(conn)
            self._local.conn = conn
        return conn

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        """(Re)create the table, once, even where two threads or processes open a new cache together: the
        version is read again inside a write transaction, which only one of them holds at a time."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.execute("DROP TABLE IF EXISTS results")
                conn.execute(
                    "CREATE TABLE results ("
                    " sop_instance_uid TEXT NOT NULL, frame INTEGER NOT NULL, model_sha256 TEXT NOT NULL,"
                    " results_key TEXT NOT NULL, model TEXT NOT NULL, scores TEXT NOT NULL,"
                    " flagged TEXT NOT NULL, heatmap BLOB, heatmap_shape TEXT,"
                    " pixel_key TEXT NOT NULL DEFAULT '', not_applicable TEXT,"
                    " measurements TEXT NOT NULL DEFAULT '{}', masks BLOB, masks_shape TEXT,"
                    " mask_labels TEXT NOT NULL DEFAULT '[]',"
                    " PRIMARY KEY (sop_instance_uid, frame, model_sha256))"
                )
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def get(self, sop_instance_uid: str, frame: int, model_sha256: str, results_key: str | None = None,
            pixel_key: str | None = None):
        """The cached Prediction (or NotApplicable), or None; with `results_key` (the bundle's), only one made
        under that metadata; with `pixel_key`, only one made from the same pixels."""
        from medview.core.inference.results import NotApplicable, Prediction

        query = ("SELECT model, scores, flagged, heatmap, heatmap_shape, not_applicable, measurements, masks,"
                 " masks_shape, mask_labels FROM results WHERE sop_instance_uid=? AND frame=? AND model_sha256=?")
        params: tuple = (sop_instance_uid, int(frame), model_sha256)
        if results_key is not None:
            query += " AND results_key=?"
            params += (results_key,)
        if pixel_key is not None:
            query += " AND pixel_key=?"
            params += (pixel_key,)
        row = self._connect().execute(query, params).fetchone()
        if row is None:
            return None
        model, scores, flagged, blob, shape, not_applicable, measurements, mask_blob, mask_shape, labels = row
        if not_applicable is not None:
            return NotApplicable(not_applicable)
        heatmap = None
        if blob is not None:
            heatmap = np.frombuffer(blob, dtype=np.float16).reshape(json.loads(shape)).astype(np.float32)
        masks = None
        if mask_blob is not None:
            dims = json.loads(mask_shape)
            bits = np.unpackbits(np.frombuffer(mask_blob, dtype=np.uint8), count=int(np.prod(dims)))
            masks = bits.reshape(dims)
        return Prediction(scores=json.loads(scores), flagged=json.loads(flagged), heatmap=heatmap, model=model,
                          measurements=json.loads(measurements), masks=masks,
                          mask_labels=tuple(json.loads(labels)))

    def put(self, sop_instance_uid: str, frame: int, model_sha256: str, results_key: str, prediction,
            pixel_key: str = "") -> None:
        """Store (or replace) one Prediction or NotApplicable, made under the metadata whose `results_key` is
        given from the pixels whose `pixel_key` is given."""
        from medview.core.inference.results import NotApplicable

        values: dict = {"model": "", "scores": "{}", "flagged": "[]", "heatmap": None, "heatmap_shape": None,
                        "not_applicable": None, "measurements": "{}", "masks": None, "masks_shape": None,
                        "mask_labels": "[]"}
        if isinstance(prediction, NotApplicable):
            values["not_applicable"] = prediction.reason
        else:
            values.update(model=prediction.model, scores=json.dumps(prediction.scores),
                          flagged=json.dumps(prediction.flagged), measurements=json.dumps(prediction.measurements),
                          mask_labels=json.dumps(list(prediction.mask_labels)))
            if prediction.heatmap is not None:
                values["heatmap"] = np.ascontiguousarray(prediction.heatmap, dtype=np.float16).tobytes()
                values["heatmap_shape"] = json.dumps(list(prediction.heatmap.shape))
            if prediction.masks is not None:
                values["masks"] = np.packbits(np.asarray(prediction.masks, dtype=np.uint8).ravel() > 0).tobytes()
                values["masks_shape"] = json.dumps(list(prediction.masks.shape))
        columns = ["sop_instance_uid", "frame", "model_sha256", "results_key", "pixel_key", *values]
        conn = self._connect()
        with conn:
            conn.execute(
                f"INSERT OR REPLACE INTO results ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                (sop_instance_uid, int(frame), model_sha256, results_key, pixel_key, *values.values()),
            )

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
