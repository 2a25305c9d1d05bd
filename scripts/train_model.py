"""Train, validate and export the bundled cardiomegaly model (resources/models/cardiomegaly).

    .venv/bin/python scripts/train_model.py            # about 4 minutes on 2 CPU cores

Reproducible: the phantoms come from fixed seeds (TRAIN_SEED, VAL_SEED: disjoint), torch runs with
a fixed seed and deterministic algorithms (multi-threaded CPU sums still make the weights differ in the last
bits). Every image goes through the same path as inference: the demo phantom is written as a CR or DX Part-10
file, read back, rendered by the shared display pipeline ("dicom" window, MONOCHROME1 inverted) and resized by
`engine.to_batch`. The figures measured on the validation phantoms
are written into the bundle's docs/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medview.core.inference import metrics
from medview.core.inference.bundle import RESEARCH_USE_ONLY, load_bundle
from medview.core.inference.engine import Engine, to_batch
from medview.core.inference.network import CamNet
from medview.core.inference.training import (
    bundle_metadata,
    predict,
    seed_everything,
    synthetic_radiographs,
    train,
    write_bundle,
)
from medview.resources import bundled_model_path

NAME, VERSION, LABEL = "medview-cardiomegaly-phantom", "1.0.0", "cardiomegaly"
SIZE = (256, 256)
TRAIN_SEED, VAL_SEED, TORCH_SEED = 1001, 2002, 0
THRESHOLD = 0.5  # a probability: the model is trained on balanced classes, so 0.5 is the natural operating point
DESCRIPTION = ("Flags an enlarged cardiac silhouette (cardiothoracic ratio above 0.5) on PA chest radiographs. "
               "Trained on synthetic phantoms; research use only, not for diagnosis.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(bundled_model_path()))
    parser.add_argument("--train", type=int, default=700, help="training phantoms")
    parser.add_argument("--val", type=int, default=300, help="validation phantoms (fresh seeds)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    say = lambda text: print(text, flush=True)  # noqa: E731
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        say(f"generating {args.train} training phantoms (demo-data seed {TRAIN_SEED})")
        images, labels, _ = synthetic_radiographs(args.train, TRAIN_SEED, tmp)
        x = to_batch(images, SIZE)
        del images
        y = torch.tensor(labels, dtype=torch.float32)[:, None]
        say(f"  {int(labels.sum())} with the finding; {time.perf_counter() - started:.0f} s")
        seed_everything(TORCH_SEED)
        model = train(CamNet(1), x, y, epochs=args.epochs, seed=TORCH_SEED, progress=say)
        train_auc = metrics.roc_auc(predict(model, x)[:, 0], labels)
        del x

        metadata = bundle_metadata(
            name=NAME, version=VERSION, description=DESCRIPTION, labels=[LABEL], modalities=["CR", "DX"],
            size=SIZE, thresholds={LABEL: THRESHOLD}, window="dicom", heatmap=True,
        )
        out = Path(args.out)
        scripted = torch.jit.script(model)
        write_bundle(scripted, metadata, out, onnx_from=model, readme="(validation pending)\n")

        say(f"validating on {args.val} fresh phantoms (demo-data seed {VAL_SEED}) through the exported bundle")
        v_images, v_labels, v_ctrs = synthetic_radiographs(args.val, VAL_SEED, tmp)
        engine = Engine(load_bundle(out), device="cpu", batch_size=32)
        v_scores = np.array([p.scores[LABEL] for p in engine.predict_images(v_images)])
        figures = metrics.summary(v_scores, v_labels, THRESHOLD)
        near = np.abs(v_ctrs - 0.5) >= 0.03
        figures["auc_ctr_margin_0.03"] = metrics.roc_auc(v_scores[near], v_labels[near])
        figures["train_auc"] = train_auc
        figures["parameters"] = sum(p.numel() for p in model.parameters())
        # per case, so a test can re-score cases with the shipped weights and recompute every figure above
        figures["cases"] = {"seed": VAL_SEED, "labels": v_labels.tolist(),
                            "scores": [round(float(s), 6) for s in v_scores]}
    elapsed = time.perf_counter() - started
    readme = render_readme(figures, args, elapsed)
    (out / "docs" / "README.md").write_text(readme, encoding="utf-8")
    (out / "docs" / "validation.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    say(json.dumps({k: v for k, v in figures.items() if k not in ("reliability", "cases")}, indent=1))
    say(f"bundle written to {out} in {elapsed:.0f} s")
    return 0


def render_readme(f: dict, args, elapsed: float) -> str:
    rows = "\n".join(f"| {b['bin'][0]:.1f}–{b['bin'][1]:.1f} | {b['n']} | {b['mean_score']:.3f} | {b['observed']:.3f} |"
                     for b in f["reliability"])
    return f"""# {NAME} {VERSION}

**{RESEARCH_USE_ONLY}.** This model was trained only on synthetic phantoms made by medview's demo generator.
It has never seen a real patient's radiograph; its scores on real images mean nothing clinically.

## Intended use
Demonstrating medview's on-device AI workflow (worklist triage, findings panel, heatmap) on the demo studies:
one finding, `{LABEL}`, on frontal (PA) chest radiographs, modalities CR and DX. Images of other
modalities are not sent to it.

## Input and output
- Input: the image as the viewer shows it with the file's window (SPEC section 3 display pipeline, MONOCHROME1
  inverted, so CR and DX look alike), resized to {SIZE[0]}×{SIZE[1]} (antialiased bilinear), 1 channel, float32 in [0, 1].
  Only pixels and the tags needed to decode and window them are used: no patient, study or device tag.
- Output: the probability of `{LABEL}` `[N, 1]` and its class activation map `[N, 1, 16, 16]` (the heatmap).
- Network: a small conv–pool stack (5 conv + batch-norm + ReLU blocks, 1×1 classifier before global average
  pooling, about 70 M multiply-adds and {f['parameters'] / 1000:.0f} k parameters), so the map of the classifier is the CAM.
- Operating point: flagged when the score is at or above **{f['threshold']}** (`medview.thresholds`): the score
  is a probability trained on balanced classes.

## Training data
The first {args.train} cases of `medview demo-data --seed {TRAIN_SEED}` (`medview.core.demo.case_spec` and
`radiograph_for_case`): half with the finding (cardiothoracic ratio above 0.5), 30 % of cases borderline
(CTR within 0.03 of 0.5), the others 0.38–0.47 or 0.505–0.66; matrix 1024–1280 rows; half CR (stored
MONOCHROME1), half DX (MONOCHROME2). Each case is written as its Part-10 file and read back through the display
pipeline. AdamW, one-cycle learning rate, binary cross-entropy, {args.epochs} epochs, torch seed {TORCH_SEED} and
torch's deterministic algorithms; {elapsed / 60:.1f} minutes in all (data, training, export, validation) on 2 CPU
cores. Reproduce with `.venv/bin/python scripts/train_model.py`: the phantoms are identical on every run; the
weights agree closely but not bit for bit (multi-threaded CPU kernels sum in a varying order).

## Validation
The first {f['n']} cases of `medview demo-data --seed {VAL_SEED}`, a seed training never used (same distribution,
{f['positives']} with the finding), scored through the exported TorchScript bundle by medview's engine:

| figure | value |
|---|---|
| ROC AUC | {f['auc']:.3f} |
| ROC AUC, cases with CTR at least 0.03 from 0.5 | {f['auc_ctr_margin_0.03']:.3f} |
| sensitivity at {f['threshold']} | {f['sensitivity']:.3f} |
| specificity at {f['threshold']} | {f['specificity']:.3f} |
| expected calibration error (10 bins) | {f['ece']:.3f} |
| training-set AUC | {f['train_auc']:.3f} |

Reliability (calibration) table:

| score bin | n | mean score | observed rate |
|---|---|---|---|
{rows}

`docs/validation.json` keeps every validation case's label and score. `tests/core/test_bundled_model.py`
checks on every test run that the shipped weights reproduce those scores (first cases re-scored), that the
figures above follow from them, that the AUC on another fresh set is at least 0.95, and that scores do not
change when every descriptive tag is removed.

## Limits
- Synthetic phantoms only: real anatomy, devices, lines, pathology other than an enlarged heart, AP or lateral
  views, paediatric images and real detector noise were never seen.
- The label is a threshold on a measured ratio: cases with CTR close to 0.5 are inherently uncertain.
- A different window in the file changes the input: the model expects the file's default (or console) window.
- Not a medical device. {RESEARCH_USE_ONLY}.
"""


if __name__ == "__main__":
    sys.exit(main())
