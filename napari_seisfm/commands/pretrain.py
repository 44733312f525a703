"""`seisfm pretrain`: a model of your own survey (MAE pretraining, CPU or GPU, resumable)."""

from __future__ import annotations

import shlex
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain a ViT (MAE) on your cubes and image sets; the result is a model embed can use",
        description="Masked-autoencoder pretraining (the NCS-models recipe: 85%% masking, AdamW, warm-up + "
        "cosine) on random windows of the given cubes (SEG-Y, .sgz, .npy) and image sets (.npz). The "
        "folder --out receives checkpoint.pt (resumable), losses.csv/png, reconstructions.png and, when "
        "the last step is done, the model: NAME.safetensors + NAME.toml, listed by seisfm models and "
        "usable as seisfm embed --model NAME (or --model DIR).",
    )
    p.add_argument("cubes", nargs="*", metavar="CUBE", help="seismic cubes to train on (.sgy, .segy, .sgz, .npy)")
    p.add_argument(
        "--images",
        action="append",
        default=[],
        metavar="FILE.npz",
        help="labelled or unlabelled image set (2-D sections; labels unused); repeatable",
    )
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="also train on N synthetic surveys (seeds 1000..)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (created; --resume continues the run in it)")
    p.add_argument("--name", help="model id (default: the folder's name)")
    p.add_argument("--tokenization", default="2.5d", choices=["2d", "2.5d", "3d"])
    p.add_argument("--size", default="test", help="ViT size: test (CPU), tiny, small, base (default: test)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="wall-clock budget (turned into a step count after a few steps)")
    budget.add_argument("--steps", type=int, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--base-lr",
        type=float,
        default=None,
        help="learning rate = BASE_LR x batch / 256 (default: MAE's 1.5e-4, but the rate never below 3.75e-4, "
        "which short runs at small batches need; see docs/pretraining.md)",
    )
    p.add_argument("--mask-ratio", type=float, default=0.85)
    p.add_argument("--weights", help="sampling weight per source, comma-separated, in the order cubes, images, synthetic")
    p.add_argument("--val", metavar="CUBE", help="held-out cube for a validation loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--init", metavar="CHECKPOINT", help="start from these weights (our MAE, or any encoder embed reads)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--no-install", action="store_true", help="do not list the model in the user's model directory")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..pretrain.run import pretrain
    from ..progress_bar import ProgressBar

    if args.resume:
        check_resume_options(args)
    bar = ProgressBar("pretrain", "step")

    def progress(p):
        post = {"loss": f"{p.loss:.3f}", "lr": f"{p.lr:.1e}", "win/s": f"{p.samples_per_s:.0f}"}
        if p.val_loss is not None:
            post["val"] = f"{p.val_loss:.3f}"
        bar(p.step, p.total, post)

    try:
        result = pretrain(
            cubes=args.cubes,
            images=args.images,
            synthetic=args.synthetic,
            out=args.out,
            name=args.name,
            tokenization=args.tokenization,
            size=args.size,
            minutes=args.minutes,
            steps=args.steps,
            batch_size=args.batch_size,
            base_lr=args.base_lr,
            mask_ratio=args.mask_ratio,
            weights=args.weights,
            val=args.val,
            seed=args.seed,
            device=args.device,
            init=args.init,
            resume=args.resume,
            install=not args.no_install,
            progress=progress,
            command="seisfm " + shlex.join(sys.argv[1:]),
        )
    finally:
        bar.close()
    if result.card is not None:
        print(f"model {result.model_id}: {result.card}")
        print(
            f"loss {result.first_loss:.3f} -> {result.last_loss:.3f} over {result.steps} steps; "
            f"curves {result.out / 'losses.png'}, reconstructions {result.out / 'reconstructions.png'}"
        )
        if result.installed:
            print(f"listed in {result.installed}: seisfm embed --model {result.model_id} CUBE")
        else:
            if not args.no_install:
                print(f"not listed: the id {result.model_id!r} is taken by another model (--name sets another id)")
            print(f"use it with: seisfm embed --model {result.out} CUBE")
    return 0


def check_resume_options(args) -> None:
    """A resumed run keeps its own settings: a different budget or an --init is one clear line,
    not silently ignored (the same command line plus --resume is fine)."""
    from ..errors import SeisfmError
    from ..pretrain.trainer import read_checkpoint

    if args.init:
        raise SeisfmError(f"{args.out}: --init starts a new run; --resume continues this one from its checkpoint")
    if args.steps is None and args.minutes is None:
        return
    s = read_checkpoint(args.out)["settings"]
    if (args.steps, args.minutes) != (s["steps"], s["minutes"]):
        had = f"--steps {s['steps']}" if s["steps"] is not None else f"--minutes {s['minutes']}"
        raise SeisfmError(f"{args.out}: --resume keeps the run's budget ({had}); give no --steps or --minutes")
