"""`seisfm synth OUT`: a synthetic survey with ground-truth labels, written through the real I/O path."""

from __future__ import annotations

from ..parsing import triple


def register(sub):
    p = sub.add_parser("synth", help="write a synthetic cube and its ground-truth labels")
    p.add_argument("out", help="output file: .sgy, .sgz or .npy (labels go to <stem>_labels.<ext>)")
    p.add_argument(
        "--size", default="128", type=triple("--size", "128 or 128,128,256"), help="N or NI,NX,NT samples (default 128)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("sgy", "sgz", "npy"), help="default: from the OUT suffix")
    p.add_argument("--noise", type=float, default=0.1, help="noise level relative to signal RMS")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from ..errors import SeisfmError
    from ..io.output import atomic_output, prepare_output
    from ..synthetic import make_survey, survey_geometry

    out = Path(args.out)
    fmt = args.format or out.suffix.lower().lstrip(".").replace("segy", "sgy")
    if fmt not in ("sgy", "sgz", "npy"):
        raise SeisfmError(f"{out}: say --format sgy|sgz|npy or use one of those suffixes")
    out = out.with_suffix("." + fmt)
    shape = args.size
    check_memory(shape, "--size")  # before anything is allocated: 40000^3 used to run until memory ran out
    prepare_output(out)
    survey = make_survey(shape, seed=args.seed, noise=args.noise)
    geometry = survey_geometry(survey)
    labels_path = out.with_name(out.stem + "_labels." + fmt)
    write(out, survey.amplitude, geometry, fmt)
    write(labels_path, survey.labels.astype("float32" if fmt != "npy" else "uint8"), geometry, fmt, labels=True)
    classes_path = out.with_name(out.stem + "_classes.json")
    with atomic_output(classes_path) as tmp:
        tmp.write_text(json.dumps(survey.classes, indent=1))
    print(f"wrote {out} {survey.amplitude.shape} and {labels_path} (classes in {classes_path.name})")
    return 0


BYTES_PER_SAMPLE = 64  # peak memory of make_survey per cube sample (measured 50-60 bytes at 64^3 and 128^3)


def check_memory(shape, option: str) -> None:
    """Refuse a synthetic survey whose generation would not fit in half the memory available now."""
    from ..cube import available_memory
    from ..errors import SeisfmError
    from ..io.output import format_bytes

    n = 1
    for v in shape:
        n *= int(v)
    need = n * BYTES_PER_SAMPLE
    free = available_memory()
    if free and need > free // 2:
        size = ",".join(str(int(v)) for v in shape)
        raise SeisfmError(
            f"{option} {size}: {n:.3g} samples need about {format_bytes(need)} of memory to generate "
            f"({BYTES_PER_SAMPLE} bytes per sample), more than half of the {format_bytes(free)} available"
        )


def write(path, data, geometry, fmt, labels=False):
    if fmt == "sgy":
        from ..io.segy import write_segy

        write_segy(path, data, geometry)
    elif fmt == "sgz":
        from ..io.sgz import write_sgz

        write_sgz(path, data, geometry, bits_per_voxel=16 if labels else 8)
    else:
        from ..io.npy import write_npy

        write_npy(path, data, geometry)
