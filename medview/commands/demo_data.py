"""`medview demo-data OUT [--cases N] [--seed S] [--ct-slices K]`: synthetic studies (SPEC section 5).

Imports only numpy/pydicom (no Qt, no torch) so it starts fast. An unusable OUT (a non-empty folder that is
not an earlier demo output) is a UsageError: one line on stderr and exit code 2 (cli.py).
"""

from __future__ import annotations

import sys


def run(args) -> int:
    from medview.core.demo import generate_demo

    summary = generate_demo(args.out, cases=args.cases, seed=args.seed, ct_slices=args.ct_slices, priors=True)
    ct = f", 1 CT study ({len(summary.ct_files)} slices + topogram)" if summary.ct_files else ""
    priors = f", {len(summary.priors)} prior radiographs" if summary.priors else ""
    print(
        f"wrote {len(summary.radiographs)} chest radiographs ({summary.positives} with cardiomegaly){priors}{ct} "
        f"to {summary.out} in {summary.seconds:.1f} s; labels in {summary.ground_truth}",
        file=sys.stderr,
    )
    return 0
