"""Quickstart: fit a GAP to EMT copper, check it on a test set, save it, and run MD with it.

    python examples/quickstart.py                  # the full recipe, about 30 s on 2 cores
    python examples/quickstart.py --n-sparse 50 --md-steps 20 --train-limit 20   # a quick look

Steps: (1) read data/cu_train.xyz and data/cu_test.xyz (EMT labels: energy eV, forces eV/Å,
stress eV/Å³); (2) fit a 2-body + SOAP GAP; (3) print the test errors per config_type;
(4) save the model and load it back; (5) run Langevin MD at 300 K, then constant-energy MD,
with the model as an ASE calculator, and print temperature, energy drift and the force error
against EMT itself along the way.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

import gapfit
from gapfit.md.dynamics import initialise_velocities

DATA = Path(__file__).resolve().parents[1] / "data"


def fit(train, n_sparse, seed):
    """(1)+(2): a 2-body term for the pair repulsion, SOAP for the many-body rest."""
    model = gapfit.GAP(terms=[gapfit.TwoBody(cutoff=5.0, n_sparse=20),
                              gapfit.SOAP(r_cut=5.0, n_max=8, l_max=6, n_sparse=n_sparse)],
                       energy_sigma=0.001, force_sigma=0.03, virial_sigma=0.02, random_state=seed)
    start = time.perf_counter()
    model.fit(train)
    print(f"fitted on {len(train)} configurations ({sum(map(len, train))} atoms) "
          f"in {time.perf_counter() - start:.1f} s")
    return model


def print_errors(model, test):
    """(3): MAE and RMSE overall and per config_type (gapfit.metrics)."""
    rows = gapfit.metrics.error_table(gapfit.metrics.evaluate(model, test))
    print(f"\ntest errors ({len(test)} configurations)")
    print(f"{'config_type':<12}{'E MAE':>8}{'E RMSE':>8}{'F MAE':>8}{'F RMSE':>8}{'S MAE':>8}{'S RMSE':>8}")
    print(f"{'':<12}{'meV/atom':>16}{'meV/Å':>16}{'GPa':>16}")
    for label, *values in rows:
        print(f"{label:<12}" + "".join(f"{v:8.2f}" if i < 4 else f"{v:8.3f}" for i, v in enumerate(values)))


def save_and_reload(model, path, test):
    """(4): the model file stores everything; predictions of the reloaded model are identical."""
    model.save(path)
    reloaded = gapfit.load(path)
    same = np.array_equal(model.predict(test[:3]), reloaded.predict(test[:3]))
    print(f"\nsaved {path} ({Path(path).stat().st_size / 1024:.0f} kB); reloaded predictions identical: {same}")
    return reloaded


def run_md(model, nvt_steps, nve_steps, temperature_K, seed, repeat=3):
    """(5): Langevin NVT then velocity-Verlet NVE on a perfect fcc supercell, 2 fs steps."""
    atoms = bulk("Cu", "fcc", a=3.59, cubic=True).repeat(repeat)
    atoms.calc = gapfit.GAPCalculator(model)
    rng = np.random.default_rng(seed)
    initialise_velocities(atoms, temperature_K, rng)
    timestep = 2.0 * units.fs
    start = time.perf_counter()
    Langevin(atoms, timestep, temperature_K=temperature_K, friction=0.02 / units.fs, fixcm=False,
             rng=rng).run(nvt_steps)
    temperatures, totals = [], []

    def record():
        temperatures.append(atoms.get_temperature())
        totals.append(atoms.get_total_energy() / len(atoms))

    nve = VelocityVerlet(atoms, timestep)
    nve.attach(record, interval=1)
    nve.run(nve_steps)
    seconds = time.perf_counter() - start
    duration_ps = nve_steps * 2.0 / 1000
    drift = (1e3 * np.polyfit(np.arange(len(totals)) * 0.002, totals, 1)[0]
             if len(totals) > 1 else float("nan"))
    reference = atoms.copy()
    reference.calc = EMT()
    force_error = np.sqrt(np.mean((atoms.get_forces() - reference.get_forces()) ** 2))
    print(f"\nMD on {len(atoms)} atoms: {nvt_steps} steps NVT at {temperature_K:g} K, then {nve_steps} "
          f"steps NVE ({(nvt_steps + nve_steps) / seconds:.0f} steps/s)")
    print(f"NVE: mean T {np.mean(temperatures):.0f} K (std {np.std(temperatures):.0f} K), "
          f"total-energy drift {drift:+.3f} meV/atom/ps over {duration_ps:.2f} ps, "
          f"fluctuation {1e3 * np.std(totals):.3f} meV/atom")
    print(f"force RMSE against EMT on the last frame: {1e3 * force_error:.1f} meV/Å")
    return {"temperatures": np.array(temperatures), "totals": np.array(totals), "drift": drift,
            "force_rmse": force_error}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default=DATA / "cu_train.xyz", help="training file")
    parser.add_argument("--test", default=DATA / "cu_test.xyz", help="test file")
    parser.add_argument("--train-limit", type=int, help="use only the first N training configurations")
    parser.add_argument("--n-sparse", type=int, default=500, help="SOAP sparse points (default 500)")
    parser.add_argument("--md-steps", type=int, default=200,
                        help="NVT steps, and as many NVE steps after them (default 200)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--output", default="cu_quickstart.gap", help="model file to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    train = gapfit.io.read(args.train)[: args.train_limit]
    test = gapfit.io.read(args.test)
    model = fit(train, args.n_sparse, args.seed)
    print_errors(model, test)
    model = save_and_reload(model, args.output, test)
    run_md(model, args.md_steps, args.md_steps, args.temperature, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
