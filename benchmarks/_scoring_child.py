"""One scoring pipeline alone in a fresh process, from DICOM files to scores, for `benchmarks/scoring.py`.

    python -m benchmarks._scoring_child medview|plain FILES.json PASSES

`medview`: what `medview infer` does without printing: the bundle loaded and `Engine(bundle, device="cpu")`
built as the command builds them, then per pass `scan` of the files (no index cache), `InferenceJob` per
frame and `FrameScorer(engine).score` (no results cache) to the last result.
`plain`: the plain pipeline a script would write: per file `pydicom.dcmread` and `pixel_array`, Rescale and
the file's first window in numpy (its value range where it has none, MONOCHROME1 inverted), a bilinear resize
to the bundle's input size with Pillow, the bundle's value range, then batches of the same size through an
ONNX Runtime `InferenceSession` (CPU, defaults) on the bundle's `models/model.onnx`.

Prints one JSON line after one discarded warm-up pass: {"times": [seconds per pass], "images": n,
"statuses": {status: count}} (plain: every image is "ok").
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

BATCH = 8


def _medview(files: list[str]):
    from medview.core.dicom.scan import scan
    from medview.core.inference.bundle import load_bundle
    from medview.core.inference.engine import Engine
    from medview.core.inference.results import InferenceJob
    from medview.core.inference.scoring import FrameScorer
    from medview.resources import bundled_model_path

    bundle = load_bundle(bundled_model_path())
    engine = Engine(bundle, device="cpu", batch_size=BATCH)

    def one_pass() -> Counter:
        found = scan(files, use_cache=False)
        jobs = [job for inst in found.instances for job in InferenceJob.for_instance(inst)]
        results = FrameScorer(engine, None, raise_model_failures=True).score(jobs)
        return Counter(result.status for result in results) + Counter(error=len(found.errors))

    return one_pass


def _plain(files: list[str]):
    import numpy as np
    import onnxruntime as ort
    import pydicom
    from PIL import Image

    from medview.resources import bundled_model_path

    bundle = bundled_model_path()
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    height, width = meta["medview"]["preprocess"]["resize"]
    low, high = meta["network_data_format"]["inputs"]["image"].get("value_range", [0, 1])
    session = ort.InferenceSession(str(bundle / "models" / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def first(value) -> float:
        return float(value[0] if isinstance(value, pydicom.multival.MultiValue) else value)

    def image(path: str) -> np.ndarray:
        ds = pydicom.dcmread(path)
        values = ds.pixel_array.astype(np.float32)
        values = values * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
        if "WindowCenter" in ds and "WindowWidth" in ds:
            centre, window = first(ds.WindowCenter), max(1.0, first(ds.WindowWidth))
        else:
            lo, hi = float(values.min()), float(values.max())
            centre, window = (lo + hi) / 2, max(1.0, hi - lo)
        shown = np.clip((values - (centre - 0.5)) / (window - 1) + 0.5, 0.0, 1.0)  # PS3.3 C.11.2.1.2, linear
        if ds.get("PhotometricInterpretation", "") == "MONOCHROME1":
            shown = 1.0 - shown
        small = np.asarray(Image.fromarray(shown, mode="F").resize((width, height), Image.BILINEAR))
        return small * (high - low) + low

    def one_pass() -> Counter:
        images = [image(f) for f in files]
        for start in range(0, len(images), BATCH):
            batch = np.stack(images[start:start + BATCH])[:, None].astype(np.float32)
            session.run(None, {name: batch})
        return Counter(ok=len(images))

    return one_pass


def main(argv: list[str]) -> int:
    pipeline, listing, passes = argv[0], argv[1], int(argv[2])
    with open(listing) as fh:
        files = json.load(fh)
    one_pass = _medview(files) if pipeline == "medview" else _plain(files)
    times, statuses = [], Counter()
    for _ in range(passes + 1):
        t0 = time.perf_counter()
        statuses = one_pass()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"times": times[1:], "images": len(files), "statuses": dict(statuses)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
