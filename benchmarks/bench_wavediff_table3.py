"""The study's Table 3 design at CPU scale: an InversionNet-style network trained on generated pairs
+ a fraction of real (solver-made) pairs vs that fraction alone vs generated alone, MAE on fresh
held-out pairs. Prints JSON and a Markdown table.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_wavediff_table3.py --data PAIRS [--model M]
        [--generated 1000] [--fractions 0.1,0.01] [--steps 1500] [--test 256]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main():
    from napari_seisfm.wavediff.augment import generate, table3
    from napari_seisfm.wavediff.data import generate_pairs, open_pairs, seismic_to_model, velocity_to_model
    from napari_seisfm.wavediff.model import load
    from napari_seisfm.wavediff.vqae import VQ_CONFIGS

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="folder with data.npy + model.npy: the full 'real' set")
    ap.add_argument("--model", help="WaveDiffusion model (default: bundled)")
    ap.add_argument("--generated", type=int, default=1000)
    ap.add_argument("--fractions", default="0.1,0.01")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--test", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()
    model, _ = load(args.model)
    setup = model.setup
    s, v = open_pairs(f"{args.data}/data.npy", f"{args.data}/model.npy", setup)
    real = seismic_to_model(np.asarray(s), setup), velocity_to_model(np.asarray(v), setup)
    ts, tv = generate_pairs(args.test, setup, seed=30_000 + args.seed)
    test = seismic_to_model(ts, setup), velocity_to_model(tv, setup)
    gen = generate(model, args.generated, seed=args.seed)
    rows = table3(
        gen, real, test, [float(f) for f in args.fractions.split(",")], setup, VQ_CONFIGS["tiny"], args.steps, seed=args.seed
    )
    out = {
        "rows": rows,
        "n_real_full": int(real[0].shape[0]),
        "n_generated": args.generated,
        "steps": args.steps,
        "n_test": args.test,
        "minutes": round((time.time() - t0) / 60, 1),
    }
    print(json.dumps(out, indent=2))
    print("\n| training data | pairs | velocity MAE |\n|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['n_train']} | {r['mae']:.4f} |")


if __name__ == "__main__":
    main()
