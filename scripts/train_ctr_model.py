"""Train the cardiothoracic-ratio model, measure it across phantom families, and write the bundle.

    .venv/bin/python scripts/train_ctr_model.py train --families demo,outline --out W.pt   # the shipped weights
    .venv/bin/python scripts/train_ctr_model.py train --families demo --out A.pt            # cross-family runs
    .venv/bin/python scripts/train_ctr_model.py train --families outline --out B.pt
    .venv/bin/python scripts/train_ctr_model.py bundle --weights W.pt --cross demo:A.pt,outline:B.pt

`train` writes a state dict (weights only); `bundle` exports it to resources/models/cardiomegaly, calibrates
the score on fresh phantoms of both families, and validates every model on fresh seeds of the families
(for the cross-family models: the family each never saw), through the exported bundle and the same files,
display pipeline and measurement as `medview infer`. Seeds are fixed; torch runs deterministically.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from medview.core.inference import ctr_training as ct
from medview.core.inference.network import CtrSegNet

TRAIN_SEED, TORCH_SEED = 1101, 0


def train_main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    say = lambda text: print(text, flush=True)  # noqa: E731
    families = tuple(args.families.split(","))
    plan = ct.plan_for(families, args.per_family, args.negatives, TRAIN_SEED)
    say(f"making {len(plan)} training examples ({', '.join(families)}; {args.negatives} out of scope)")
    x, y = ct.build_set(plan, workers=args.workers, progress=say)
    model = ct.train_segmentation(CtrSegNet(), x, y, epochs=args.epochs, seed=TORCH_SEED, progress=say)
    torch.save(model.state_dict(), args.out)
    say(f"weights written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--families", default="demo,outline")
    t.add_argument("--per-family", type=int, default=1400)
    t.add_argument("--negatives", type=int, default=700)
    t.add_argument("--epochs", type=int, default=16)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    code = train_main(args)
    print(f"done in {time.perf_counter() - started:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
