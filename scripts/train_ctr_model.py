"""Train the cardiothoracic-ratio model, measure it across phantom families, and write the bundle.

    .venv/bin/python scripts/train_ctr_model.py train --families demo,outline --out V20.pt   # the previous weights
    .venv/bin/python scripts/train_ctr_model.py train --init V20.pt --lr 2e-3 --epochs 8 --out W.pt   # the shipped
    .venv/bin/python scripts/train_ctr_model.py train --families demo --out A.pt           # one-family runs
    .venv/bin/python scripts/train_ctr_model.py bundle --weights W.pt --cross demo+outline:V20.pt,demo:A.pt
    .venv/bin/python scripts/train_ctr_model.py validate      # the shipped bundle again, as the engine runs it now

`train` writes a state dict (weights only); `bundle` exports it to resources/models/cardiomegaly, calibrates
the score on fresh phantoms of its training families, and validates every model on fresh seeds of every family
(for the cross-family models: the family each never saw), through the exported bundle and the same files,
display pipeline and measurement as `medview infer`. `validate` measures the shipped bundle again on the same
sets, as medview's engine runs it today (its default backend, pre-processing and measurement), and rewrites its
figures; the cross-family figures stay as `bundle` measured them. Seeds are fixed; torch runs deterministically.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medview.core.inference import ctr
from medview.core.inference import ctr_training as ct
from medview.core.inference import ctr_validation as cv
from medview.core.inference.bundle import RESEARCH_USE_ONLY, load_bundle
from medview.core.inference.engine import Engine
from medview.core.inference.network import CtrSegNet
from medview.core.inference.training import bundle_metadata, write_bundle
from medview.resources import bundled_model_path

NAME, VERSION, LABEL = "medview-cardiomegaly-phantom", "2.1.0", "cardiomegaly"
TRAIN_SEED, CAL_SEED, VAL_SEED, TORCH_SEED = 1101, 1202, 2303, 0
THRESHOLD = 0.5  # the CTR at or above which the heart is called enlarged; the score is 0.5 exactly there
DESCRIPTION = ("Measures the cardiothoracic ratio on frontal (PA/AP) chest radiographs by segmenting the heart "
               "and the lungs, and flags an enlarged cardiac silhouette (CTR at or above 0.5). Trained on "
               "synthetic phantoms; research use only, not for diagnosis.")
INTENDED_USE = {"body_parts": ["CHEST", "THORAX", "LUNG"], "views": ["PA", "AP"], "min_matrix": 128,
                "pixel_spacing_mm": [0.02, 5.0]}


def train_main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    say = lambda text: print(text, flush=True)  # noqa: E731
    families = tuple(args.families.split(","))
    # examples are made for both families at once (and kept in --data-cache); a one-family model takes its rows
    plan = ct.plan_for(ct.FAMILIES, args.per_family, args.negatives, TRAIN_SEED)
    cached = Path(args.data_cache) if args.data_cache else None
    if cached is not None and cached.exists():
        x, y = torch.load(cached, weights_only=True)  # this script's own earlier output
        say(f"{len(x)} training examples from {cached}")
    else:
        say(f"making {len(plan)} training examples ({args.per_family} per family; {args.negatives} out of scope)")
        x, y = ct.build_set(plan, workers=args.workers, progress=say)
        if cached is not None:
            torch.save((x, y), cached)
    rows = torch.tensor([i for i, (kind, _, _) in enumerate(plan) if kind in families or kind not in ct.FAMILIES])
    x, y = x[rows], y[rows]
    say(f"training on {len(x)} examples ({', '.join(families)}; out-of-scope images)")
    model = load_weights(args.init).train() if args.init else CtrSegNet()
    if args.init:
        say(f"starting from {args.init}")
    model = ct.train_segmentation(model, x, y, epochs=args.epochs, lr=args.lr, seed=TORCH_SEED, progress=say)
    torch.save(model.state_dict(), args.out)
    say(f"weights written to {args.out}")
    return 0


def metadata(score_scale: float, unsure_gain: float) -> dict:
    meta = bundle_metadata(name=NAME, version=VERSION, description=DESCRIPTION, labels=[LABEL],
                           modalities=["CR", "DX"], size=(ct.SIZE, ct.SIZE), thresholds={LABEL: 0.5},
                           window="dicom", heatmap=True)
    meta["task"] = "segmentation of heart and lungs; cardiothoracic ratio measured from the masks"
    meta["network_data_format"]["outputs"]["masks"] = {
        "type": "probabilities", "format": "segmentation", "num_channels": 2, "spatial_shape": [ct.SIZE, ct.SIZE],
        "dtype": "float32", "value_range": [0, 1], "is_onehot": False, "channel_def": {"0": "heart", "1": "lungs"}}
    meta["medview"]["measurement"] = {"name": ctr.NAME, "finding": LABEL, "threshold": THRESHOLD,
                                      "masks": ["heart", "lungs"], "score_scale": round(score_scale, 5),
                                      "unsure_gain": round(unsure_gain, 3), "mirror_average": True}
    meta["medview"]["intended_use"] = INTENDED_USE
    return meta


def load_weights(path: str) -> CtrSegNet:
    model = CtrSegNet()
    model.load_state_dict(torch.load(path, weights_only=True))  # our own training output, weights only
    return model.eval()


def export(model: CtrSegNet, folder: Path, score_scale: float, unsure_gain: float, readme: str = "") -> None:
    write_bundle(torch.jit.script(model), metadata(score_scale, unsure_gain), folder, onnx_from=model,
                 readme=readme or "(validation pending)\n")


def calibrate(engine: Engine, families: tuple[str, ...], n: int, say, keep: Path | None = None
              ) -> tuple[float, float, dict]:
    """The score's slope and its flattening by unsureness, fitted (maximum likelihood) on fresh phantoms of
    the training families: measured CTR and unsureness against the true label."""
    values, unsure, labels = [], [], []
    for family in families:
        cases = cv.chest_cases(family, CAL_SEED, n, cols=512, keep_in=keep)
        for case, outcome in zip(cases, cv.run(engine, cases)):
            if hasattr(outcome, "measurements"):
                m = outcome.measurements[ctr.NAME]
                values.append(m["value"])
                unsure.append(m["unsure"])
                labels.append(case.label)
    v, u, y = map(np.asarray, (values, unsure, labels))
    best = (math.inf, 0.02, 0.0)
    for scale in np.geomspace(0.002, 0.2, 80):
        for gain in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0):
            p = np.array([ctr.score(a, b, THRESHOLD, scale, gain) for a, b in zip(v, u)]).clip(1e-6, 1 - 1e-6)
            nll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
            if nll < best[0]:
                best = (nll, float(scale), float(gain))
    say(f"  calibration on {len(v)} phantoms: scale {best[1]:.4f}, unsure gain {best[2]}, NLL {best[0]:.3f}")
    return best[1], best[2], {"n": int(len(v)), "families": list(families), "seed": CAL_SEED,
                              "nll": round(best[0], 4)}


def bundle_main(args) -> int:
    say = lambda text: print(text, flush=True)  # noqa: E731
    out = Path(args.out)
    validation: dict = {"threshold": THRESHOLD, "seed": VAL_SEED}
    say(f"validation sets: {args.val} frontal chests per family, {args.negatives_per_kind} of each out-of-scope kind")
    keep = Path(args.cases_dir) if args.cases_dir else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    sets = {family: cv.chest_cases(family, VAL_SEED, args.val, keep_in=keep)
            for family in (*ct.FAMILIES, cv.ELLIPSES, cv.POLYGONS)}
    refusals = cv.out_of_scope_cases(VAL_SEED, args.negatives_per_kind, keep_in=keep)
    models = {"shipped": (args.weights, ct.FAMILIES)}
    for item in filter(None, args.cross.split(",")):
        names, path = item.split(":")
        families = tuple(names.split("+"))
        models[f"trained_on_{'_and_'.join(families)}{'_only' if len(families) == 1 else ''}"] = (path, families)
    with tempfile.TemporaryDirectory() as tmp:
        for key, (path, families) in models.items():
            model = load_weights(path)
            folder = out if key == "shipped" else Path(tmp) / key
            export(model, folder, 0.02, 0.0)
            scale, gain, cal = calibrate(Engine(load_bundle(folder), device="cpu"), families, args.calibration, say,
                                         keep)
            export(model, folder, scale, gain)
            engine = Engine(load_bundle(folder), device="cpu", batch_size=16)
            entry = model_figures(key, engine, sets, refusals,
                                    {"trained_on": list(families), "calibration": cal, "families": {}}, say)
            entry["parameters"] = sum(p.numel() for p in model.parameters())
            validation[key] = entry
    (out / "docs" / "validation.json").write_text(json.dumps(validation, indent=1) + "\n", encoding="utf-8")
    (out / "docs" / "README.md").write_text(render_readme(validation, args), encoding="utf-8")
    say(f"bundle written to {out}")
    return 0


def model_figures(key: str, engine: Engine, sets: dict, refusals: list, entry: dict, say) -> dict:
    """A model's figures on every validation family and the out-of-scope set, into `entry`."""
    for family, cases in sets.items():
        figures = cv.chest_figures(cases, cv.run(engine, cases), THRESHOLD)
        figures["never_seen_in_training"] = family not in entry["trained_on"]
        entry["families"][family] = figures
        say(f"  {key} on {family}: AUC {figures['auc']:.3f}, CTR MAE {figures['ctr_mae']:.4f}, "
            f"ECE {figures['ece']:.3f}, refused {figures['refused']} {figures['refusal_reasons']}")
    entry["out_of_scope"] = cv.refusal_figures(refusals, cv.run(engine, refusals))
    entry["engine"] = engine.runs_on
    say(f"  {key}: out-of-scope answered {entry['out_of_scope']['answered']} of {entry['out_of_scope']['n']}")
    return entry


def validate_main(args) -> int:
    say = lambda text: print(text, flush=True)  # noqa: E731
    out = Path(args.out)
    record = out / "docs" / "validation.json"
    validation = json.loads(record.read_text(encoding="utf-8"))
    keep = Path(args.cases_dir) if args.cases_dir else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    shipped = validation["shipped"]
    n = next(iter(shipped["families"].values()))["n"]
    sets = {family: cv.chest_cases(family, VAL_SEED, n, keep_in=keep) for family in shipped["families"]}
    per_kind = max(e["n"] for e in shipped["out_of_scope"]["by_kind"].values())
    refusals = cv.out_of_scope_cases(VAL_SEED, per_kind, keep_in=keep)
    engine = Engine(load_bundle(out), device="cpu", batch_size=16)
    model_figures("shipped", engine, sets, refusals, shipped, say)
    record.write_text(json.dumps(validation, indent=1) + "\n", encoding="utf-8")
    (out / "docs" / "README.md").write_text(render_readme(validation, args), encoding="utf-8")
    say(f"validation of {out} rewritten")
    return 0


def _row(name: str, f: dict) -> str:
    return (f"| {name} | {f['n']} | {f['auc']:.3f} | {f['sensitivity']:.3f} | {f['specificity']:.3f} | "
            f"{f['ctr_mae']:.4f} | {f['ece']:.3f} | {f['refused']} |")


def render_readme(v: dict, args) -> str:
    shipped = v["shipped"]
    rows = [_row(f"shipped model, {fam} family (fresh seed{'; never seen' if f['never_seen_in_training'] else ''})", f)
            for fam, f in shipped["families"].items()]
    cross = [_row(f"trained on {' and '.join(e['trained_on'])} only, tested on {fam}"
                  f"{' (never seen)' if f['never_seen_in_training'] else ''}", f)
             for key, e in v.items() if key.startswith("trained_on") for fam, f in e["families"].items()]
    oos = shipped["out_of_scope"]
    kinds = ", ".join(f"{k} {e['answered']}/{e['n']}" for k, e in oos["by_kind"].items())
    m = json.loads((bundled_model_path() / "configs" / "metadata.json").read_text())["medview"]["measurement"] \
        if (bundled_model_path() / "configs" / "metadata.json").exists() else {}
    return f"""# {NAME} {VERSION}

**{RESEARCH_USE_ONLY}.** This model was trained only on synthetic phantoms drawn by medview's three phantom
generators. It has never seen a real patient's radiograph; its measurements on real images mean nothing
clinically.

## Intended use
Demonstrating medview's on-device AI workflow on frontal chest radiographs: it measures the **cardiothoracic
ratio** (CTR: the heart's whole horizontal extent, the transverse cardiac diameter, over the widest inner
extent of the thorax, the lungs' outer margins) and flags `{LABEL}` when the CTR is at or above {THRESHOLD}.
- By the header (`medview.intended_use` in the metadata): modality CR or DX, body part chest (when stated),
  view PA or AP (when stated; a lateral view is refused), at least {INTENDED_USE['min_matrix']} pixels a side, a
  pixel spacing of {INTENDED_USE['pixel_spacing_mm'][0]}-{INTENDED_USE['pixel_spacing_mm'][1]} mm (when stated).
- By the pixels, where the header is silent or wrong: the masks must show two lungs side by side with a heart
  between them (one lung may be all but hidden by a very large heart: a part of it a twentieth the size of the
  other is enough), the thorax inside the image and wide enough, and outlines the network is sure of. Apices
  cut off at the top do not matter; a lung running along a side of the image for more than half its height,
  or bases running off the bottom, are a thorax cut off. A thorax whose margin runs along a side for less
  than that is measured to the edge, and the measurement says so (`note`: the ratio may be overstated a
  little). Anything else is "not applicable" with the reason (e.g. "not a frontal chest radiograph by its
  pixels (two lungs not found)", "the thorax is cut off at the image edge"); it is never answered "not
  flagged".

## Input and output
- Input: the image as the viewer shows it with the file's window (SPEC section 3 display pipeline,
  MONOCHROME1 inverted), shrunk by whole steps (block means) and resized to {ct.SIZE}×{ct.SIZE} (antialiased bilinear), 1 channel, float32 in [0, 1]. Only
  pixels and the tags needed to decode and window them decide the measurement; the header tags of the intended
  use can only refuse an image.
- Network: a small U-Net (four conv-pool levels, bilinear upsampling with skips; {shipped['parameters'] / 1000:.0f} k
  parameters). Output: probabilities `[N, 2, {ct.SIZE}, {ct.SIZE}]` of the heart and the lungs
  (`network_data_format.outputs.masks`).
- medview averages the masks with those of the mirrored image (`mirror_average`) and measures on them
  (`medview/core/inference/ctr.py`): the heart from its rightmost to its leftmost border (wherever each
  lies; the line is drawn midway between their levels), the thorax on the row where the lungs' outer
  margins are widest (the heart counted in, where a very large heart reaches the chest wall), with sub-pixel edges where the probability crosses 0.5; the two lines are mapped back to the image's pixels and reported as `measurements.cardiothoracic_ratio` (`value`, `unit` "1",
  `threshold`, `heart` and `thorax` as `[[column, row], [column, row]]`, and `unsure`, the share of unsure
  pixels in the masks).
- Score: `1 / (1 + exp(-(CTR - {THRESHOLD}) / (s (1 + g · unsure))))`, calibrated by maximum likelihood on fresh
  phantoms of the training families (s = {m.get('score_scale', 'n/a')}, g = {m.get('unsure_gain', 'n/a')}), so the
  score is 0.5 exactly at CTR {THRESHOLD}: flagged (score ≥ 0.5) means measured CTR ≥ {THRESHOLD}. The heatmap is
  the heart mask: where it measured.

## Training data
Generalisation by design (SynthSeg, Billot et al. 2023): {args_train_text()}
- the **demo family** (`medview.core.demo.phantoms`): physical projections of an adult chest processed as a
  CR/DX console does;
- the **outline family** (`medview.core.demo.outline_phantoms`): label maps drawn from other shapes (cage width
  profiles, Fourier-perturbed hearts, domes, vertebrae and rib arcs) rendered with random densities, blur, tone,
  bias field and noise;
- the **shapes family** (`medview.core.demo.shape_phantoms`): plain geometric drawings (superellipse lungs
  that may float in soft tissue, lean, taper or end on domes; a heart blob overlapping them a little or a lot,
  brighter or darker than soft tissue; optional spine, rib stripes, clavicles);
- images it must find nothing in: lateral chests, abdomens, pelvises, hands, long bones, knees, spines,
  skulls, test patterns and chests cut off at the edge (every family's masks are exact).
Every batch is randomised far beyond any one generator: per-axis scale, rotation, shift, mirror image,
resolution loss, blur, random monotone tone curves, gamma, bias field, noise, inverted photometry and
collimation borders. BCE + Dice loss, AdamW, one-cycle schedule, torch seed {TORCH_SEED}, deterministic algorithms.
Reproduce with `scripts/train_ctr_model.py` (its docstring has the commands).

## Validation
Fresh seeds ({VAL_SEED}) training never used, each case written as a CR (MONOCHROME1) or DX (MONOCHROME2) Part-10
file at its generator's full size, read back and scored by medview's engine through the exported bundle
(the shipped model's rows on {shipped.get('engine', 'TorchScript')}, the engine's default on the CPU).
A frontal chest the model refused counts as a score of 0 (a refusal is never free). Thresholds: score 0.5 =
CTR {THRESHOLD}.

| model and test set | n | ROC AUC | sensitivity | specificity | CTR MAE | ECE | refused |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows + cross)}

The rows marked "never seen" are the figures that matter for images a model never saw: the **polygons**
family (`ctr_validation.polygon_chest`: straight-edged lungs and heart, a half-transparent heart, coarse grey
levels and salt noise), which no model is ever trained on; the **ellipses** family
(`ctr_validation.ellipse_chest`: elliptic lungs and heart on a flat body), also never trained on, though the
shapes family draws related forms; and the previous weights (trained on the demo and outline families only)
on the three families they never saw. Honest bookkeeping: the polygons family was looked at while the model
was made. Its first version drew some hearts from unevenly spread vertices, as slivers no chest has, and was
corrected. A first v2.1 model under-measured its hearts where they reach below the lungs against soft tissue
only, and the shapes family then learnt to draw such hearts too. A family that is truly never seen is the
one a user brings. The shipped model's rows were measured again (`train_ctr_model.py validate`) when the
measurement learnt to accept a lung hidden behind a very large heart and a thorax along the image's side
(refused before: 6 outline, 3 shapes, 10 ellipses chests), when pre-processing learnt to shrink in whole
steps and ONNX Runtime became the engine; its shapes row also moved because the set is now drawn by the
current shapes generator (the earlier figures came from files an older version had drawn). The cross-family
rows are as `bundle` measured them, with the earlier refusal rules. Goal: AUC ≥ 0.95 and CTR MAE ≤ 0.02.
**{goal_text(v)}**

Out-of-scope images (silent header: DX, no body part, no view; only the pixels can refuse them): answered
{oos['answered']} of {oos['n']} ({kinds}).

`docs/validation.json` keeps every case's truth, measurement and score; `tests/core/test_bundled_model.py`
re-checks these figures against the per-case values and, on other fresh seeds of every family, floors a
little under what was measured (see the test's constants; no out-of-scope image answered).

## Limits
- Synthetic phantoms only: real anatomy, devices, lines and tubes, effusions, consolidation, scoliosis,
  paediatric images and real detector noise were never seen.
- The CTR of an AP or supine image overstates the heart; the model measures what it sees.
- Cases with a CTR within about 0.02 of {THRESHOLD} are inherently uncertain: read the lines, correct them if needed.
- Not a medical device. {RESEARCH_USE_ONLY}.
"""


def goal_text(v: dict) -> str:
    """Which never-seen rows meet the goal, in words: the shipped model's first, then the narrower models'."""
    def ok(f: dict) -> bool:
        return f["auc"] >= 0.95 and f["ctr_mae"] <= 0.02

    def rows(shipped: bool):
        return [(key, fam, f) for key, e in v.items() if key.startswith(("shipped", "trained_on"))
                and (key == "shipped") == shipped for fam, f in e["families"].items() if f["never_seen_in_training"]]

    def words(items) -> str:
        return "; ".join(f"{key.replace('_', ' ')} → {fam} (AUC {f['auc']:.2f}, MAE {f['ctr_mae']:.3f}, "
                         f"{f['refused']} refused)" for key, fam, f in items)

    mine = rows(True)
    met, missed = [r for r in mine if ok(r[2])], [r for r in mine if not ok(r[2])]
    text = (f"The shipped model meets it on {', '.join(fam for _, fam, _ in met)}. " if met else "") + \
        (f"The shipped model misses it on: {words(missed)}. " if missed else "")
    narrow = rows(False)
    narrow_missed = [r for r in narrow if not ok(r[2])]
    if narrow_missed:
        text += ("Models trained on fewer families miss it on families they never saw: " + words(narrow_missed) +
                 ". They refuse many such images (their masks are not those of a frontal chest to them) and "
                 "measure the rest less exactly; variety in training is what carries the shipped model.")
    return text


def args_train_text() -> str:
    return ("the shipped weights were trained on the three phantom families below (starting from the previous "
            "weights, trained on the first two), and validated on two more families drawn differently that no "
            "model is trained on; two more models, each trained from scratch on one family only (8 epochs), "
            "measure the recipe on families they never saw:")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--families", default=",".join(ct.FAMILIES))
    t.add_argument("--per-family", type=int, default=1400)
    t.add_argument("--negatives", type=int, default=700)
    t.add_argument("--epochs", type=int, default=16)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--lr", type=float, default=4e-3, help="peak learning rate of the one-cycle schedule")
    t.add_argument("--init", default="", help="start from these weights (an earlier run's state dict)")
    t.add_argument("--out", required=True)
    t.add_argument("--data-cache", default="", help="keep the made examples in this file and reuse them")
    b = sub.add_parser("bundle")
    b.add_argument("--weights", required=True)
    b.add_argument("--cross", default="", help="family:weights,... of models trained on one family")
    b.add_argument("--out", default=str(bundled_model_path()))
    b.add_argument("--val", type=int, default=200)
    b.add_argument("--negatives-per-kind", type=int, default=20)
    b.add_argument("--calibration", type=int, default=150)
    b.add_argument("--cases-dir", default="", help="keep the validation files here and reuse them next time")
    v = sub.add_parser("validate")
    v.add_argument("--out", default=str(bundled_model_path()))
    v.add_argument("--cases-dir", default="", help="keep the validation files here and reuse them next time")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    code = {"train": train_main, "bundle": bundle_main, "validate": validate_main}[args.command](args)
    print(f"done in {time.perf_counter() - started:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
