"""Survey library: how many of the first 12 places of a search sit in the seabed band, on the synthetic survey
and on the Penobscot line. A quality measurement (counts), not a timing.

    .venv/bin/python benchmarks/library_seabed.py --work /tmp/seabed                      # this checkout's defaults
    .venv/bin/python benchmarks/library_seabed.py --work /tmp/seabed --keep-seabed        # bodies, seabed kept
    PYTHONPATH=/path/to/older/checkout .venv/bin/python benchmarks/library_seabed.py --work /tmp/seabed --tag before

Data (made once in ``--work`` and reused, so runs of different checkouts search the same stores):
- **synthetic**: `seisfm synth --size 128` with seeds 1 and 2 (`synth1.sgy`, `synth2.sgy`), each embedded with
  `seisfm embed` (default model and stride 4); one library of both. The seabed per trace is the ground truth:
  the first sample below the water (`make_survey(...).horizons > 0`).
- **penobscot**: `../shared/data/real/penobscot_xl1155.sgy` (601 traces x 1501 samples), embedded the same way,
  in a library of its own. The seabed per trace is the first sample whose amplitude departs from the line's mean by
  2 standard deviations: on inlines 1070-1600 that is the seabed reflection at 176-212 ms (checked on a picture
  of the section); on inlines 1000-1069 the data are muted (zero) down to a taper that reaches 1.5 s, and the
  pick follows the taper's edge. It is the same rule the library uses, so for this line the measurement shows
  how often the band reaches the list, not whether the pick is right.

The library is built by the checkout that runs the script (``add_stores``), into ``--work/lib-<data>-<tag>``.
Queries: every ``--every``-th grid point per axis of the first cube (synth1, the Penobscot line) that lies under
the band (a click on the seabed itself wants the seabed); each is searched with ``search_library(..., top=12)``
at the checkout's defaults. A place is **in the band** when its time is at most the seabed time of its trace
plus one grid step (stride 4: 16 ms); **near** widens that to three grid steps. Prints JSON: per data set the
number of queries, the mean number of the 12 in the band, the share of queries with at least 1 / at least 6 / at
least 8 of 12 in the band, the same for "shallow" queries (within three grid steps under the band), the
mean number of entries returned, how many queries fell in the library's own band (searched with the seabed then)
and the share of the grid points that the library's bands leave out.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PENOBSCOT = HERE.parents[1] / "shared" / "data" / "real" / "penobscot_xl1155.sgy"
TOP = 12


def seisfm(*argv) -> None:
    subprocess.run([sys.executable, "-m", "napari_seisfm.cli", *argv], check=True, stdout=subprocess.DEVNULL)


def prepare(work: Path) -> dict:
    """Cubes and stores (made once); per data set its stores and the seabed sample per trace of each cube."""
    from napari_seisfm.io import open_cube
    from napari_seisfm.store.volume import FeatureVolume
    from napari_seisfm.synthetic import make_survey

    work.mkdir(parents=True, exist_ok=True)
    sets = {"synthetic": {"stores": [], "seabed": {}}, "penobscot": {"stores": [], "seabed": {}}}
    for seed in (1, 2):
        cube, store = work / f"synth{seed}.sgy", work / f"synth{seed}.zarr"
        if not cube.exists():
            seisfm("synth", str(cube), "--seed", str(seed), "--size", "128")
        if not (store / "zarr.json").exists():
            seisfm("embed", str(cube), "--out", str(store))
        sets["synthetic"]["stores"].append(store)
        sets["synthetic"]["seabed"][str(store.resolve())] = (make_survey((128,) * 3, seed=seed).horizons > 0).argmax(axis=2)
    if PENOBSCOT.exists():
        cube, store = work / PENOBSCOT.name, work / "penobscot.zarr"
        if not cube.exists():
            shutil.copy(PENOBSCOT, cube)
        if not (store / "zarr.json").exists():
            seisfm("embed", str(cube), "--out", str(store))
        n = FeatureVolume.open(store).normalisation
        a = open_cube(cube).read()
        sets["penobscot"]["stores"].append(store)
        sets["penobscot"]["seabed"][str(store.resolve())] = (np.abs(a - n["mean"]) >= 2 * n["std"]).argmax(axis=2)
    else:
        del sets["penobscot"]
    return sets


def measure(name: str, data: dict, work: Path, tag: str, every: int, keep_seabed: bool) -> dict:
    from napari_seisfm.search import FeatureMatrix
    from napari_seisfm.search.library import Library, add_stores, search_library
    from napari_seisfm.store.volume import FeatureVolume

    lib_dir = work / f"lib-{name}-{tag}"
    if lib_dir.exists():
        shutil.rmtree(lib_dir)
    add_stores(lib_dir, data["stores"], threads=1)
    lib = Library.open(lib_dir)
    options = {"top": TOP}
    if keep_seabed:
        if "seabed" not in inspect.signature(search_library).parameters:
            raise SystemExit("--keep-seabed: this checkout's search_library has no seabed option")
        options["seabed"] = True
    grids = {str(Path(s).resolve()): FeatureVolume.open(s).grid for s in data["stores"]}

    def rows_of_band(store: str, widen: int) -> np.ndarray:
        """Per grid column: grid rows whose time lies at most ``widen`` grid steps under the seabed."""
        g = grids[store]
        sb = data["seabed"][store][g.origin[0] :: g.stride[0], g.origin[1] :: g.stride[1]][: g.shape[0], : g.shape[1]]
        return np.clip((sb + widen * g.stride[2] - g.origin[2]) // g.stride[2] + 1, 0, g.shape[2])

    band = {s: rows_of_band(s, 1) for s in grids}
    near = {s: rows_of_band(s, 3) for s in grids}
    first = str(Path(data["stores"][0]).resolve())
    fm = FeatureMatrix.open(first)
    counts, wide, entries, shallow, exempt = [], [], [], [], []
    for i in range(0, fm.shape[0], every):
        for j in range(0, fm.shape[1], every):
            for k in range(int(band[first][i, j]), fm.shape[2], every):
                got = search_library(lib, fm, [fm.grid_to_survey((i, j, k))], **options)
                counts.append(sum(m.grid_index[2] < band[m.store][m.grid_index[:2]] for m in got))
                wide.append(sum(m.grid_index[2] < near[m.store][m.grid_index[:2]] for m in got))
                entries.append(len(got))
                exempt.append(bool(getattr(lib, "last", {}).get("clicked_in_seabed_band")))
                shallow.append(k < int(band[first][i, j]) + 3)

    def summary(c, mask=None):
        c = np.asarray(c) if mask is None else np.asarray(c)[np.asarray(mask)]
        return {
            "queries": int(len(c)),
            "mean_in_band_of_12": round(float(c.mean()), 3),
            "share_at_least_1": round(float((c >= 1).mean()), 4),
            "share_at_least_6": round(float((c >= 6).mean()), 4),
            "share_at_least_8": round(float((c >= 8).mean()), 4),
            "max": int(c.max()),
        }

    picked = getattr(lib, "seabed_bands", dict)()  # the library's own bands (this checkout's), if any
    in_picked = sum(int(b.sum()) for b in picked.values() if b is not None)
    return {
        "all": summary(counts),
        "shallow": summary(counts, shallow),
        "near_band_all": summary(wide),
        "near_band_shallow": summary(wide, shallow),
        "mean_entries": round(float(np.mean(entries)), 2),
        "queries_in_the_librarys_band": int(np.sum(exempt)),
        "grid_points_in_the_librarys_band": round(in_picked / sum(g.size for g in grids.values()), 4),
        "library": str(lib_dir),
        "options": dict(options.items()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, type=Path, help="folder for the cubes, stores and libraries (reused)")
    ap.add_argument("--tag", default="after", help="name of this run's libraries (default: after)")
    ap.add_argument("--every", type=int, default=2, help="query every N-th grid point per axis (default 2)")
    ap.add_argument("--keep-seabed", action="store_true", help="search with seabed=True (this checkout's option)")
    args = ap.parse_args(argv)
    import napari_seisfm

    sets = prepare(args.work)
    out = {"package": str(Path(napari_seisfm.__file__).parent), "top": TOP, "every": args.every}
    for name, data in sets.items():
        out[name] = measure(name, data, args.work, args.tag, args.every, args.keep_seabed)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
