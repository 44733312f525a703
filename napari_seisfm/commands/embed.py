"""`seisfm embed`: extract a feature volume from a cube (headless twin of the "Extract embeddings" widget).

Several cubes, or a folder of them, go to ``--out DIR`` (one ``<cube>.zarr`` each) on a Dask cluster, split
per cube and per store chunk: a local one of ``--workers`` processes by default (one per GPU for a ViT model
on a machine with GPUs), an existing one with ``--scheduler ADDRESS`` (``--scheduler none``: one cube after
the other here). many_cubes.py says what survives a lost worker.

One writer per store: a second `seisfm embed` on the same --out (``--overwrite`` included) is refused
while the first lives (the lock file ``FEATURES.zarr.lock`` names it); a killed run leaves a stale lock
that the next run takes over, and resumes or (``--overwrite``) replaces its store. docs/reliability.md.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SeisfmError
from ..parsing import integer, triple

# names of files, never of a feature store (a .zarr folder)
FILE_SUFFIXES = (
    ".npy",
    ".npz",
    ".h5",
    ".hdf5",
    ".sgy",
    ".segy",
    ".sgz",
    ".json",
    ".csv",
    ".png",
    ".txt",
    ".pt",
    ".pth",
    ".safetensors",
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "embed",
        help="extract embeddings on a strided grid of a cube into a feature store (.zarr)",
        description="Embed every STRIDE-th sample of CUBE with a model and write a resumable zarr feature store.",
    )
    p.add_argument(
        "cubes", nargs="+", metavar="CUBE", help="seismic cube (.sgy, .segy, .sgz, .npy); several cubes or folders: a survey"
    )
    p.add_argument(
        "--out", required=True, metavar="FEATURES.zarr|DIR", help="feature store to write (a survey: a folder of stores)"
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a survey: Dask scheduler to use (default: a local cluster; 'none': no Dask)",
    )
    p.add_argument(
        "--workers",
        type=integer("--workers {value}: must be at least 1", lo=1),
        default=None,
        metavar="N",
        help="a survey: worker processes of the local cluster (default: one per GPU for a ViT model on a GPU machine, else Dask's choice)",
    )
    p.add_argument(
        "--model", default=None, metavar="ID", help="model card id (default: the embedded default model; see `seisfm models`)"
    )
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="weights file for the model")
    p.add_argument(
        "--stride",
        default="4",
        type=triple("--stride", "4 or 4,4,2"),
        help="grid stride: one number or three (inline,crossline,time), e.g. 4 or 4,4,2 (default 4)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument(
        "--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"), help="autocast precision on GPU (default auto)"
    )
    p.add_argument(
        "--batch-size",
        type=integer("--batch-size {value}: must be at least 1", lo=1),
        default=None,
        metavar="N",
        help="windows per forward pass (default: the model's)",
    )
    p.add_argument(
        "--pca",
        type=integer("--pca {value}: must be 0 (off) or a positive number of dimensions", lo=0),
        default=64,
        metavar="DIMS",
        help="reduce to DIMS with PCA when the model has more; 0 keeps all (default 64)",
    )
    p.add_argument("--dtype", default="i8", choices=("i8", "f16", "f32"), help="stored vector type (default i8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store (refused while another writer holds it)")
    p.add_argument(
        "--no-resume", dest="resume", action="store_false", help="do not continue a partial store (error if it exists)"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from ..extract import extract_features
    from ..progress_bar import ProgressBar

    stride = args.stride
    options = {
        "model": args.model,
        "checkpoint": args.checkpoint,
        "stride": stride,
        "pca": args.pca,
        "dtype": args.dtype,
        "device": args.device,
        "precision": args.precision,
        "batch_size": args.batch_size,
        "resume": args.resume,
        "overwrite": args.overwrite,
    }
    if len(args.cubes) > 1 or Path(args.cubes[0]).is_dir():
        return run_survey(args, options)
    if args.scheduler or args.workers:
        raise SeisfmError("--scheduler and --workers are for several cubes (a survey); one cube runs here")
    out = Path(args.out)
    if out.suffix.lower() in FILE_SUFFIXES:  # a store is a folder: x.npy would be a folder named like an array
        raise SeisfmError(
            f"--out {out}: a feature store is a .zarr folder, not a {out.suffix} file; name it "
            f"{out.with_suffix('.zarr').name} (`seisfm features export STORE {out.name}` writes arrays)"
        )
    # fractions of a chunk as the embedder's batches finish
    bar = ProgressBar("embed", bar_format="{l_bar}{bar}| {n:.1f}/{total} [{elapsed}<{remaining}]")

    def progress(done, total):
        if not bar.started and done:
            print(f"resuming {args.out}: {done}/{total} chunks already done")
        bar(done, total)

    with bar:
        fv = extract_features(args.cubes[0], args.out, progress=progress, **options)
    print(f"wrote {fv.path}: grid {fv.grid.shape} (stride {fv.grid.stride}), {fv.dim}-d {fv.dtype}, model {fv.model}")
    return 0


def run_survey(args, options) -> int:
    from ..many_cubes import connect, disconnect, embed_many, list_cubes, local_gpus
    from ..progress_bar import ProgressBar

    out = Path(args.out)
    if out.suffix.lower() == ".zarr" or (out.exists() and not out.is_dir()):
        raise SeisfmError(f"--out {out}: several cubes need a folder (one <cube>.zarr each inside)")
    cubes = list_cubes(args.cubes)  # refuse missing files before starting a cluster
    client = connect(args.scheduler, args.workers, gpus=local_gpus(args.model, args.device) if args.scheduler is None else 0)
    where = "here, one cube after the other" if client is None else f"on Dask ({client.dashboard_link})"
    print(f"embedding {len(cubes)} cubes into {out}/ {where}")
    bar = ProgressBar("survey")
    try:
        results = embed_many(cubes, out, client=client, progress=bar, **options)
    finally:
        bar.close()
        if client is not None:
            disconnect(client)
    for r in results:
        print(f"wrote {r.store} ({r.chunks} chunks, {r.seconds:.1f} s)")
    return 0
