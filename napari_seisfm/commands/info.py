"""`seisfm info FILE`: geometry, sample format, size and dead traces of a cube."""

from __future__ import annotations


def register(sub):
    p = sub.add_parser("info", help="describe a seismic file (geometry, format, size, dead traces)")
    p.add_argument("file", help=".sgy/.segy/.sgz/.npy file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    import warnings

    from ..io import open_cube

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_cube(args.file) as cube:
            info = describe(cube)
    info["warnings"] = sorted({str(w.message) for w in caught})
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    g = info["geometry"]
    print(f"{info['file']}")
    print(f"  kind        {g['kind']}  ({info['format']})")
    print(f"  shape       {g['shape'][0]} inlines x {g['shape'][1]} crosslines x {g['shape'][2]} samples")
    print(f"  inlines     {g['ilines'][0]}..{g['ilines'][1]} step {g['ilines'][2]}")
    print(f"  crosslines  {g['xlines'][0]}..{g['xlines'][1]} step {g['xlines'][2]}")
    print(f"  {g['domain']:<11} {g['samples'][0]}..{g['samples'][1]} {g['sample_unit']} step {g['samples'][2]}")
    print(f"  dead traces {g['dead_traces']}")
    print(f"  size        {info['size_bytes'] / 2**20:.1f} MiB on disk, {info['float32_bytes'] / 2**20:.1f} MiB as float32")
    for note in g["notes"] + info["warnings"]:
        print(f"  note        {note}")
    return 0


def describe(cube) -> dict:
    import os

    size = os.path.getsize(cube.path) if cube.path else cube.nbytes
    fmt = cube.info.get("format_name") or cube.info.get("format", "")
    extra = {k: v for k, v in cube.info.items() if k in ("endian", "sorting", "bits_per_voxel", "traces")}
    return {
        "file": str(cube.path),
        "format": str(fmt),
        **extra,
        "geometry": cube.geometry.summary(),
        "size_bytes": size,
        "float32_bytes": cube.nbytes,
    }
