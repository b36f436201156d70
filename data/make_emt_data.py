"""Make the project's small EMT-labelled data sets (Cu, Cu-Au, Cu-Ag-Au) as extended XYZ.

    python data/make_emt_data.py            # writes data/*_train.xyz, data/*_test.xyz
    python data/make_emt_data.py --out DIR

Deterministic (every set has its own seed; train and test come from independent runs).
Each configuration is a 2×2×2 conventional fcc supercell (32 atoms, 31 with a vacancy)
labelled by ASE's EMT: energy (eV), forces (eV/Å), stress (eV/Å³, ASE sign, Voigt).
Positions are rounded to 1e-4 Å before labelling (so the labels belong to the stored
positions) and forces to 1e-4 eV/Å after, to keep the files small; see data/README.md.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gapfit.structures.io import write  # noqa: E402

# EMT's own fcc lattice constants (Å), for Vegard's law in the alloys
LATTICE_CONSTANT = {"Cu": 3.59, "Ag": 4.06, "Au": 4.06}
POSITION_DECIMALS = 4  # Å
FORCE_DECIMALS = 4  # eV/Å
TIMESTEP_FS = 4.0
EQUILIBRATION_STEPS = 150  # 0.6 ps, twelve friction times
SNAPSHOT_INTERVAL = 50  # steps between kept MD snapshots: 200 fs, longer than a vibration period
FRICTION_PER_FS = 0.02  # relaxation time 50 fs
VACANCY_TEMPERATURE_K = 600.0

# configurations per kind in (train, test) of each system
KINDS = ("md_300K", "md_800K", "md_1400K", "volumetric", "shear", "vacancy", "rattled")
COUNTS = {
    "cu": {"train": (8, 8, 8, 8, 8, 10, 10), "test": (3, 3, 3, 3, 2, 3, 3)},
    "cuau": {"train": (8, 8, 8, 8, 8, 10, 10), "test": (3, 3, 3, 3, 2, 3, 3)},
    "cuagau": {"train": (5, 5, 5, 5, 5, 7, 8), "test": (2, 2, 2, 2, 2, 2, 3)},
}
# compositions (fractions) each configuration draws from
COMPOSITIONS = {
    "cu": [{"Cu": 1.0}],
    "cuau": [{"Cu": 0.75, "Au": 0.25}, {"Cu": 0.5, "Au": 0.5}, {"Cu": 0.25, "Au": 0.75}],
    "cuagau": [{"Cu": 1 / 3, "Ag": 1 / 3, "Au": 1 / 3}, {"Cu": 0.5, "Ag": 0.25, "Au": 0.25},
               {"Cu": 0.25, "Ag": 0.5, "Au": 0.25}, {"Cu": 0.25, "Ag": 0.25, "Au": 0.5}],
}
SEEDS = {("cu", "train"): 101, ("cu", "test"): 102, ("cuau", "train"): 201,
         ("cuau", "test"): 202, ("cuagau", "train"): 301, ("cuagau", "test"): 302}


def random_alloy(composition, rng):
    """A 32-atom fcc cell with random occupancy at ``composition``, lattice constant by Vegard's law."""
    symbols = list(composition)
    counts = np.round(np.array([composition[s] for s in symbols]) * 32).astype(int)
    counts[0] += 32 - counts.sum()
    occupancy = rng.permutation(np.repeat(symbols, counts))
    a = sum(composition[s] * LATTICE_CONSTANT[s] for s in symbols)
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 2))
    atoms.set_chemical_symbols(list(occupancy))
    return atoms


def labelled(atoms, config_type):
    """A copy with rounded positions and EMT labels on a SinglePointCalculator."""
    atoms = atoms.copy()
    atoms.wrap()
    atoms.positions = np.round(atoms.positions, POSITION_DECIMALS)
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(),
               "forces": np.round(atoms.get_forces(), FORCE_DECIMALS) + 0.0,
               "stress": atoms.get_stress()}
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info = {"config_type": config_type}
    atoms.arrays.pop("momenta", None)  # MD velocities are not labels
    return atoms


def md_snapshots(atoms, temperature_K, count, rng, config_type):
    """``count`` Langevin NVT snapshots, 200 fs apart after 0.6 ps of equilibration."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    thermal_momentum = np.sqrt(atoms.get_masses() * units.kB * temperature_K)
    atoms.set_momenta(thermal_momentum[:, None] * rng.standard_normal((len(atoms), 3)))
    # the centre of mass may drift: harmless for a periodic cell, and the positions are wrapped
    dynamics = Langevin(atoms, TIMESTEP_FS * units.fs, temperature_K=temperature_K,
                        friction=FRICTION_PER_FS / units.fs, fixcm=False, rng=rng)
    dynamics.run(EQUILIBRATION_STEPS)
    snapshots = []
    for _ in range(count):
        dynamics.run(SNAPSHOT_INTERVAL)
        snapshots.append(labelled(atoms, config_type))
    return snapshots


def strained(atoms, strain, rng, rattle=0.02):
    """``atoms`` deformed by the symmetric strain tensor ``strain`` and rattled by ``rattle`` Å."""
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    atoms.positions += rattle * rng.standard_normal(atoms.positions.shape)
    return atoms


def make_kind(kind, count, compositions, rng):
    """``count`` configurations of one kind, each on a freshly drawn alloy cell."""
    def fresh():
        return random_alloy(compositions[rng.integers(len(compositions))], rng)

    if kind.startswith("md_"):
        temperature = float(kind[3:-1])
        per_run = max(1, (count + 1) // 2)  # two independent trajectories (two occupancies)
        snapshots = []
        while len(snapshots) < count:
            snapshots += md_snapshots(fresh(), temperature, min(per_run, count - len(snapshots)),
                                      rng, kind)
        return snapshots
    if kind == "vacancy":
        atoms = fresh()
        del atoms[int(rng.integers(len(atoms)))]
        return md_snapshots(atoms, VACANCY_TEMPERATURE_K, count, rng, kind)
    configurations = []
    for _ in range(count):
        if kind == "volumetric":
            strain = rng.uniform(-0.03, 0.03) * np.eye(3)
            atoms = strained(fresh(), strain, rng)
        elif kind == "shear":
            upper = np.triu(rng.uniform(-0.03, 0.03, (3, 3)), k=1)
            atoms = strained(fresh(), upper + upper.T, rng)
        elif kind == "rattled":
            small = rng.uniform(-0.01, 0.01, (3, 3))
            atoms = strained(fresh(), 0.5 * (small + small.T), rng, rattle=rng.uniform(0.03, 0.10))
        else:
            raise ValueError(f"unknown kind {kind!r}")
        configurations.append(labelled(atoms, kind))
    return configurations


def make_set(system, split):
    rng = np.random.default_rng(SEEDS[system, split])
    configurations = []
    for kind, count in zip(KINDS, COUNTS[system][split]):
        configurations += make_kind(kind, count, COMPOSITIONS[system], rng)
    return configurations


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent),
                        help="output folder (default: the folder of this script)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for system in COUNTS:
        for split in ("train", "test"):
            start = time.perf_counter()
            configurations = make_set(system, split)
            path = out / f"{system}_{split}.xyz"
            write(path, configurations)
            print(f"{path}: {len(configurations)} configurations, "
                  f"{sum(len(a) for a in configurations)} atoms, {path.stat().st_size / 1e3:.0f} kB, "
                  f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
