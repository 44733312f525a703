"""`seisfm convert CUBE.sgy OUT.sgz`: compress a SEG-Y cube to seismic-zfp's .sgz (fast block reads).

The paper's corpus was read from .sgz for exactly this: extraction and pretraining read sub-volumes
at random positions, which a block-compressed file serves without reading whole traces
(benchmarks/bench_read.py measures it). The output appears only when complete (docs/scale.md).
"""

from __future__ import annotations


def register(sub):
    from ..parsing import triple

    p = sub.add_parser(
        "convert",
        help="compress a SEG-Y cube to .sgz (seismic-zfp): 3-4x smaller at 8 bits, read by sub-volume",
        description="Compress CUBE.sgy to OUT.sgz with seismic-zfp (ZFP at a fixed rate). The output is written under a "
        "temporary name and renamed when complete and checked; the source is only read.",
    )
    p.add_argument("cube", metavar="CUBE.sgy", help="SEG-Y cube or 2-D line")
    p.add_argument("out", metavar="OUT.sgz", help=".sgz file to write (refused if it exists, unless --overwrite)")
    p.add_argument("--bits", type=int, default=8, help="bits per voxel: 8 (default, ~40 dB), 4, 2, 1; 16 is near lossless")
    p.add_argument(
        "--blockshape",
        default=None,
        metavar="IL,XL,T",  # not positive only: -1 is computed from --bits
        type=triple("--blockshape", "16,16,16 or 4,4,-1", minimum=None, single=False),
        help="samples per 4 KiB disk block, powers of two, one may be -1 (default 4,4,-1: fast lines; "
        "e.g. 16,16,16 at 8 bits for cubic sub-volume reads)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.sgz")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..io.sgz import convert_segy
    from ..progress_bar import ProgressBar

    blockshape = args.blockshape
    with ProgressBar("convert", "B", unit_scale=True) as bar:
        out = convert_segy(args.cube, args.out, bits=args.bits, blockshape=blockshape, overwrite=args.overwrite, progress=bar)
    print(f"wrote {out}: {args.bits} bits per voxel")
    return 0
