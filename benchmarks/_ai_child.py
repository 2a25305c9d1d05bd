"""One runtime alone in a fresh process, timing passes over the prepared batches the parent saved.

    python -m benchmarks._ai_child engine|onnxruntime BATCHES.npy PASSES

Each runtime runs in its own process so the other's threads (ONNX Runtime's spin-waiting pool, OpenMP's)
never share the cores with it. Prints one JSON line: {"times": [seconds per pass, ...]} after one
discarded warm-up pass.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    import numpy as np

    from medview.core.inference.bundle import load_bundle
    from medview.resources import bundled_model_path

    runtime, path, passes = argv[0], argv[1], int(argv[2])
    stacked = np.load(path)  # [batches, 8, C, H, W]
    bundle = load_bundle(bundled_model_path())
    if runtime == "engine":
        import torch

        from medview.core.inference.engine import Engine

        engine = Engine(bundle, device="cpu", batch_size=stacked.shape[1])
        engine.warm_up()
        batches = [torch.from_numpy(b) for b in stacked]

        def one_pass() -> None:
            for x in batches:
                engine.forward(x)
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(bundle.onnx), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        arrays = [np.ascontiguousarray(b) for b in stacked]

        def one_pass() -> None:
            for a in arrays:
                session.run(None, {name: a})

    times = []
    for _ in range(passes + 1):
        t0 = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"times": times[1:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
