"""Constant-energy MD with a fitted GAP: how well it conserves energy and how fast it runs.

    python examples/md.py                       # fit on data/cu_train.xyz, 10 ps NVE of 108 Cu atoms
    python examples/md.py --model cu_md.gap     # load that model (fitted and saved if missing)
    python examples/md.py --ps 0.2 --train-limit 10 --n-sparse 50 --n-max 4 --l-max 3 --repeat 2
                                                # a quick look, a few seconds

Steps: (1) fit a 2-body + SOAP GAP on EMT copper (data/cu_train.xyz) or load one; (2) draw
Maxwell–Boltzmann velocities at --temperature on an fcc supercell; (3) run velocity-Verlet NVE
with a 1 fs step, recording the total energy every --interval steps; (4) print the drift (slope of
a straight-line fit of the total energy, meV/atom/ps), the fluctuation, and the speed in µs per
atom per step (energy, forces and stress each step) and ns/day.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet

import gapfit
from gapfit.md.dynamics import initialise_velocities

DATA = Path(__file__).resolve().parents[1] / "data"
# the requirement for energy conservation in NVE
DRIFT_LIMIT = 0.1  # meV/atom/ps


def fit_or_load(args):
    """(1) A model from --model if that file exists, else a fit on --train (saved to --model)."""
    if args.model and Path(args.model).is_file():
        print(f"loaded {args.model}")
        return gapfit.load(args.model)
    train = gapfit.io.read(args.train)[: args.train_limit]
    model = gapfit.GAP(terms=[gapfit.TwoBody(cutoff=5.0, n_sparse=20),
                              gapfit.SOAP(r_cut=args.r_cut, n_max=args.n_max, l_max=args.l_max,
                                          n_sparse=args.n_sparse)],
                       energy_sigma=0.001, force_sigma=0.03, virial_sigma=0.02,
                       random_state=args.seed)
    start = time.perf_counter()
    model.fit(train)
    print(f"fitted on {len(train)} configurations ({sum(map(len, train))} atoms) in "
          f"{time.perf_counter() - start:.1f} s")
    if args.model:
        model.save(args.model)
        print(f"saved {args.model}")
    return model


def run_nve(model, repeat, temperature_K, duration_ps, timestep_fs=1.0, interval=10, seed=0):
    """(2)-(3) NVE of an fcc Cu supercell; returns times (ps), total energies (eV/atom),
    temperatures (K) and the wall time of the run (s)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.calc = gapfit.GAPCalculator(model)
    initialise_velocities(atoms, temperature_K, np.random.default_rng(seed))
    dynamics = VelocityVerlet(atoms, timestep_fs * units.fs)
    times, totals, temperatures = [], [], []

    def record():
        times.append(dynamics.nsteps * timestep_fs / 1000.0)
        totals.append(atoms.get_total_energy() / len(atoms))
        temperatures.append(atoms.get_temperature())

    def stress_every_step():
        atoms.get_stress()  # MD codes with a barostat need it; here it is part of the cost

    dynamics.attach(record, interval=interval)
    dynamics.attach(stress_every_step, interval=1)
    steps = int(round(duration_ps * 1000.0 / timestep_fs))
    atoms.get_forces()  # warm-up: neighbour list, and numba compilation without a cache
    start, cpu_start = time.perf_counter(), time.process_time()
    dynamics.run(steps)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {"n_atoms": len(atoms), "steps": steps, "times": np.array(times),
            "totals": np.array(totals), "temperatures": np.array(temperatures),
            "seconds": seconds, "cpu_seconds": cpu_seconds}


def drift_meV_per_atom_ps(times, totals):
    """Slope of a straight-line fit of the total energy per atom against time, meV/atom/ps."""
    return 1e3 * np.polyfit(times, totals, 1)[0]


def report(run, timestep_fs):
    """(4) Drift, fluctuation and speed."""
    drift = drift_meV_per_atom_ps(run["times"], run["totals"])
    duration = run["times"][-1] - run["times"][0]
    per_atom_step = run["seconds"] / max(run["steps"], 1) / run["n_atoms"] * 1e6
    cpu_per_atom_step = run["cpu_seconds"] / max(run["steps"], 1) / run["n_atoms"] * 1e6
    ns_per_day = run["steps"] * timestep_fs * 1e-6 / run["seconds"] * 86400
    print(f"NVE on {run['n_atoms']} atoms, {run['steps']} steps of {timestep_fs:g} fs "
          f"({duration:.2f} ps), mean T {run['temperatures'].mean():.0f} K")
    print(f"total-energy drift {drift:+.6f} meV/atom/ps (limit {DRIFT_LIMIT}), "
          f"fluctuation {1e3 * run['totals'].std():.6f} meV/atom")
    print(f"speed {per_atom_step:.1f} µs/atom/step wall, {cpu_per_atom_step:.1f} CPU "
          f"(energy, forces, stress; whole MD step), {run['steps'] / run['seconds']:.0f} steps/s, "
          f"{ns_per_day:.2f} ns/day")
    return drift


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default=DATA / "cu_train.xyz", help="training file")
    parser.add_argument("--train-limit", type=int, help="use only the first N configurations")
    parser.add_argument("--model", help="model file: loaded if it exists, else written")
    parser.add_argument("--n-sparse", type=int, default=500, help="SOAP sparse points")
    parser.add_argument("--n-max", type=int, default=8)
    parser.add_argument("--l-max", type=int, default=6)
    parser.add_argument("--r-cut", type=float, default=5.0, help="SOAP cutoff, Å")
    parser.add_argument("--repeat", type=int, default=3, help="fcc cubic cell repeats (3: 108 atoms)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--ps", type=float, default=10.0, help="NVE duration, ps")
    parser.add_argument("--timestep", type=float, default=1.0, help="fs")
    parser.add_argument("--interval", type=int, default=10, help="steps between energy records")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = fit_or_load(args)
    run = run_nve(model, args.repeat, args.temperature, args.ps, args.timestep, args.interval,
                  args.seed)
    drift = report(run, args.timestep)
    return 0 if abs(drift) < DRIFT_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
