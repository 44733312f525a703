"""`seisfm embed`: extract a feature volume from a cube (headless twin of the "Extract embeddings" widget).

One writer per store: a second `seisfm embed` on the same --out (``--overwrite`` included) is refused
while the first lives (the lock file ``FEATURES.zarr.lock`` names it); a killed run leaves a stale lock
that the next run takes over, and resumes or (``--overwrite``) replaces its store. docs/reliability.md.
"""

from __future__ import annotations

from ..errors import SeisfmError
from ..parsing import parse_triple


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "embed",
        help="extract embeddings on a strided grid of a cube into a feature store (.zarr)",
        description="Embed every STRIDE-th sample of CUBE with a model and write a resumable zarr feature store.",
    )
    p.add_argument("cube", metavar="CUBE", help="seismic cube (.sgy, .segy, .sgz, .npy)")
    p.add_argument("--out", required=True, metavar="FEATURES.zarr", help="feature store to write")
    p.add_argument("--model", default=None, metavar="ID", help="model card id (default: the embedded default model; see `seisfm models`)")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="weights file for the model")
    p.add_argument("--stride", default="4", help="grid stride: one number or three (inline,crossline,time), e.g. 4 or 4,4,2 (default 4)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"), help="autocast precision on GPU (default auto)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="windows per forward pass (default: the model's)")
    p.add_argument("--pca", type=int, default=64, metavar="DIMS", help="reduce to DIMS with PCA when the model has more; 0 keeps all (default 64)")
    p.add_argument("--dtype", default="i8", choices=("i8", "f16", "f32"), help="stored vector type (default i8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store (refused while another writer holds it)")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="do not continue a partial store (error if it exists)")
    p.set_defaults(run=run)


def run(args) -> int:
    from tqdm import tqdm

    from ..extract import extract_features

    stride = parse_triple(args.stride, "--stride", "4 or 4,4,2")
    if args.batch_size is not None and args.batch_size < 1:
        raise SeisfmError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.pca < 0:
        raise SeisfmError(f"--pca {args.pca}: must be 0 (off) or a positive number of dimensions")
    bars = []  # created on the first report, so an early error prints no empty bar

    def progress(done, total):
        if not bars:
            if done:
                print(f"resuming {args.out}: {done}/{total} chunks already done")
            bars.append(tqdm(total=total, initial=int(done), unit="chunk", desc="embed", dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n:.1f}/{total} [{elapsed}<{remaining}]"))
        bars[0].n = round(done, 1)  # fractions of a chunk as the embedder's batches finish
        bars[0].refresh()

    try:
        fv = extract_features(
            args.cube,
            args.out,
            model=args.model,
            checkpoint=args.checkpoint,
            stride=stride,
            pca=args.pca,
            dtype=args.dtype,
            device=args.device,
            precision=args.precision,
            batch_size=args.batch_size,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=progress,
        )
    finally:
        for bar in bars:
            bar.close()
    print(f"wrote {fv.path}: grid {fv.grid.shape} (stride {fv.grid.stride}), {fv.dim}-d {fv.dtype}, model {fv.model}")
    return 0
