"""Benchmark: the CPU cost of `seisfm --help` (goal: <= 0.25 s), against importing `napari_seisfm.cli`
and against a bare interpreter, measured in the same run.

    .venv/bin/python benchmarks/bench_cli_help.py [--repeat 7] [--repo PATH] [--command search]

Each case is a fresh process (``python -c ...`` or ``python -m napari_seisfm.cli --help``); its CPU time
(user + system, from ``os.wait4``) is taken, median of ``--repeat`` runs. ``--repo`` puts another
checkout first on PYTHONPATH (the before/after: the same script on ``main`` and on a branch).
``--command`` also times ``seisfm COMMAND --help`` (one subcommand's module only). Prints JSON with the
medians and the ratios help / import-cli and help / bare interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds(argv: list[str], env: dict, cwd: Path) -> float:
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {err[-500:]}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout to time (default: this one)")
    ap.add_argument("--command", action="append", default=[], help="also time `seisfm COMMAND --help`")
    args = ap.parse_args()
    repo = args.repo.resolve()
    env = dict(os.environ, PYTHONPATH=str(repo))  # and run in it: `python -c/-m` put the working directory first
    py = sys.executable
    cases = {
        "bare interpreter": [py, "-c", "pass"],
        "import napari_seisfm.cli": [py, "-c", "import napari_seisfm.cli"],
        "seisfm --help": [py, "-m", "napari_seisfm.cli", "--help"],
    }
    for c in args.command:
        cases[f"seisfm {c} --help"] = [py, "-m", "napari_seisfm.cli", c, "--help"]
    where = subprocess.run(
        [py, "-c", "import napari_seisfm; print(napari_seisfm.__file__)"],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cpu_seconds(cases["seisfm --help"], env, repo)  # warm the file cache and the bytecode
    times = {name: [] for name in cases}
    for _ in range(args.repeat):  # interleaved, so load changes hit every case alike
        for name, argv in cases.items():
            times[name].append(cpu_seconds(argv, env, repo))
    med = {name: round(statistics.median(t), 4) for name, t in times.items()}
    print(
        json.dumps(
            {
                "package": where,
                "python": platform.python_version(),
                "repeat": args.repeat,
                "cpu_s_median": med,
                "cpu_s_min": {name: round(min(t), 4) for name, t in times.items()},
                "help_over_import_cli": round(med["seisfm --help"] / med["import napari_seisfm.cli"], 2),
                "help_over_bare": round(med["seisfm --help"] / med["bare interpreter"], 2),
                "goal_help_cpu_s": 0.25,
                "loadavg": open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None,  # noqa: SIM115
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
