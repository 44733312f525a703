"""`seisfm wavediff simulate|train|sample|invert|residual`: joint seismic-velocity latent diffusion
(WaveDiffusion) with a finite-difference check of physical consistency."""

from __future__ import annotations

import shlex
import sys


def register(sub) -> None:
    from ..parsing import real

    p = sub.add_parser(
        "wavediff",
        help="joint seismic-velocity latent diffusion checked by a wave-equation solver",
        description="WaveDiffusion (docs/wavediffusion.md): simulate OpenFWI-like pairs, train the VQ "
        "autoencoder + latent DDPM, sample pairs, invert gathers, measure the PDE deviation.",
    )
    ws = p.add_subparsers(dest="wavediff_command", metavar="{simulate,train,sample,invert,residual}", required=True)

    s = ws.add_parser("simulate", help="velocity maps -> shot gathers (generated families or your .npy maps)")
    _setup_args(s)
    s.add_argument("--n", type=limited("n"), default=100, help="number of generated pairs (default 100)")
    s.add_argument("--kinds", default="flatvel,curvevel,flatfault,style", help="velocity families, comma-separated")
    s.add_argument("--velocity", metavar="FILE.npy", help="forward-model these maps (N x 1 x nz x nx or nz x nx, m/s) instead")
    s.add_argument("--seed", type=limited("seed"), default=0)
    s.add_argument("--out", required=True, metavar="DIR", help="folder for data.npy (seismic) and model.npy (velocity)")
    _common(s, run_simulate)

    t = ws.add_parser("train", help="train Stage 1 (VQ autoencoder) then Stage 2 (latent DDPM); resumable")
    t.add_argument("--data", required=True, metavar="DIR", help="folder with data.npy and model.npy (OpenFWI layout)")
    t.add_argument("--out", required=True, metavar="DIR", help="run folder (--resume continues the run in it)")
    _setup_args(t)
    t.add_argument(
        "--size", default="tiny", choices=["micro", "tiny", "full"], help="network sizes (full: the study's; micro: tests)"
    )
    t.add_argument("--two-vq", action="store_true", help="a codebook per modality instead of one shared")
    t.add_argument(
        "--stage1-steps",
        type=limited("stage1_steps"),
        help="Stage 1 steps (default 2000; with --resume: a new total for the run)",
    )
    t.add_argument(
        "--stage2-steps",
        type=limited("stage2_steps"),
        help="Stage 2 steps (default 2000; with --resume: a new total for the run)",
    )
    t.add_argument("--batch-size", type=limited("batch_size"), default=16)
    t.add_argument(
        "--minutes",
        type=real("--minutes {value}: must be 0 or more", lo=0),
        help="stop this call after about MINUTES with a checkpoint (continue with --resume)",
    )
    t.add_argument("--name", help="model name (default: the folder's name)")
    t.add_argument("--seed", type=limited("seed"), default=0)
    t.add_argument("--resume", action="store_true")
    _common(t, run_train)

    for name, helptext, fn in (
        ("sample", "generate seismic-velocity pairs from noise", run_sample),
        ("invert", "gathers -> velocity: Stage 1 and diffusion-refined, with MAE", run_invert),
        ("residual", "PDE deviation of trained, random and denoised-random latents", run_residual),
    ):
        r = ws.add_parser(name, help=helptext)
        r.add_argument("--model", metavar="FILE.safetensors", help="a trained model (default: the bundled tiny one)")
        r.add_argument("--seed", type=limited("seed"), default=0)
        if name == "sample":
            r.add_argument("--n", type=limited("n"), default=8)
            r.add_argument("--out", required=True, metavar="FILE.npz", help="seismic, velocity (networks' space) and deviation")
            r.add_argument("--plot", metavar="FILE.png", help="draw each pair: velocity, decoded and simulated shot, residual")
        elif name == "invert":
            r.add_argument("--data", metavar="DIR", help="data.npy + model.npy to invert (default: freshly simulated pairs)")
            r.add_argument("--n", type=limited("n"), default=16, help="how many pairs")
            r.add_argument("--steps", type=limited("steps"), default=10, help="refined backward steps (the study: 10)")
            r.add_argument("--candidates", type=limited("candidates"), default=16, help="latents drawn per step (the study: 100)")
        else:
            r.add_argument("--n", type=limited("n"), default=32, help="freshly simulated pairs encoded as trained latents")
            r.add_argument(
                "--n-random", type=limited("n_random"), default=32, help="random latents run through the backward process"
            )
            r.add_argument("--points", type=limited("points"), default=11, help="points on each curve")
            r.add_argument("--csv", metavar="FILE.csv", help="write both curves")
            r.add_argument("--plot", metavar="FILE.png", help="plot both curves")
        _common(r, fn)


def _setup_args(p) -> None:
    from ..parsing import real

    p.add_argument("--setup", default="tiny", help="geometry and sizes: tiny (CPU) or openfwi (default tiny)")
    p.add_argument(
        "--dt",
        type=real("--dt {value}: must be a positive number", above=0),
        help="time step in s (overrides the setup; checked against the CFL limit)",
    )
    p.add_argument(
        "--dx", type=real("--dx {value}: must be a positive number", above=0), help="grid spacing in m (overrides the setup)"
    )


def _common(p, fn) -> None:
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=lambda args: _check_args(args) or fn(args))


# option -> (least, most): every count, step and seed a wavediff command takes, checked while parsing (limited)
LIMITS = {
    "n": (1, 10**7),
    "n_random": (1, 10**6),
    "points": (2, 10**5),
    "steps": (1, 10**6),
    "candidates": (1, 10**6),
    "batch_size": (1, 10**6),
    "seed": (0, 2**63 - 1),
    "stage1_steps": (0, 10**9),
    "stage2_steps": (0, 10**9),
}
OUTPUT_FILES = ("plot", "csv")  # written at the end: a bad place is refused first


def limited(name: str):
    """argparse ``type=`` of the integer option ``name`` within its LIMITS."""
    from ..parsing import integer

    lo, hi = LIMITS[name]
    return integer(f"--{name.replace('_', '-')} {{value}}: must be {{lo}} to {{hi}}", lo=lo, hi=hi)


def _check_args(args) -> None:
    from pathlib import Path

    from ..io.output import prepare_output

    outputs = [getattr(args, name, None) for name in OUTPUT_FILES]
    if args.wavediff_command == "sample":
        outputs.append(args.out)
    for out in outputs:
        if out:
            prepare_output(out)
    if args.wavediff_command == "simulate":
        prepare_output(Path(args.out) / "data.npy")  # the folder: refused here if it cannot be one


def _setup(args):
    import dataclasses

    from ..wavediff.data import setup_named

    setup = setup_named(args.setup)
    changes = {k: getattr(args, k) for k in ("dt", "dx") if getattr(args, k, None) is not None}
    if changes:
        setup = dataclasses.replace(setup, geometry=dataclasses.replace(setup.geometry, **changes))
    setup.geometry.check()
    return setup


def _print(args, result: dict, lines) -> int:
    import json

    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for line in lines:
            print(line)
    return 0


def _bar(desc, total, quiet):
    from ..progress_bar import ProgressBar

    return ProgressBar(desc, "step", total=total, disable=quiet)


def run_simulate(args) -> int:
    import numpy as np

    from ..errors import SeisfmError
    from ..wavediff.data import generate_pairs, save_pairs
    from ..wavediff.forward import simulate

    setup = _setup(args)
    g = setup.geometry
    if args.velocity:
        try:
            v = np.load(args.velocity, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise SeisfmError(f"{args.velocity}: cannot read as .npy ({e})") from None
        if v.ndim == 2:
            v = v[None, None]
        if v.ndim != 4 or tuple(v.shape[1:]) != (1, g.nz, g.nx):
            raise SeisfmError(
                f"{args.velocity}: velocity of shape {tuple(v.shape)}; expected (N, 1, {g.nz}, {g.nx}) or ({g.nz}, {g.nx})"
            )
        from ..wavediff.forward import check_velocity

        check_velocity(np.asarray(v), args.velocity)
        bar = _bar("simulate", v.shape[0], args.json)
        out = []
        for i in range(0, v.shape[0], 64):
            out.append(simulate(np.asarray(v[i : i + 64, 0]), g, device=args.device).cpu().numpy())
            bar.advance(out[-1].shape[0])
        bar.close()
        seismic, velocity = np.concatenate(out), np.asarray(v, dtype=np.float32)
    else:
        kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
        bar = _bar("simulate", args.n, args.json)
        seismic, velocity = generate_pairs(args.n, setup, kinds, args.seed, args.device, progress=bar)
        bar.close()
    s_path, v_path = save_pairs(args.out, seismic, velocity)
    result = {
        "seismic": str(s_path),
        "velocity": str(v_path),
        "seismic_shape": list(seismic.shape),
        "velocity_shape": list(velocity.shape),
        "setup": args.setup,
        "cfl": round(g.cfl(), 4),
    }
    return _print(
        args,
        result,
        [
            f"{seismic.shape[0]} pairs: {s_path} {tuple(seismic.shape)}, {v_path} {tuple(velocity.shape)}",
            f"CFL number {g.cfl():.3f} at {g.vmax:g} m/s",
        ],
    )


def run_train(args) -> int:
    import dataclasses

    from ..wavediff.diffusion import DIFFUSION_CONFIGS
    from ..wavediff.train import train
    from ..wavediff.vqae import VQ_CONFIGS

    setup = _setup(args)
    vq = dataclasses.replace(VQ_CONFIGS[args.size], two_vq=args.two_vq)
    bar, bar_stage = None, None

    def progress(p):
        nonlocal bar, bar_stage
        if bar is None or bar_stage != p.stage:  # a bar per stage
            if bar is not None:
                bar.close()
            bar, bar_stage = _bar(f"stage {p.stage}", p.total, args.json), p.stage
        bar(p.step, p.total, {"loss": f"{p.loss:.4f}"})

    try:
        state = train(
            args.data,
            args.out,
            setup,
            vq,
            DIFFUSION_CONFIGS[args.size],
            stage1_steps=args.stage1_steps,
            stage2_steps=args.stage2_steps,
            batch_size=args.batch_size,
            seed=args.seed,
            device=args.device,
            resume=args.resume,
            name=args.name,
            command="seisfm " + shlex.join(sys.argv[1:]),
            progress=progress,
            stop_after_s=None if args.minutes is None else args.minutes * 60,
        )
    finally:
        if bar is not None:
            bar.close()
    done = "model" in state
    result = {
        "done": done,
        "stage": min(state["stage"], 2),
        "step": state["step"],
        "model": state.get("model"),
        "minutes": round(state["seconds"] / 60, 2),
        "stage1_loss_last": state["losses1"][-1] if state["losses1"] else None,
        "stage2_loss_last": state["losses2"][-1] if state["losses2"] else None,
    }
    lines = [
        f"model {state['model']}"
        if done
        else f"stopped at stage {state['stage']} step {state['step']}; continue with the same command plus --resume",
        f"stage 1 loss {result['stage1_loss_last']}, stage 2 loss {result['stage2_loss_last']}, {result['minutes']} min",
    ]
    return _print(args, result, lines)


def _model(args):
    from ..wavediff.model import load

    return load(args.model, args.device)


def run_sample(args) -> int:
    import numpy as np
    import torch

    from ..wavediff.data import simulate_model_space

    model, _ = _model(args)
    g = torch.Generator().manual_seed(args.seed)
    bar = _bar("sample", model.diff_cfg.steps, args.json)
    z, _ = model.ddpm.sample((args.n, *model.latent_shape), generator=g, on_step=lambda *_: bar.advance())
    bar.close()
    with torch.no_grad():
        s, v = model.decode(z)
    simulated = simulate_model_space(v, model.setup).to(s.device)
    dev = (s - simulated).pow(2).flatten(1).mean(1)
    np.savez(
        args.out,
        seismic=s.cpu().numpy(),
        velocity=v.cpu().numpy(),
        simulated=simulated.cpu().numpy(),
        deviation=dev.cpu().numpy(),
    )
    if args.plot:
        _plot_pairs(args.plot, v.cpu().numpy(), s.cpu().numpy(), simulated.cpu().numpy(), dev.cpu().numpy())
    result = {
        "out": args.out,
        "n": args.n,
        "deviation_mean": float(dev.mean()),
        "seismic_shape": list(s.shape),
        "velocity_shape": list(v.shape),
    }
    return _print(args, result, [f"{args.n} pairs -> {args.out}", f"PDE deviation (mean) {float(dev.mean()):.5f}"])


def _plot_pairs(path, v, s, simulated, dev, shot: int = 0) -> None:
    """One row per pair: velocity, the decoded shot, the solver's shot from that velocity, their difference."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    n = min(len(v), 6)
    fig = Figure(figsize=(10, 2.6 * n))
    titles = ("generated velocity", f"generated seismic (shot {shot})", "F(generated velocity)", "difference")
    for i in range(n):
        panels = (v[i, 0], s[i, shot], simulated[i, shot], s[i, shot] - simulated[i, shot])
        for j, (img, title) in enumerate(zip(panels, titles)):
            ax = fig.add_subplot(n, 4, 4 * i + j + 1)
            ax.imshow(img, aspect="auto", cmap="viridis" if j == 0 else "gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
        fig.axes[4 * i].set_ylabel(f"deviation {dev[i]:.4f}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _pairs(args, model, seed):
    """Preprocessed (seismic, velocity) of --data or of freshly simulated pairs."""
    from pathlib import Path

    import numpy as np

    from ..wavediff.data import generate_pairs, open_pairs, seismic_to_model, velocity_to_model

    setup = model.setup
    if getattr(args, "data", None):
        s, v = open_pairs(Path(args.data) / "data.npy", Path(args.data) / "model.npy", setup)
        s, v = np.asarray(s[: args.n]), np.asarray(v[: args.n])
    else:
        s, v = generate_pairs(args.n, setup, seed=seed)
    return seismic_to_model(s, setup).to(args.device), velocity_to_model(v, setup).to(args.device)


def run_invert(args) -> int:
    from ..wavediff.invert import invert_refined, invert_stage1

    model, _ = _model(args)
    s, v = _pairs(args, model, 10_000 + args.seed)
    v1 = invert_stage1(model, s)
    v2 = invert_refined(model, s, steps=args.steps, candidates=args.candidates, seed=args.seed)
    mae1, mae2 = float((v1.clamp(-1, 1) - v).abs().mean()), float((v2.clamp(-1, 1) - v).abs().mean())
    result = {"n": int(s.shape[0]), "mae_stage1": mae1, "mae_refined": mae2, "steps": args.steps, "candidates": args.candidates}
    return _print(
        args,
        result,
        [
            f"{s.shape[0]} gathers, velocity MAE in [-1, 1] units:",
            f"  stage 1            {mae1:.4f}",
            f"  diffusion-refined  {mae2:.4f}  ({args.steps} steps x {args.candidates} candidates)",
        ],
    )


def run_residual(args) -> int:
    import torch

    from ..wavediff.residual import measure, pair_deviation

    model, card = _model(args)
    if args.points > model.diff_cfg.steps:
        from ..errors import SeisfmError

        raise SeisfmError(f"--points {args.points}: this model has {model.diff_cfg.steps} diffusion steps; use at most that many")
    s, v = _pairs(args, model, 20_000 + args.seed)
    bar = _bar("backward", model.diff_cfg.steps, args.json)
    r = measure(model, s, args.n_random, args.points, args.seed, on_step=lambda *_: bar.advance())
    bar.close()
    shuffled = torch.roll(torch.arange(s.shape[0]), 1)
    r["mismatched_pairs"] = float(pair_deviation(s[shuffled], v, model.setup).mean())
    r["model"] = str(args.model or "bundled")
    r["ordering_holds"] = r["trained"] < r["denoised_random"] < r["random"]
    if args.csv:
        _write_csv(args.csv, r)
    if args.plot:
        _plot(args.plot, r)
    lines = [
        f"PDE deviation (mean squared, preprocessed seismic) of model {r['model']}:",
        f"  trained latents ({r['n_trained']} fresh pairs)   {r['trained']:.5f}",
        f"  random latents ({r['n_random']})               {r['random']:.5f}",
        f"  denoised random latents          {r['denoised_random']:.5f}",
        f"  (mismatched true pairs           {r['mismatched_pairs']:.5f})",
        f"ordering trained < denoised-random < random: {'holds' if r['ordering_holds'] else 'does not hold'}",
        "forward  (step, deviation): " + ", ".join(f"{t}:{d:.4f}" for t, d in r["forward"]),
        "backward (step, deviation): " + ", ".join(f"{t}:{d:.4f}" for t, d in r["backward"]),
    ]
    return _print(args, r, lines)


def _write_csv(path, r) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["process", "step", "deviation"])
        for name in ("forward", "backward"):
            for t, d in r[name]:
                w.writerow([name, t, f"{d:.6f}"])


def _plot(path, r) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2))
    for i, name in enumerate(("forward", "backward")):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.plot(*zip(*r[name]), marker="o")
        ax.set_xlabel(f"{name} diffusion step")
        ax.set_ylabel("PDE deviation")
        ax.set_title(f"{name} process")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
