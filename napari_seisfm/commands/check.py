"""`seisfm check STORE [--repair --cube CUBE]`: verify every chunk of a feature store; recompute damaged ones.

A chunk is sound when its embeddings and valid flags are present, pass their CRC-32C checksum (stores
written since checksums were added), decode to the right shape and (float stores) are finite, and its
done flag is set in a complete store. A damaged PCA basis (lost, garbled or changed) is one error line:
every vector depends on it, so it is never "repaired" from a guess. ``--repair`` recomputes
the damaged chunks from the cube through the extraction code path, then verifies again.
"""

from __future__ import annotations


def register(sub):
    p = sub.add_parser(
        "check", help="verify every chunk of a feature store (.zarr); --repair recomputes damaged chunks", description=__doc__
    )
    p.add_argument("store", metavar="STORE", help="feature store written by `seisfm embed`")
    p.add_argument("--repair", action="store_true", help="recompute damaged chunks from --cube")
    p.add_argument("--cube", metavar="CUBE", help="the cube the store was extracted from (needed by --repair)")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="weights file of the store's model (models with weights)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ... for --repair (default auto)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..errors import SeisfmError
    from ..store.volume import FeatureVolume

    if args.repair and not args.cube:
        raise SeisfmError("--repair recomputes chunks from the cube: give --cube CUBE")
    fv = FeatureVolume.open(args.store, allow_partial=True)
    bad = report(fv)
    if bad and args.repair:
        from ..extract import repair_store

        repair_store(args.store, args.cube, checkpoint=args.checkpoint, device=args.device)
        fv = FeatureVolume.open(args.store, allow_partial=True)
        print(f"{args.store}: recomputed {len(bad)} chunks; checking again")
        bad = report(fv)
    if bad:
        hint = "" if args.repair else f"; repair with `seisfm check {args.store} --repair --cube CUBE`"
        raise SeisfmError(f"{args.store}: {len(bad)} damaged chunks{hint}")
    done, total = fv.progress()
    state = "complete" if fv.complete else f"partial ({done}/{total} chunks done; resume it with `seisfm embed`)"
    sums = (
        "CRC-32C checksums verified"
        if fv.checksums
        else "no checksums in this older store: bit flips that still decode go unnoticed"
    )
    print(f"{args.store}: {total} chunks sound, {state}; {sums}")
    return 0


def report(fv) -> list:
    """Print one line per damaged chunk; return them."""
    bad = fv.verify()
    for idx, problem in bad:
        region = ", ".join(f"{s.start}:{s.stop}" for s in fv.chunk_region(idx))
        print(f"{fv.path}: chunk {tuple(int(i) for i in idx)} (grid {region}): {problem}")
    return bad
