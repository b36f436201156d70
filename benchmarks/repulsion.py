"""Short-range repulsion of saved models: a dimer and an atom pushed toward a nearest neighbour
in a crystal, from the shortest training distance (or --start) down to 0.6 Å.

    python benchmarks/mlearn.py --elements Mo --save-dir models/
    python benchmarks/repulsion.py models/Mo_soap.gap                  # bcc Mo, a = 3.16 Å
    python benchmarks/repulsion.py cu.gap --element Cu --lattice fcc --a 3.6

Prints, per model, whether energy rises and the repulsive force grows monotonically as the
atoms approach, and both at a few separations (energy relative to the start, eV; force on the
moving atom along the bond, eV/Å, positive = repulsive).
"""
import argparse

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers

import gapfit

REPORT = [2.2, 2.0, 1.8, 1.6, 1.4, 1.2, 1.0, 0.8, 0.6]


def curves(model, element, crystal, distances):
    """{"dimer", "crystal"}: (energies eV, repulsive forces eV/Å) at ``distances`` Å."""
    neighbour = np.argsort(crystal.get_distances(0, range(len(crystal)), mic=True))[1]
    bond = crystal.get_distance(0, neighbour, mic=True, vector=True)
    unit = bond / np.linalg.norm(bond)
    found = {"dimer": ([], []), "crystal": ([], [])}
    for r in distances:
        prediction = model.predict_structure(Atoms(element * 2, positions=[[0, 0, 0], [r, 0, 0]]))
        found["dimer"][0].append(prediction.energy)
        found["dimer"][1].append(prediction.forces[1, 0])
        atoms = crystal.copy()
        atoms.positions[0] = crystal.positions[0] + bond - r * unit
        prediction = model.predict_structure(atoms)
        found["crystal"][0].append(prediction.energy)
        found["crystal"][1].append(-prediction.forces[0] @ unit)
    return {kind: (np.array(e), np.array(f)) for kind, (e, f) in found.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--element", default="Mo")
    parser.add_argument("--lattice", default="bcc")
    parser.add_argument("--a", type=float, default=3.16, help="lattice constant, Å")
    parser.add_argument("--start", type=float, default=None,
                        help="largest separation, Å (default: the shortest training distance)")
    args = parser.parse_args()
    crystal = bulk(args.element, args.lattice, a=args.a, cubic=True).repeat((3, 3, 3))
    z = atomic_numbers[args.element]
    for path in args.models:
        model = gapfit.load(path)
        shortest = (getattr(model, "shortest_distances_", None) or {}).get((z, z))
        start = args.start or shortest or 2.2
        dense = np.linspace(start, 0.6, 200)
        found = curves(model, args.element, crystal, np.concatenate([dense, REPORT]))
        print(f"\n{path}: shortest {args.element}-{args.element} training distance "
              f"{shortest if shortest else 'not stored'} Å, repulsion baseline "
              f"{'on' if getattr(model, 'repulsion_', None) is not None else 'off'}")
        for kind, (energies, forces) in found.items():
            n = len(dense)
            print(f"  {kind}: from {start:.3f} to 0.6 Å energy rises monotonically: "
                  f"{bool(np.all(np.diff(energies[:n]) > 0))}, repulsive force grows monotonically: "
                  f"{bool(np.all(np.diff(forces[:n]) > 0))}")
            print("    r (Å)          " + " ".join(f"{r:8.2f}" for r in REPORT))
            print("    E - E(start) eV" + " ".join(f"{e - energies[0]:8.1f}" for e in energies[n:]))
            print("    F (eV/Å)       " + " ".join(f"{f:8.1f}" for f in forces[n:]))


if __name__ == "__main__":
    main()
